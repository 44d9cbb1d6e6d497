"""What the shop and the wall clock do in end-to-end tests: signed events over HTTP, time moving on."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bot.clock import Clock


def advance(env: dict[str, str], minutes: float) -> None:
    """Move the bot's clock forward (the bot reads the offset file on its next look at the time)."""
    Clock(Path(env["SANDBOX_CLOCK_FILE"])).advance_minutes(minutes)


def settle(env: dict[str, str], timeout: float = 10.0) -> None:
    """Wait until the bot has recorded every reminder it posted (nothing left mid-send), so that a
    clock moved next counts from the moment the bot really posted it."""
    path = env["DATABASE_URL"].split("///", 1)[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(path) as db:
            if db.execute("SELECT count(*) FROM follow_up WHERE state = 'firing'").fetchone()[0] == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the bot did not finish recording its reminders")


def post_events(
    env: dict[str, str], body: Any, *, secret: str | None = None, age: int = 0
) -> tuple[int, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    stamp = str(int(time.time()) - age)
    key = (secret or env["EVENTS_SECRET"]).encode()
    signature = "sha256=" + hmac.new(key, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{env['HTTP_PORT']}/api/events",
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Touchpoint-Timestamp": stamp,
            "X-Touchpoint-Signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def event(event_id: str, kind: str, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "occurred_at": "2026-11-23T10:00:00+08:00", "data": data}
