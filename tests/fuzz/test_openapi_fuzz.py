"""schemathesis against /schema/openapi.json of a real server, as an authenticated user:
no generated request may cause a server error, and responses must match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.live_server import LiveServer

CASES = {"count": 0, "by_operation": {}}

# Operations that would end the fuzzing user's own session/account mid-run.
SELF_DESTRUCTIVE = [("DELETE", "/api/v1/me"), ("DELETE", "/api/v1/auth/token"),
                    ("POST", "/api/v1/me/password")]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("fuzz"), env={"CARELENS_INFERENCE_QUEUE": "32"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_headers(fuzz_server) -> dict:
    return fuzz_server.register("fuzzer@example.org")


def test_no_server_errors_and_responses_match_schema(fuzz_server, auth_headers):
    # schemathesis' pytest loader does not work with pytest 9 yet: drive its per-operation
    # Hypothesis strategies directly.
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/schema/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SELF_DESTRUCTIVE:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            CASES["count"] += 1
            key = f"{case.method} {case.path}"
            CASES["by_operation"][key] = CASES["by_operation"].get(key, 0) + 1
            case.call_and_validate(base_url=fuzz_server.url, headers=auth_headers, timeout=60,
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            call()
        except Exception as exc:  # noqa: BLE001 - collect all operations' failures, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:1500])
    print(f"\nschemathesis: {CASES['count']} generated cases over "
          f"{len(CASES['by_operation'])} operations, {len(failures)} failing operations")
    assert CASES["count"] > 0
    assert not failures, "\n\n".join(failures)
