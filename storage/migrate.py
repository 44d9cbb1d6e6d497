"""Alembic, driven from code: `python -m bot migrate` and the upgrade at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from storage.db import ensure_sqlite_dir

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)
    if revision == "head":
        _restore_bulk_import_indexes(database_url)


def _restore_bulk_import_indexes(database_url: str) -> None:
    """Indexes a bulk import into SQLite drops while it runs (storage.figures.FIGURE_INDEXES), built
    again in case one was killed before its end."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    from storage.figures import restore_figure_indexes  # loads the models; only SQLite needs it

    engine = create_engine(url.set(drivername="sqlite"), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            restore_figure_indexes(conn)
    finally:
        engine.dispose()


async def upgrade_async(database_url: str) -> None:
    # env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade, database_url)
