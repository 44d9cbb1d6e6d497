"""`python -m bot sandbox`: emulator + bot + demo data in one process, usable with no token."""

from __future__ import annotations

import os
import subprocess
import sys
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
    finally:
        stop(process)
        print((tmp_path / "sandbox.log").read_text())
