"""Interpreter settings for a serving process, applied once the app is built."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move everything start-up made (modules, ORM metadata, pydantic validators, i18n catalogues:
    a few hundred thousand objects) out of the cyclic collector's reach. Otherwise each full
    collection walks all of it, 100-230 ms with the event loop and the SQLite writer stopped,
    several times a second under load (bench/event_api.py): the p99 of every request."""
    gc.collect()
    gc.freeze()
