"""What replicas share: the update ledger and the scheduled-job lock (real Redis; memory for one
process), and migrations run by several processes at once (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.replicas import Claim, MemoryLedger, RedisLedger, UpdateLedger, once_per_fire
from storage.db import create_engine
from storage.stats import load_shop_cuts, recompute_shop_stats

ROOT = Path(__file__).resolve().parents[2]


async def _ledger_semantics(ledger: UpdateLedger) -> None:
    assert await ledger.claim(1) is Claim.MINE
    assert await ledger.claim(1) is Claim.BUSY  # another replica is on it: Telegram retries later
    await ledger.finish(1)
    assert await ledger.claim(1) is Claim.DONE  # a re-delivery of a handled update is skipped
    assert await ledger.claim(2) is Claim.MINE
    await ledger.release(2)  # failed: the next delivery handles it
    assert await ledger.claim(2) is Claim.MINE


async def test_memory_ledger() -> None:
    await _ledger_semantics(MemoryLedger())


async def test_memory_ledger_forgets_the_oldest_beyond_its_size() -> None:
    ledger = MemoryLedger(size=3)
    for update_id in range(5):
        assert await ledger.claim(update_id) is Claim.MINE
        await ledger.finish(update_id)
    assert await ledger.claim(4) is Claim.DONE
    assert await ledger.claim(0) is Claim.MINE


async def test_redis_ledger_shared_by_two_replicas(redis_url: str) -> None:
    bot_id = secrets.randbelow(10**9)
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        await _ledger_semantics(RedisLedger(one, bot_id))
        # Claims race: of two replicas handed the same update, exactly one handles it.
        first, second = RedisLedger(one, bot_id), RedisLedger(two, bot_id)
        claims = await asyncio.gather(*(ledger.claim(7) for ledger in (first, second) for _ in range(10)))
        assert claims.count(Claim.MINE) == 1
        ttl = await one.ttl(f"touchpoint:update:{bot_id}:7")
        assert 0 < ttl <= 60  # a replica killed mid-update leaves a claim that expires
        await first.finish(7)
        assert 3600 < await one.ttl(f"touchpoint:update:{bot_id}:7") <= 24 * 3600
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_scheduled_job_runs_on_one_replica(redis_url: str) -> None:
    runs: list[str] = []
    job_id = f"test-job-{secrets.token_hex(4)}"

    async def job(replica: str) -> None:
        runs.append(replica)

    clients = [Redis.from_url(redis_url) for _ in range(3)]
    try:
        guarded = [once_per_fire(client, job_id, job, bot_id=42) for client in clients]
        await asyncio.gather(*(run(f"replica-{i}") for i, run in enumerate(guarded)))
        assert len(runs) == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_without_redis_the_job_is_not_wrapped() -> None:
    async def job() -> str:
        return "ran"

    assert once_per_fire(None, "x", job, bot_id=42) is job


@pytest.mark.postgres
async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    # Processes, as replicas are (Alembic's context is per process, not per thread).
    env = {**os.environ, "DATABASE_URL": pg_url, "PYTHONPATH": str(ROOT)}
    migrations = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "migrate",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    for process in migrations:
        output, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, output.decode()  # none fails on a table another created
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            tables = (
                await conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename = 'care_message'"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert len(versions) == 1 and tables == 1


async def test_replicas_starting_together_on_an_empty_shop_compute_the_cuts_once_each(
    engine: AsyncEngine,
) -> None:
    # Each replica computes the cut points at start when there are none; on PostgreSQL they race.
    await asyncio.gather(*(recompute_shop_stats(engine) for _ in range(4)))
    async with AsyncSession(engine) as session:
        assert await load_shop_cuts(session) is not None
