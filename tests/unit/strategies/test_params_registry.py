"""Typed parameters, the registry's sources (built-ins, entry points, a directory) and the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradehall.domain.errors import Code, TradehallError
from tradehall.strategies import Param, Strategy, StrategyRegistry, default_registry
from tradehall.strategies.builtin import SmaCrossover


def test_parameters_are_coerced_from_strings_and_checked() -> None:
    strategy = SmaCrossover({"fast": "5", "slow": 20})
    assert strategy.params == {"fast": 5, "slow": 20}


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"fast": "five"}, "'fast' must be an integer"),
        ({"fast": 0}, "'fast' must be at least 1"),
        ({"fast": True}, "'fast' must be an integer"),
        ({"fast": 30, "slow": 10}, "'fast' must be below 'slow'"),
        ({"speed": 3}, "unknown parameter(s) ['speed']"),
    ],
)
def test_bad_parameters_are_invalid_request(given: dict[str, object], fragment: str) -> None:
    with pytest.raises(TradehallError) as caught:
        SmaCrossover(given)
    assert caught.value.code is Code.INVALID_REQUEST
    assert fragment in caught.value.detail


def test_choices_bounds_and_types_in_the_schema() -> None:
    param = Param(str, "fast", choices=("fast", "slow"))
    assert param.schema() == {"type": "str", "default": "fast", "choices": ["fast", "slow"]}
    assert Param(float, 0.5, min=0, max=1).coerce("0.25", "x") == 0.25
    with pytest.raises(TradehallError, match="must be one of"):
        param.coerce("medium", "mode")
    with pytest.raises(TradehallError, match="finite"):
        Param(float, 0.5).coerce("nan", "x")
    assert Param(bool, False).coerce("yes", "b") is True
    with pytest.raises(TypeError):
        Param(list, [])


def test_default_registry_lists_every_builtin_with_its_schema() -> None:
    registry = default_registry()
    names = registry.names()
    for name in (
        "sma_crossover",
        "ema_crossover",
        "rsi_reversion",
        "bollinger_reversion",
        "donchian_breakout",
        "volume_spike",
        "book_imbalance",
        "liquidity_sweep",
    ):
        assert name in names
    sma = next(item for item in registry.describe() if item["name"] == "sma_crossover")
    assert sma["parameters"]["fast"] == {
        "type": "int",
        "default": 10,
        "min": 1,
        "description": "bars of the fast average",
    }
    assert sma["parameters"]["slow"]["default"] == 30
    assert sma["description"].startswith("Buy when the fast simple moving average")


def test_unknown_strategy_is_not_found() -> None:
    with pytest.raises(TradehallError) as caught:
        default_registry().create("nope")
    assert caught.value.code is Code.NOT_FOUND


def test_a_directory_of_user_strategies_is_loaded_and_a_broken_file_skipped(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from tradehall.strategies import Param, Strategy\n"
        "class Mine(Strategy):\n"
        "    '''Always buys.'''\n"
        "    name = 'mine'\n"
        "    parameters = {'size': Param(float, 1.0, min=0)}\n"
        "class SmaCrossover(Strategy):\n"
        "    name = 'sma_crossover'\n"
    )
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    registry = default_registry(tmp_path)
    assert "mine" in registry.names()
    assert registry.sources["mine"] == f"file:{tmp_path / 'mine.py'}"
    assert registry.get("sma_crossover") is SmaCrossover  # a built-in keeps its name
    assert registry.create("mine", {"size": "2"}).params == {"size": 2.0}


def test_entry_points_group_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugged(Strategy):
        name = "plugged"

    class FakeEntry:
        name = "plugged"
        value = "pkg.mod:Plugged"

        def load(self) -> type[Strategy]:
            return Plugged

    class BrokenEntry:
        name = "broken"
        value = "pkg.mod:Missing"

        def load(self) -> type[Strategy]:
            raise ImportError("no module")

    import tradehall.strategies.registry as module

    def fake_entry_points(group: str) -> list[object]:
        assert group == "tradehall.strategies"
        return [FakeEntry(), BrokenEntry()]

    monkeypatch.setattr(module, "entry_points", fake_entry_points)
    registry = default_registry()
    assert registry.get("plugged") is Plugged
    assert registry.sources["plugged"] == "entry_point:pkg.mod:Plugged"


def test_register_refuses_a_class_without_a_name() -> None:
    class Nameless(Strategy):
        pass

    with pytest.raises(TypeError):
        StrategyRegistry([Nameless])
