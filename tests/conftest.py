"""Shared test set-up: compiled catalogues, and the PostgreSQL URL for storage tests."""

from __future__ import annotations

from bot.i18n import compile_catalogs

compile_catalogs()
