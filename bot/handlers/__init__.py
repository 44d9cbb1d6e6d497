"""Routers in the order they are tried; the catch-all comes last."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import admin, cards, errors, fallback


def all_routers() -> list[Router]:
    return [errors.router, admin.router, cards.router, fallback.router]
