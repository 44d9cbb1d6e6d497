"""`python -m bot import events FILE` replays a JSON Lines file into the running bot through its
events API: good events land, each bad line is reported with its number, a second replay changes
nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e


def line(event_id: str, kind: str, **data: object) -> str:
    event = {"id": event_id, "type": kind, "occurred_at": "2026-11-20T10:00:00+08:00", "data": data}
    return json.dumps(event, ensure_ascii=False)


def test_a_replay_lands_good_events_reports_bad_lines_and_is_idempotent(
    bot_process: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                line("rp-1", "order.created", order_id="RP-1", customer_id="RP-C1", amount="128.00"),
                '{"id": "rp-2", "type": ',
                line("rp-3", "order.teleported", order_id="RP-1"),
                line("rp-4", "order.paid", order_id="RP-NOPE"),
                line("rp-5", "order.paid", order_id="RP-1"),
                "",
                line("rp-7", "customer.upserted", customer_id="RP-C1", nickname="回放客户"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    errors = tmp_path / "errors.txt"
    first = run_cli(bot_process, "import", "events", str(events), "--errors", str(errors))
    assert first.returncode == 1, first.stdout + first.stderr
    reported = errors.read_text(encoding="utf-8").splitlines()
    assert [r.split(":")[1] for r in reported] == ["2", "3", "4"], reported
    assert "not valid JSON" in reported[0] and "RP-NOPE" in reported[2]
    db = bot_process["DATABASE_URL"].split("///", 1)[1]
    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM orders WHERE order_no = 'RP-1'").fetchone()
        nickname = conn.execute("SELECT nickname FROM customer WHERE external_id = 'RP-C1'").fetchone()
    assert status == ("paid",) and nickname == ("回放客户",)

    again = run_cli(bot_process, "import", "events", str(events), "--errors", str(errors))
    assert again.returncode == 1
    assert errors.read_text(encoding="utf-8").splitlines() == reported
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM shop_event WHERE id LIKE 'rp-%'").fetchone()
    assert stored == (3,), "the second replay stored nothing new"


def test_a_replay_with_the_wrong_secret_stops_with_a_clear_line(
    bot_process: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(line("rs-1", "order.created", order_id="RS-1", customer_id="RS-C1", amount="1") + "\n")
    result = run_cli({**bot_process, "EVENTS_SECRET": "not-the-bot's"}, "import", "events", str(events))
    assert result.returncode == 2
    assert "EVENTS_SECRET differs" in result.stdout + result.stderr
