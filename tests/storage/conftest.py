"""Storage fixtures: a fresh SQLite file per test, and each test run on both databases
(the PostgreSQL database per test comes from tests/conftest.py's `pg_url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine
from storage.migrate import upgrade_async


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return "sqlite+aiosqlite:///" + str(tmp_path / "t.db")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test on both databases."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database, on each of SQLite and PostgreSQL in turn."""
    await upgrade_async(db_url)
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()
