"""Telegram's webhook: aiogram's aiohttp handler, plus what several replicas behind one address need.

- A call without the right ``X-Telegram-Bot-Api-Secret-Token`` gets 403 and is logged (without
  the token it carried); nothing is handled.
- Each update is handled once: the ledger (Redis with several replicas) claims its ``update_id``.
  A re-delivery of a handled update gets 200 and is skipped; one that another replica is handling
  right now gets 503, so Telegram tries again later instead of the update being lost.
- The update is acknowledged only after it was handled, so a replica killed mid-update leaves it to
  Telegram's re-delivery (and the claim expires); an infrastructure failure answers 503 likewise.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.metrics import METRICS
from bot.replicas import Claim, UpdateLedger

log = logging.getLogger(__name__)


class InfrastructureDown(Exception):
    """The database or Redis did not answer: the update must be re-delivered, not dropped."""


class TeamWebhookHandler(SimpleRequestHandler):
    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, ledger: UpdateLedger, **data: Any
    ) -> None:
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret_token, **data)
        self.ledger = ledger

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not secrets.compare_digest(given.encode(), (self.secret_token or "").encode()):
            METRICS.webhook_refused.inc()
            log.warning(
                "webhook call refused from %s: %s secret token",
                request.remote,
                "no" if not given else "a wrong",
            )
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            update = await request.json(loads=self.bot.session.json_loads)
            update_id = int(update["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "not a Telegram update"}, status=400)
        try:
            claim = await self.ledger.claim(update_id)
        except Exception as exc:  # Redis away: Telegram will re-deliver
            log.warning("update ledger unavailable (%s): asking Telegram to re-deliver", type(exc).__name__)
            return _retry_later()
        if claim is Claim.DONE:
            METRICS.updates_duplicate.inc()
            return web.json_response({})
        if claim is Claim.BUSY:
            return _retry_later()
        try:
            result = await self.dispatcher.feed_webhook_update(self.bot, update, **self.data)
        except InfrastructureDown as exc:
            await self._release(update_id)
            log.warning("update %s deferred: %s", update_id, exc)
            return _retry_later()
        except BaseException:
            await self._release(update_id)
            raise
        try:
            await self.ledger.finish(update_id)
        except Exception:  # handled; at worst a re-delivery is handled again
            log.warning("could not mark update %s as handled", update_id)
        return web.Response(body=self._build_response_writer(bot=self.bot, result=result))

    async def _release(self, update_id: int) -> None:
        try:
            await self.ledger.release(update_id)
        except Exception:
            log.warning("could not release update %s; its claim expires by itself", update_id)

    async def close(self) -> None:
        """The app owns the bot's session and closes it last, after the engines' final sends."""


def _retry_later() -> web.Response:
    return web.json_response({"error": "temporarily unavailable"}, status=503, headers={"Retry-After": "5"})
