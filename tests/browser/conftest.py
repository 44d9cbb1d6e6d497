"""A real `python -m bot sandbox` process and a real browser: Playwright driving Debian's Chromium.

The browser is /usr/bin/chromium (scripts/test installs it with apt when it can); where it is missing
these tests skip and say so. Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

from sandbox.runner import GROUP_ID
from tests.e2e.conftest import ROOT, free_port, stop, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"


@dataclass
class Sandbox:
    base_url: str
    workdir: Path
    log: Path

    def call(self, verb: str, path: str, body: Any = None, *, raw: bytes | None = None, **query: Any) -> Any:
        """(status, JSON body) of a request to the sandbox; never raises on an HTTP error status."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(url, data=data, method=verb)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str, **query: Any) -> Any:
        status, body = self.call("GET", path, **query)
        assert status == 200, body
        return body

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "sandbox.db"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    workdir = tmp_path_factory.mktemp("sandbox_page")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        # Whatever the hour the suite runs at: reminders fire, approved care messages go out at once.
        WORKING_HOURS="00:00-24:00",
        CARE_QUIET_HOURS="off",
    )
    env.pop("SANDBOX_CLOCK_FILE", None)  # the sandbox's own: data/sandbox-clock under its directory
    log = workdir / "sandbox.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", str(port), "--customers", "60", "--no-chat"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    box = Sandbox(f"http://127.0.0.1:{port}", workdir, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the sandbox exited:\n{log.read_text()}")
        status, messages = box.call("GET", f"/control/chats/{GROUP_ID}/messages")
        return status == 200 and len(messages) >= 2 and box.get("/sandbox/api/state")["ready"]

    try:
        wait_until(ready, timeout=90, what="the sandbox to bind its demo group")
        yield box
    finally:
        stop(process)
        print(log.read_text())


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/test installs it with apt-get when run as root)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 860},
            locale="en-US",
            timezone_id="Asia/Shanghai",
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def catalog(lang: str) -> dict[str, str]:
    with (ROOT / "locales" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale=lang) if m.id and isinstance(m.id, str)}


def says(lang: str, msgid: str) -> str:
    """What the bot says for `msgid` in `lang`, up to the first placeholder (for a substring check)."""
    return catalog(lang)[msgid].split("{", 1)[0].strip()
