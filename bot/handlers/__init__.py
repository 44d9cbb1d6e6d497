"""Routers in the order they are tried; the catch-all comes last."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import admin, cards, care, errors, fallback, followups


def all_routers() -> list[Router]:
    # Cards first: look-ups are most of the traffic, and no admin command matches their filters.
    return [errors.router, cards.router, followups.router, care.router, admin.router, fallback.router]
