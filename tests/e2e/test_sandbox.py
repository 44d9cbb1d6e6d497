"""`python -m bot sandbox`: emulator + bot + demo data + the chat page in one process, usable with no token.

The page itself is driven in a real browser by tests/browser/."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sandbox.runner import GROUP_ID, PEOPLE
from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import ROOT, free_port, stop, wait_until

pytestmark = pytest.mark.e2e


def test_sandbox_starts_with_demo_data_and_answers_a_card(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env["PYTHONPATH"] = str(ROOT)
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", str(port), "--customers", "60", "--no-chat"],
        cwd=tmp_path,  # its database lands under the working directory, not in the repository
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        emulator = Emulator(f"http://127.0.0.1:{port}")
        bound = lambda: any("Touchpoint" in (m.get("text") or "") for m in emulator.messages(GROUP_ID))  # noqa: E731
        wait_until(bound, timeout=90, what="the sandbox to bind its demo group")
        agent = ChatUser(emulator, GROUP_ID, PEOPLE["agent"])
        (reply,) = agent.send("/card 王")
        assert "王" in reply["text"]  # a pick list or a card, in Chinese for this agent
        assert (tmp_path / "data" / "sandbox.db").exists()
        # The chat page on the same port, announced at start.
        assert f"open http://127.0.0.1:{port}/ in a browser" in (tmp_path / "sandbox.log").read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"/sandbox/page/app.js" in response.read()
        feed = emulator.call("GET", "/sandbox/api/feed", **{"as": "agent", "chat": "group", "timeout": 0})
        assert any("王" in m["text"] for m in feed["messages"] if m["from"]["is_bot"])
    finally:
        stop(process)
        print((tmp_path / "sandbox.log").read_text())
