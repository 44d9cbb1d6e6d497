"""Webhook delivery: POST each pending update to the bot's URL, in order, retrying failures.

Like Telegram, a reply body that names a Bot API ``method`` (JSON or multipart, as aiogram's webhook
handler produces) is executed on the bot's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp

from sandbox.emulator_methods import perform
from sandbox.emulator_params import Params, params_from_mapping, read_multipart
from sandbox.emulator_state import Bot, Emulator, Json, Webhook

DELIVERY_TIMEOUT_SECONDS = 10
IDLE_RECHECK_SECONDS = 30.0


async def deliver_updates(emu: Emulator, bot: Bot) -> None:
    """Run until the webhook is replaced or removed, or the emulator stops."""
    webhook = bot.webhook
    if webhook is None:
        return

    def active() -> bool:
        return bot.webhook is webhook and not emu.closing and not bot.detached

    timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        failures = 0
        while active():
            if not bot.updates:
                await emu.signal.wait_until(lambda: bool(bot.updates) or not active(), IDLE_RECHECK_SECONDS)
                continue
            update = bot.updates[0]
            bot.max_fetched_update_id = max(bot.max_fetched_update_id, update["update_id"])
            error = await _post(emu, bot, session, webhook, update)
            if error is None or failures + 1 >= emu.webhook_attempts:
                _forget(emu, bot, update)  # delivered, or given up after the last attempt
                failures = 0
            else:
                failures += 1
            if error is not None:
                webhook.last_error_date = int(time.time())
                webhook.last_error_message = error
                await asyncio.sleep(emu.webhook_retry_delay * 2 ** max(0, failures - 1))


def _forget(emu: Emulator, bot: Bot, update: Json) -> None:
    bot.updates = [u for u in bot.updates if u["update_id"] != update["update_id"]]
    emu.signal.fire()


async def _post(
    emu: Emulator, bot: Bot, session: aiohttp.ClientSession, webhook: Webhook, update: Json
) -> str | None:
    """Deliver one update; None on success, else Telegram's last_error_message wording."""
    headers = {"Content-Type": "application/json"}
    if webhook.secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
    try:
        async with session.post(webhook.url, data=json.dumps(update), headers=headers) as response:
            if not 200 <= response.status < 300:
                return f"Wrong response from the webhook: {response.status} {response.reason}"
            with contextlib.suppress(ValueError, aiohttp.ClientError):  # Telegram ignores broken replies
                await _execute_reply(emu, bot, response)
    except TimeoutError:
        return "Read timeout expired"
    except aiohttp.ClientConnectorError:
        return "Connection refused"
    except aiohttp.ClientError as exc:
        return f"Connection error: {type(exc).__name__}"
    return None


async def _execute_reply(emu: Emulator, bot: Bot, response: aiohttp.ClientResponse) -> None:
    params = Params()
    if response.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = json.loads(await response.read() or b"null")
            if isinstance(body, dict):
                params = params_from_mapping(body)
    elif response.content_type == "multipart/form-data":
        await read_multipart(aiohttp.MultipartReader(response.headers, response.content), params)
    method = params.args.pop("method", "")
    if method:
        await perform(emu, bot.token, method, params)  # errors are ignored, as Telegram does
