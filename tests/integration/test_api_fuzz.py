"""schemathesis against the live API (gunicorn, moto, a real worker): no input gives a 500.

Driven through schemathesis' Python API (operation strategies run with
Hypothesis) rather than its pytest plugin, which does not work with this
pytest version.
"""

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


def test_no_generated_request_makes_the_api_fail_with_a_500(stack):
    schema = schemathesis.openapi.from_url(f"{stack.web_url}/api/v1/schema?format=json")
    schema.config.update(base_url=stack.web_url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    seen = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=AUTH, timeout=30)
            seen.append((case.method, response.status_code))
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            )
            if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
                assert set(response.json()["error"]) == {"code", "message"}

        check()
    assert len(seen) >= 5 * len(operations) // 2
