"""The ceiling for the throughput benchmarks: a bare aiogram echo bot, no database.

Long polling (bench/e2e_throughput.py), or Telegram's webhook when WEBHOOK_URL is set
(bench/webhook_replicas.py): aiogram's SimpleRequestHandler on HTTP_PORT, checking WEBHOOK_SECRET and
answering the webhook only after the update was handled, as Touchpoint's webhook does; on uvloop, as
Touchpoint runs. Each process sets the same webhook at start, like Touchpoint's replicas.
"""

from __future__ import annotations

import asyncio
import os
import signal
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> None:
    await message.answer(message.text or "")


def make_bot() -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_BASE"]))
    return Bot(os.environ["TELEGRAM_BOT_TOKEN"], session=session)


async def main() -> None:
    await dp.start_polling(make_bot(), handle_signals=True)


async def main_webhook(url: str) -> None:
    bot = make_bot()
    secret = os.environ["WEBHOOK_SECRET"]
    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token=secret).register(
        app, path=urlsplit(url).path or "/"
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["HTTP_PORT"])).start()
    await bot.set_webhook(
        url,
        secret_token=secret,
        allowed_updates=dp.resolve_used_update_types(),
        max_connections=int(os.environ.get("WEBHOOK_MAX_CONNECTIONS", "40")),
        drop_pending_updates=False,
    )
    print("webhook set", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.session.close()


if __name__ == "__main__":
    if webhook_url := os.environ.get("WEBHOOK_URL"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main_webhook(webhook_url))
    else:
        asyncio.run(main())
