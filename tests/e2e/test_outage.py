"""PostgreSQL and Redis going away for 30 s under a bot in webhook mode: the bot says it is
degraded, retries, loses nothing, and recovers by itself.

The servers are shared, so the outage is made by a TCP proxy between the bot and each of them
(tests/outage_proxy.py): open connections are reset and new ones refused, as when a server dies.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _asyncpg_dsn, _pg_server_url
from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import AGENT, DATA, LEAD, bot_env, run_cli, stop, wait_until
from tests.e2e.shop import advance
from tests.e2e.test_webhook import SECRET, http, launch_webhook_bot
from tests.outage_proxy import OutageProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# A bot id of its own each run: the ledger in Redis remembers update ids for 24 hours, and a new
# emulator counts them from 1 again.
TOKEN = f"{5_200_000_000 + secrets.randbelow(10**8)}:AAE-touchpoint-outage-test-token-0000"
GROUP = -1006100000001
OUTAGE_SECONDS = 30


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database on the real server (skipped, with the reason, when there is none)."""
    server = _pg_server_url()
    name = f"touchpoint_outage_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(server, "postgres"), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(server).render_as_string()}: {exc}")
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def handled(emulator: Emulator) -> bool:
    deliveries = emulator.call("GET", "/control/webhook/deliveries", token=TOKEN)
    return deliveries["in_flight"] == 0 and deliveries["pending"] == 0


def ready(env: dict[str, str]) -> dict[str, str]:
    status, body = http("GET", f"http://127.0.0.1:{env['HTTP_PORT']}/readyz")
    return {"http": str(status), **json.loads(body)}


def test_postgres_and_redis_away_for_30_seconds_lose_nothing(
    emulator: Emulator, pg_database: str, tmp_path: Path
) -> None:
    direct = make_url(pg_database)
    with OutageProxy(direct.port or 5432) as pg, OutageProxy(6379) as redis:
        env = bot_env(
            direct.set(port=pg.port).render_as_string(hide_password=False), emulator.base_url, tmp_path, TOKEN
        )
        env.update(
            WEBHOOK_URL=f"http://127.0.0.1:{env['HTTP_PORT']}/tg/hook",
            WEBHOOK_SECRET=SECRET,
            REDIS_URL=f"redis://127.0.0.1:{redis.port}/15",
        )
        loader = dict(env, DATABASE_URL=pg_database)  # the import does not go through the proxy
        for kind in ("customers", "orders"):
            assert run_cli(loader, "import", kind, str(DATA / f"{kind}.csv")).returncode == 0
        log = tmp_path / "bot.log"
        process = launch_webhook_bot(env, log)
        try:
            emulator.create_chat(GROUP, title="Outage team")
            for user in (LEAD, AGENT):
                emulator.add_member(GROUP, user)
            ChatUser(emulator, GROUP, LEAD, token=TOKEN).send("/bind")
            agent = ChatUser(emulator, GROUP, AGENT, token=TOKEN)
            agent.send("/follow C001 no_reply")  # a timer that falls due during the outage
            wait_until(lambda: handled(emulator), what="the /follow update to be fully handled")

            # PostgreSQL goes away.
            pg.down()
            wait_until(lambda: ready(env)["http"] == "503", what="/readyz to say degraded")
            assert ready(env)["database"] != "ok" and ready(env)["redis"] == "ok"
            before = agent.last_id()
            emulator.call(
                "POST",
                "/control/messages",
                {"chat_id": GROUP, "from": AGENT, "text": "/card C002", "token": TOKEN},
            )
            (notice,) = agent.wait_new(before)  # the chat is told once that its request is kept
            assert "degraded" in notice["text"] and "kept" in notice["text"]
            advance(env, 6)  # the follow-up is now due, with no database to fire it
            time.sleep(OUTAGE_SECONDS)
            pg.up()

            # Back: the kept /card is handled (Telegram re-delivered it), the timer fires, once each.
            wait_until(lambda: ready(env)["http"] == "200", timeout=30, what="/readyz to recover")
            messages = agent.wait_new(notice["message_id"], expect=2)
            texts = sorted(m["text"] for m in messages)
            assert any("阿杰" in t for t in texts) and any("time to follow up" in t for t in texts), texts
            assert agent.quiet_for(messages[-1]["message_id"], seconds=2) == []  # no second copy

            # Redis goes away: updates are refused with 503 until it is back, then handled once.
            redis.down()
            wait_until(lambda: ready(env)["http"] == "503", what="/readyz to say Redis is away")
            before = agent.last_id()
            emulator.call(
                "POST",
                "/control/messages",
                {"chat_id": GROUP, "from": AGENT, "text": "/card C003", "token": TOKEN},
            )
            assert agent.quiet_for(before, seconds=OUTAGE_SECONDS / 3) == []
            redis.up()
            (card,) = agent.wait_new(before)
            assert "小鱼干" in card["text"]
            assert agent.quiet_for(card["message_id"], seconds=2) == []
            wait_until(lambda: ready(env)["http"] == "200", what="/readyz to recover from Redis")

            text = log.read_text()
            assert "degraded: the database does not answer" in text and "recovered: the database" in text
            assert "degraded: the redis does not answer" in text and "recovered: the redis" in text
            assert process.poll() is None  # recovered by itself, no restart
        finally:
            stop(process)
