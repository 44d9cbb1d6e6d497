"""Fixtures for the Bot API emulator tests: a real server on a free loopback port and a thin HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio

from sandbox.emulator import Emulator, start_emulator

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
OTHER_TOKEN = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_ID = 123456789
USER = {"id": 1001, "first_name": "Ann", "username": "ann"}
OTHER_USER = {"id": 1002, "first_name": "Bob"}
GROUP_ID = -1001234567890


class FakeClock:
    """A monotonic clock tests move by hand, so rate-limit tests need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """Calls the emulator over real HTTP; every helper returns (status, decoded JSON or text)."""

    session: aiohttp.ClientSession
    base_url: str

    async def bot(self, method: str, token: str = TOKEN, **params: Any) -> tuple[int, Any]:
        async with self.session.post(f"{self.base_url}/bot{token}/{method}", json=params) as response:
            return response.status, await response.json()

    async def control(self, verb: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(verb, f"{self.base_url}/control{path}", **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def ok(self, method: str, token: str = TOKEN, **params: Any) -> Any:
        status, body = await self.bot(method, token, **params)
        assert status == 200 and body["ok"], body
        return body["result"]

    async def control_ok(self, verb: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.control(verb, path, **kwargs)
        assert status == 200, body
        return body

    async def user_says(
        self, text: str, chat_id: int = USER["id"], user: dict[str, Any] = USER, **extra: Any
    ) -> Any:
        body = {"chat_id": chat_id, "from": user, "text": text, **extra}
        return await self.control_ok("POST", "/messages", json=body)

    async def group(self, chat_id: int = GROUP_ID, **extra: Any) -> Any:
        body = {"id": chat_id, "type": "supergroup", "title": "Support", **extra}
        return await self.control_ok("POST", "/chats", json=body)


@pytest_asyncio.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def emulator() -> Emulator:
    return Emulator(webhook_retry_delay=0.05)


@pytest_asyncio.fixture
async def base_url(emulator: Emulator) -> AsyncIterator[str]:
    runner, url = await start_emulator("127.0.0.1", 0, emulator)
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def api(base_url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, base_url)
