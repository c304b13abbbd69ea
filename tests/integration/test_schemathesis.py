"""schemathesis' command line against the live stack: every check, the schema the API serves.

One run per session (module fixture), as a client would run it:

    schemathesis run $BASE/api/v1/schema?format=json --url $BASE -c all -H "Authorization: Token $TOKEN"

as admin, by the admin's token (the schema's own security scheme, tokenAuth)
rather than ``--auth admin:PASSWORD``: given basic-auth credentials,
schemathesis also puts their username in the generated ``POST /api/v1/token``
bodies, with made-up passwords, so django-axes locks ``admin`` out of the
shared stack for 15 minutes (seen: 5 failures for admin on /api/v1/token) and
every later test that logs in as admin gets 429. Bounded (``--max-examples``,
a fixed ``--seed``; 20-40 s here), with JSON and NDJSON reports to read the
failures from, and one allowance (``CONFIG``). Two tests read that run:

- the run passes every check (exit code 0);
- it finds nothing beyond ``KNOWN``, so a new kind of failure is not hidden
  behind that xfail.

Below them, each distinct finding reproduced by one deterministic request.
``tests/integration/test_api_fuzz.py`` checks only that nothing answers 500.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ADMIN_PASSWORD, METRICS_TOKEN
from tests.integration.http_support import clear_rate_limits, require, reset_lockouts

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 30
SEED = 1

# (check code, operation) of every failure the run finds today. Fixing one in the
# views, the API or the schema means deleting its line here.
KNOWN: set[tuple[str, str]] = set()  # none left: the run passes every check

# The one allowance, for uploads only: an "image" is any bytes to the schema (no schema can say "a
# decodable image"), and a "url" any http(s) URL (no schema can say "a reachable public image"; the
# test stack fetches from loopback only). README documents 415 for bytes that are not an image we
# accept, 400 for a URL that cannot be fetched and 413 over the limits. Nothing else is relaxed.
CONFIG = """
[[operations]]
include-name = "POST /api/v1/images"
checks.positive_data_acceptance.expected-statuses = ["2XX", "3XX", 400, 401, 403, 404, 409, 413, 415, 429, "5XX"]
"""


@pytest.fixture(scope="module")
def run(stack, admin_token, tmp_path_factory):
    """One schemathesis run: (completed process, its JSON report, its failed checks)."""
    report_dir = tmp_path_factory.mktemp("schemathesis")
    report = report_dir / "report.json"
    events = report_dir / "events.ndjson"
    config = report_dir / "schemathesis.toml"
    config.write_text(CONFIG)
    base = stack.web_url
    clear_rate_limits(stack)
    try:
        result = subprocess.run(
            [
                str(SCHEMATHESIS), "--config-file", str(config), "run", f"{base}/api/v1/schema?format=json",
                "--url", base,
                "-c", "all",
                "-H", f"Authorization: Token {admin_token}",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", str(SEED),
                "--request-timeout", "30",
                "--report", "json,ndjson",
                "--report-json-path", str(report),
                "--report-ndjson-path", str(events),
            ],
            cwd=report_dir,  # its default report directory and any cassette stay in tmp
            env={**os.environ, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=240,
        )  # fmt: skip
    finally:
        # Hundreds of requests a minute as admin and as anonymous, and "admin" among the usernames it tries
        # on /api/v1/token: the next tests start with fresh rate windows and no lock-out.
        clear_rate_limits(stack)
        reset_lockouts(stack)
    require(report.exists(), f"no report; exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    data = json.loads(report.read_text())
    require(data["complete"] and events.exists(), f"stopped: {data['stop_reason']}\n{result.stdout[-3000:]}")
    return result, data, _failures(events)


def _failures(events: Path) -> list[dict]:
    """Each failed check of the run: its code, operation (stateful ones too), and the answer that failed it."""
    found = []
    for line in events.read_text().splitlines():
        kind, event = next(iter(json.loads(line).items()))
        if kind != "ScenarioFinished" or event.get("status") != "failure":
            continue
        recorder = event["recorder"]
        for case_id, checks in recorder["checks"].items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                interaction = recorder["interactions"].get(case_id) or {}
                response = interaction.get("response") or {}
                content = response.get("content") or {}
                body = base64.b64decode(content["$base64"]).decode(errors="replace") if "$base64" in content else ""
                found.append(
                    {
                        "code": failure["code"],
                        "operation": failure["operation"],
                        "title": failure["title"],
                        "request": f"{interaction.get('request', {}).get('method')} "
                        f"{interaction.get('request', {}).get('uri')}",
                        "status": response.get("status_code"),
                        "body": body[:200],
                    }
                )
    return found


def _found(failures: list[dict]) -> set[tuple[str, str]]:
    return {(f["code"], f["operation"]) for f in failures}


def _listing(failures: list[dict]) -> str:
    seen, lines = set(), []
    for f in failures:
        key = (f["code"], f["operation"], f["status"])
        if key not in seen:
            seen.add(key)
            lines.append(f"{f['code']} {f['title']}: {f['request']} -> {f['status']} {f['body']}")
    return "\n".join(lines)


def test_it_runs_schemathesis_over_every_operation(run):
    result, report, _ = run
    assert report["complete"] and report["operations"]["tested"] == report["operations"]["selected"] >= 9
    assert report["test_cases"]["generated"] >= 200
    assert not report["errors"], report["errors"]


def test_it_leaves_the_admin_account_usable_for_the_next_tests(run, stack):
    resp = requests.post(
        f"{stack.web_url}/api/v1/token", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
    )
    assert resp.status_code == 200, f"{resp.status_code} {resp.text[:200]}"


def test_it_passes_every_schemathesis_check(run):
    result, _, failures = run
    assert result.returncode == 0, f"exit {result.returncode}:\n{_listing(failures)}"


def test_it_finds_no_failure_beyond_the_known_ones(run):
    _, _, failures = run
    new = _found(failures) - KNOWN
    assert not new, f"new schemathesis failures {sorted(new)}:\n{_listing(failures)}"


# --- each finding, reproduced -------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(stack) -> dict:
    return requests.get(f"{stack.web_url}/api/v1/schema", params={"format": "json"}, timeout=10).json()


def _documented(schema: dict, method: str, path: str) -> set[int]:
    return {int(code) for code in schema["paths"][path][method.lower()]["responses"]}


def test_it_answers_400_json_to_a_token_request_whose_body_is_not_an_object(stack):
    resp = requests.post(f"{stack.web_url}/api/v1/token", json=[None, None], timeout=10)
    assert resp.status_code == 400, f"{resp.status_code} {resp.text[:200]}"
    assert set(resp.json()["error"]) == {"code", "message"}


def test_it_answers_a_documented_status_to_metrics_with_an_unknown_format(stack, schema):
    resp = requests.get(
        f"{stack.web_url}/metrics", params={"format": "AAA"}, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert resp.status_code in _documented(schema, "GET", "/metrics"), f"{resp.status_code} {resp.text[:200]}"


def test_it_documents_429_on_every_rate_limited_api_operation(schema):
    """Every /api/v1 view is behind DRF's throttles (README: 429 rate-limited or locked out)."""
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in ("get", "post", "put", "patch", "delete") and 429 not in _documented(schema, method, path)
    ]
    assert not missing, missing


def test_it_agrees_with_the_schema_on_an_empty_status_filter(stack, schema, admin_token):
    params = {p["name"]: p for p in schema["paths"]["/api/v1/images"]["get"]["parameters"]}
    resp = requests.get(
        f"{stack.web_url}/api/v1/images", params={"status": ""}, headers={"Authorization": f"Token {admin_token}"}
    )
    # Either the API refuses it, or the schema allows it: they agree.
    assert resp.status_code == 400 or "" in params["status"]["schema"]["enum"], f"{resp.status_code} {resp.text[:200]}"


def test_it_agrees_with_the_schema_on_what_an_upload_url_is(stack, schema, admin_token):
    resp = requests.post(
        f"{stack.web_url}/api/v1/images", json={"url": "0000"}, headers={"Authorization": f"Token {admin_token}"}
    )
    body = schema["paths"]["/api/v1/images"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    url = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]["url"]
    # Either the API takes "0000" as a URL to try, or the schema says it is not one: they agree.
    refused = resp.status_code == 400
    assert not refused or url.get("format") == "uri" or "pattern" in url, f"{resp.text[:200]} vs {url}"
