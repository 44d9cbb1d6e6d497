"""Shared test set-up: compiled catalogues, and a fresh PostgreSQL database per test.

PostgreSQL is the server at TOUCHPOINT_TEST_PG (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
each test that asks for `pg_url` gets its own database `touchpoint_test_<random>`, created through the
server's `postgres` database and dropped afterwards. Those tests are skipped, with the reason, only
when the server cannot be reached.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.i18n import compile_catalogs

compile_catalogs()

PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _pg_server_url() -> str:
    return os.environ.get("TOUCHPOINT_TEST_PG", PG_DEFAULT)


def _asyncpg_dsn(url: str, database: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN for asyncpg, pointed at another database."""
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    server = _pg_server_url()
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(server, "postgres"), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(server).render_as_string()}: {exc}")
    name = f"touchpoint_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


REDIS_DEFAULT = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The Redis server at TOUCHPOINT_TEST_REDIS (default 127.0.0.1:6379, database 15); tests that ask
    for it are skipped, with the reason, only when it cannot be reached. Keys are per test (random ids)."""
    from redis.asyncio import Redis

    url = os.environ.get("TOUCHPOINT_TEST_REDIS", REDIS_DEFAULT)
    client = Redis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    finally:
        await client.aclose()
    yield url
