"""Live trading sessions: strategies run inside the service on the engine's durable records.

`SessionManager` (create, pause, resume, stop; supervised tasks; resume after a restart) drives
`LiveSession`s (bars per cycle -> signals -> decisions -> orders, all stored before an order goes out).
`settings` validates what users send; `model` is the API's view of sessions, signals and decisions.
"""

from tradehall.strategies.sessions.manager import SessionManager, StrategyLookup
from tradehall.strategies.sessions.model import DecisionStatus, SessionInfo, SessionStatus
from tradehall.strategies.sessions.runtime import LiveSession, SessionPorts
from tradehall.strategies.sessions.settings import SessionSettings, StrategyEntry, parse_settings

__all__ = [
    "DecisionStatus",
    "LiveSession",
    "SessionInfo",
    "SessionManager",
    "SessionPorts",
    "SessionSettings",
    "SessionStatus",
    "StrategyEntry",
    "StrategyLookup",
    "parse_settings",
]
