"""The deterministic core: order books, matching, ledger, positions. No I/O, no clock."""

from tradehall.engine.engine import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig"]
