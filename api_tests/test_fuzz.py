"""Property-based fuzzing of the OpenAPI schema (schemathesis + hypothesis): whatever a
client sends, no 5xx, every error is problem+json, and every answer is what the published
document says: a declared status, the declared content type, a body of the declared
schema. Bounded: a fixed number of derandomised examples per operation."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

EXAMPLES = 30


def _operations(url: str):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="module")
def operations(stack, trained):
    return _operations(stack.url)


def test_fuzz_every_operation(operations, stack):
    assert len(operations) >= 10
    failures, calls = [], []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            response = case.call(base_url=stack.url, timeout=60)
            calls.append(response.status_code)
            content_type = response.headers.get("content-type", [""])
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            body = case.body if not isinstance(case.body, bytes) else "<bytes>"
            if response.status_code >= 400 and content_type != "application/problem+json":
                failures.append((case.method, case.formatted_path, body, response.status_code, response.text[:300]))
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except Exception as e:  # schemathesis raises one failure (or a group) naming the check
                failures.append((case.method, case.formatted_path, body, response.status_code, str(e)[:400]))

        no_server_error()
    assert not failures, failures[:5]
    assert len(calls) >= 5 * len(operations)  # hypothesis really generated cases
    print(f"{len(calls)} fuzzed requests, statuses: {sorted(set(calls))}")
