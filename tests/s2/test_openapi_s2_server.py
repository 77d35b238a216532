"""The bundled S2 server against S2's published OpenAPI document, with schemathesis.

Each operation of the document that the server implements gets generated requests (valid and
invalid data, ``MAX_EXAMPLES`` each) over real HTTP to the ``python -m
resumable_chat.testing.s2_server`` subprocess; every answer must be below 500, have a
documented content type, headers and, for documented statuses, a body matching the schema.
The status must be one the document lists for the operation, or 422 ``invalid`` (S2 answers
validation errors with 422, which the document does not list). Operations the server does not
implement (access tokens, metrics) must answer 501 ``not_implemented`` with an ``ErrorInfo``.

Two adjustments to the document, both for the harness: its servers point at the local server,
and the ``wait`` of reads is capped at 1 s so no generated read long-polls for a minute.
Requests to ``/streams*`` carry ``S2-Basin`` (the server's shared endpoint needs it; the
document describes per-basin hostnames instead).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from openapi_check import load_spec

from resumable_chat.testing.pytest_plugin import unique_basin_name
from resumable_chat.testing.s2_server import IMPLEMENTED_OPERATIONS, NOT_IMPLEMENTED_OPERATIONS

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

from helpers import fuzz_settings  # noqa: E402

#: Generated requests per operation and generation mode.
MAX_EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _harness_spec(url: str) -> dict[str, Any]:
    spec = load_spec(url)
    for parameter in spec["paths"]["/streams/{stream}/records"]["get"]["parameters"]:
        if parameter["name"] == "wait":
            parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": 1}
    return spec


def _operations(spec: dict[str, Any]) -> dict[str, Any]:
    schema = schemathesis.openapi.from_dict(spec)
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[operation.definition.raw["operationId"]] = operation
    return found


def _documented(operation: Any) -> set[int]:
    return {int(code) for code in operation.definition.raw["responses"]}


@pytest.mark.timeout(240)
def test_implemented_operations_conform_to_the_document(s2_server_url: str) -> None:
    spec = _harness_spec(s2_server_url)
    operations = _operations(spec)
    assert set(IMPLEMENTED_OPERATIONS) <= set(operations)
    assert set(IMPLEMENTED_OPERATIONS) | set(NOT_IMPLEMENTED_OPERATIONS) == set(operations)
    headers = {"S2-Basin": unique_basin_name("fuzz"), "Authorization": "Bearer test"}
    statuses: dict[str, set[int]] = {}

    def fuzzer(name: str, mode: GenerationMode) -> Any:
        operation = operations[name]
        allowed = _documented(operation) | {422}

        @given(case=operation.as_strategy(generation_mode=mode))
        @fuzz_settings(MAX_EXAMPLES)
        def fuzz(case: Any) -> None:
            response = case.call(base_url=f"{s2_server_url}/v1", headers=headers, timeout=10)
            where = f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
            assert response.status_code in allowed, where
            case.validate_response(response, checks=CHECKS, headers=headers)
            if response.status_code == 422:
                body = response.json()
                assert body["code"] == "invalid" and isinstance(body["message"], str), where
            statuses.setdefault(name, set()).add(response.status_code)

        return fuzz

    for name, mode in itertools.product(IMPLEMENTED_OPERATIONS, GenerationMode):
        fuzzer(name, mode)()

    # and the records operations' success answers, whatever the generated data hit
    for name, options in (
        ("append", {"body": {"records": [{"body": "a", "headers": [["k", "v"]]}, {}]}}),
        ("read", {"query": {"seq_num": 0, "count": 5}}),
        ("read", {"query": {"tail_offset": 1}, "headers": {"s2-format": "base64"}}),
        ("check_tail", {}),
    ):
        case = operations[name].Case(path_parameters={"stream": "known"}, **options)
        response = case.call(base_url=f"{s2_server_url}/v1", headers=headers, timeout=10)
        assert response.status_code == 200, (name, response.text)
        case.validate_response(response, checks=CHECKS, headers=headers)
        statuses.setdefault(name, set()).add(200)

    # the generated requests got past request validation into every operation
    reached = {name for name, codes in statuses.items() if codes - {400, 422}}
    assert reached == set(IMPLEMENTED_OPERATIONS), statuses


def test_unimplemented_operations_answer_501(s2_server_url: str) -> None:
    spec = _harness_spec(s2_server_url)
    operations = _operations(spec)
    headers = {"Authorization": "Bearer test"}
    for name in NOT_IMPLEMENTED_OPERATIONS:
        operation = operations[name]

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
        def probe(case: Any) -> None:
            response = case.call(base_url=f"{s2_server_url}/v1", headers=headers, timeout=10)
            assert response.status_code == 501, case.as_curl_command()
            body = json.loads(response.text)
            assert body["code"] == "not_implemented" and body["message"]

        probe()
