"""GET /strategies: the built-ins and a configured directory's strategies, with parameter schemas."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.test_api_harness import running_server


def test_strategies_lists_builtins_and_the_configured_directory(tmp_path: Path) -> None:
    user_dir = tmp_path / "strategies"
    user_dir.mkdir()
    (user_dir / "grid.py").write_text(
        "from tradehall.strategies import Param, Strategy\n"
        "class Grid(Strategy):\n"
        "    '''Buys the dips of a grid.'''\n"
        "    name = 'grid'\n"
        "    parameters = {'levels': Param(int, 5, min=1, max=50), 'mode': Param(str, 'geo', "
        "choices=('geo', 'linear'))}\n"
    )
    with running_server(tmp_path / "data", strategies_dir=user_dir) as server:
        answer = httpx.get(f"{server.url}/strategies")
    assert answer.status_code == 200
    body = answer.json()
    assert body["next_cursor"] is None
    by_name = {item["name"]: item for item in body["items"]}
    assert by_name["sma_crossover"]["parameters"]["fast"]["type"] == "int"
    assert by_name["sma_crossover"]["parameters"]["slow"]["default"] == 30
    assert by_name["grid"] == {
        "name": "grid",
        "description": "Buys the dips of a grid.",
        "parameters": {
            "levels": {"type": "int", "default": 5, "min": 1, "max": 50},
            "mode": {"type": "str", "default": "geo", "choices": ["geo", "linear"]},
        },
    }
