"""Every ``curl`` line of README.md and docs/*.md, run against the live stack, so the docs cannot rot.

Each ```sh block is read; each line that calls curl becomes one test. The
placeholders get live values: ``$BASE`` the stack's URL, ``$TOKEN`` the
admin's token, ``PASSWORD`` the admin's password, ``ID`` a ready 640×480
image of the admin's (a throwaway one for ``-X DELETE``), and ``photo.jpg`` a
generated JPEG in the working directory. The line runs under bash as written,
with ``-s -w '\\n%{http_code}'`` added after ``curl`` so the status can be
read; it must answer 2xx unless the docs say otherwise (``EXPECTED``).

Deliberately not run (``SKIPPED``): a line that names a URL off loopback
(README's remote-URL upload of https://example.com/cat.jpg: the server would
fetch it, and the tests send traffic to 127.0.0.1 only). The ``BASE=...``
assignment is not a curl line: the live URL replaces it (it must be loopback).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import ADMIN_PASSWORD
from tests.integration.http_support import (
    clear_rate_limits,
    create_account,
    form_login,
    jpeg_bytes,
    pixel_size,
    require,
    reset_lockouts,
    token_session,
    upload,
    wait_until_not_pending,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SH_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.S | re.M)

# Lines the docs say answer something other than 2xx: (pattern, status, why).
EXPECTED = [
    (re.compile(r"\$BASE/api/register\b"), 404, "needs OPEN_REGISTRATION=true, off by default"),
]
# Lines documented to work that do not today; the fix is in code these tests do not own.
XFAIL: list[tuple[re.Pattern, str]] = []  # none today (POST / was, until 64f2f51 lifted CSRF on it)


def _logical_lines(block: str):
    """(offset within the block, line): backslash continuations joined, blanks and comments dropped."""
    pending, start = "", 0
    for i, raw in enumerate(block.splitlines()):
        if not pending:
            start = i
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            yield start, line


def documented_commands() -> list[tuple[str, int, str]]:
    """(file, line number, command) for every line of a ```sh block that calls curl."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in SH_BLOCK.finditer(text):
            first = text[: block.start(1)].count("\n") + 1
            for offset, line in _logical_lines(block.group(1)):
                if re.search(r"(^|[\s(])curl\s", line):
                    found.append((doc.relative_to(ROOT).as_posix(), first + offset, line))
    return found


def _skip_reason(line: str) -> str | None:
    for url in re.findall(r"https?://[^\s'\"]+", line):
        if urlsplit(url).hostname not in LOOPBACK:
            return f"names {url}, which is not loopback: the tests fetch nothing off 127.0.0.1"
    return None


def _params():
    params = []
    for doc, lineno, line in documented_commands():
        marks = []
        reason = _skip_reason(line)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        for pattern, why in XFAIL:
            if pattern.search(line):
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
        params.append(pytest.param(line, id=f"{doc}:{lineno}", marks=marks))
    return params


COMMANDS = _params()


@pytest.fixture(scope="module", autouse=True)
def _fresh_limits(stack):
    """Earlier modules' bursts (fuzzers) neither rate-limit nor lock out this one's clients."""
    clear_rate_limits(stack)
    reset_lockouts(stack)


@pytest.fixture(scope="module")
def admin(stack, admin_token):
    return token_session(stack.web_url, admin_token)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs-commands")
    (path / "photo.jpg").write_bytes(jpeg_bytes(640, 480))
    return path


@pytest.fixture(scope="module")
def ready_id(admin) -> str:
    image = upload(admin, jpeg_bytes(640, 480))
    require(wait_until_not_pending(admin, image["id"])["status"] == "ready", "the fixture image did not become ready")
    return image["id"]


@pytest.fixture(scope="module")
def doc_accounts(stack):
    """The accounts the examples name besides admin (alice, 'a-long-pass'), made by staff through /accounts/new."""
    base = stack.web_url
    staff = form_login(base, "admin", ADMIN_PASSWORD)
    made = []
    for _, _, line in documented_commands():
        for username, password in re.findall(r"username=(\w+) -[dF] password='([^']+)'", line):
            if username == "admin" or username in made:
                continue
            create_account(staff, base, username, password)
            made.append(username)
    return made


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", "set -o pipefail\n" + command], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_it_finds_the_curl_lines_of_the_readme():
    commands = documented_commands()
    readme = [line for doc, _, line in commands if doc == "README.md"]
    assert len(readme) >= 10, readme
    assert any("/api/v1/token" in line for line in readme) and any("/api/upload" in line for line in readme)
    for doc in DOCS:  # the BASE the examples assume is on loopback, like the local stack
        for base in re.findall(r"^BASE=(\S+)", doc.read_text(), re.M):
            assert urlsplit(base).hostname in LOOPBACK, base


@pytest.mark.parametrize("line", COMMANDS)
def test_it_runs_the_documented_curl_line_against_the_live_stack(
    line, stack, admin, admin_token, workdir, ready_id, doc_accounts
):
    image_id = ready_id
    if re.search(r"-X\s+DELETE\b", line):  # a throwaway image, so the other lines keep theirs
        image_id = upload(admin)["id"]
        wait_until_not_pending(admin, image_id)
    command = re.sub(r"\bPASSWORD\b", ADMIN_PASSWORD, line)
    command = re.sub(r"\bID\b", image_id, command)
    env = {**os.environ, "BASE": stack.web_url, "TOKEN": admin_token}

    assignment = re.match(r"^([A-Z_]+)=\$\(", command)
    if assignment:  # e.g. TOKEN=$(curl ... | python3 -c ...): it must set the variable
        name = assignment.group(1)
        result = _run(f'{command}\nprintf %s "${name}"', env, workdir)
        assert result.returncode == 0, result.stderr
        if name == "TOKEN":
            assert result.stdout == admin_token
        else:
            assert result.stdout
        return

    assert command.startswith("curl "), f"a curl line the test does not know how to run: {line}"
    result = _run("curl -s -w '\\n%{http_code}'" + command[len("curl") :], env, workdir)
    assert result.returncode == 0, f"curl exited {result.returncode}: {result.stderr}"
    body, _, status = result.stdout.rpartition("\n")
    expected = next((s for pattern, s, _ in EXPECTED if pattern.search(line)), None)
    if expected is not None:
        assert int(status) == expected, f"{status} {body[:300]}"
    else:
        assert 200 <= int(status) < 300, f"{status} {body[:300]}"

    output = re.search(r"\s-o\s+(\S+)", command)
    if output and output.group(1).endswith(".jpg"):  # a downloaded rendition: a real JPEG of that size
        data = (workdir / output.group(1)).read_bytes()
        name = re.search(r"/i/[^/\s]+/(\w+)", command).group(1)
        sizes = {"small": (100, 75), "medium": (300, 225), "large": (600, 450), "original": (640, 480)}
        if name in sizes:
            assert pixel_size(data) == sizes[name]


def test_it_skips_only_the_remote_url_example():
    """A new skip must be a deliberate one: today only the fetch of https://example.com/cat.jpg."""
    skipped = [p.values[0] for p in COMMANDS if any(m.name == "skip" for m in p.marks)]
    assert len(skipped) == 1 and "https://example.com/cat.jpg" in skipped[0], skipped
