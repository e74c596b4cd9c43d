"""Schemathesis against /openapi.json of a live server: no 500s; statuses, types, bodies as documented.

Three modes, each bounded so the module stays within about two minutes on CI: positive data (every
check: statuses, content types, response schemas), negative data (inputs that break the schema:
only 4xx problem+json with the correlation id, never a 5xx) and stateful sequences along the links
schemathesis infers (responses feeding later requests: never a 5xx). The admin's token is sent, so the
admin routes are exercised too (generated markets and users land in a throwaway data dir).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
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


def assert_refusal_is_a_problem(response: Any, case: Any) -> None:
    """A 4xx is problem+json carrying the request's correlation id; nothing is ever a 5xx."""
    where = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.200}"
    assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"][0] == "application/problem+json", where
        problem = response.json()
        assert problem["code"] and problem["status"] == response.status_code, where
        assert problem["correlation_id"] == response.headers["x-request-id"][0], where


def has_schema_to_break(operation: Any) -> bool:
    """A body, or a parameter with a type or constraint: something negative data can violate.

    An operation whose only inputs are free strings (`/markets/{symbol}`) has no negative data;
    Hypothesis would spend seconds proving that, and the positive run sends it any string already.
    """
    raw: dict[str, Any] = operation.definition.raw
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.get("type") != "string" or set(schema) - {"type", "title", "description"}:
            return True
    return False


def test_no_operation_answers_negative_data_with_a_5xx(live: Server, admin_headers: dict[str, str]) -> None:
    api_schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    failures: list[str] = []
    exercised = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not has_schema_to_break(operation):
            continue

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            response = case.call(base_url=live.url, headers=admin_headers)
            assert_refusal_is_a_problem(response, case)

        try:
            run()
            exercised += 1
        except Unsatisfiable:
            continue  # nothing of this operation can break its schema after all
        except Exception as error:
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:600]}")
    assert exercised >= 20
    assert failures == []


def test_stateful_sequences_never_answer_a_5xx(live: Server, admin_headers: dict[str, str]) -> None:
    api_schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    calls: list[int] = []

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live.url, "headers": admin_headers}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            calls.append(response.status_code)
            assert_refusal_is_a_problem(response, case)

    # The server's state moves between examples, so a shrinking replay can never regenerate the same data
    # ("inconsistent data generation" hid the first failure): report the first failure as it happened.
    Workflow.run(
        settings=settings(
            max_examples=15,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
            phases=[Phase.generate],
        )
    )
    assert len(calls) >= 30
    assert any(200 <= status < 300 for status in calls)
