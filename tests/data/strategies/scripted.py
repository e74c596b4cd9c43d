"""A strategy whose signals are written in advance, for session tests: `script` is a comma-separated
list of `action@n[:confidence]` (the n-th bar of a market, counted from 1 over the session's life);
every other bar is a hold. It counts bars, so a restarted session that rebuilds its state from the
stored bars continues the count where it stopped.
"""

from __future__ import annotations

from tradehall.strategies.base import Strategy
from tradehall.strategies.params import Param
from tradehall.strategies.types import Action, Bar, Signal


class Scripted(Strategy):
    name = "scripted"
    description = "Signals written in advance (tests)."
    parameters = {
        "script": Param(str, ""),
        "fail_at": Param(int, 0, min=0),
        "warmup_bars": Param(int, 0, min=0),
    }

    def setup(self) -> None:
        self.bars: dict[str, int] = {}
        self.plan: dict[int, tuple[Action, float]] = {}
        for item in str(self.params["script"]).split(","):
            if not item.strip():
                continue
            action, _, rest = item.strip().partition("@")
            number, _, confidence = rest.partition(":")
            self.plan[int(number)] = (Action(action), float(confidence or 1.0))

    @property
    def warmup(self) -> int:
        return int(self.params["warmup_bars"])

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        count = self.bars[market] = self.bars.get(market, 0) + 1
        if count == self.params["fail_at"]:
            raise RuntimeError(f"scripted failure at bar {count}")
        action, confidence = self.plan.get(count, (Action.HOLD, 1.0))
        return self.signal(market, action, confidence, bar.close, f"bar {count}")
