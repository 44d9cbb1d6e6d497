"""Interpreter settings for a serving process, applied once the app is built."""

from __future__ import annotations

import gc

# A batch of shop events holds tens of thousands of live objects while the writer applies it; at
# the default 700 allocations the young generation was collected (and everything in it found alive
# and promoted, feeding full collections) dozens of times per batch: batches of 100 events went
# from ~5 300 to ~6 200 events/s with this (bench/event_api.py).
YOUNG_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Move everything start-up made (modules, ORM metadata, pydantic validators, i18n catalogues:
    a few hundred thousand objects) out of the cyclic collector's reach. Otherwise each full
    collection walks all of it, 100-230 ms with the event loop and the SQLite writer stopped,
    several times a second under load (bench/event_api.py): the p99 of every request."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
