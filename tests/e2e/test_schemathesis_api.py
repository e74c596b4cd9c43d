"""Schemathesis against /openapi.json of a live server: no 500s; statuses, types, bodies as documented.

A bounded number of examples per operation keeps the run short; the admin's token is sent, so the
admin routes are exercised too (generated markets and users land in a throwaway data dir).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    with running_server(data_dir) as running:
        create_demo_markets(running.admin())
        yield running


@pytest.fixture(scope="module")
def admin_headers(live: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.admin().auth_token}"}


def test_every_operation_conforms_to_the_schema(live: Server, admin_headers: dict[str, str]) -> None:
    api_schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(), known=st.booleans(), pick=st.integers(0, 2))
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any, known: bool, pick: int) -> None:
            # half the cases address things that exist, so the handlers past the 404 run too
            if known and case.path_parameters and "symbol" in case.path_parameters:
                case.path_parameters["symbol"] = ("BTC-USD", "BTC-PERP", "FED-CUT")[pick]
            case.call_and_validate(base_url=live.url, headers=admin_headers, checks=CHECKS)

        try:
            run()
        except Exception as error:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:600]}")
    assert operations >= 30
    assert failures == []
