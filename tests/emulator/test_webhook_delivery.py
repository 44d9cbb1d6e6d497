"""Webhook delivery over real HTTP: concurrency up to max_connections, bot replicas behind one address
(round-robin, a replica down, killed and restored), the secret token, replays and the control API.

The replicas are real aiohttp servers on loopback; the emulator is the real app on its own port.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from aiohttp import web

from sandbox.emulator import Emulator
from tests.emulator.conftest import TOKEN, Api

SECRET = "replica_secret-1"


class Replica:
    """A stand-in for one bot process behind the webhook address: records what reached it."""

    def __init__(self, *, status: int = 200, delay: float = 0.0, reply: dict[str, Any] | None = None) -> None:
        self.status, self.delay, self.reply = status, delay, reply
        self.received: list[int] = []  # update_ids as they arrived
        self.answered: list[int] = []  # update_ids it answered (2xx or not) before anything cut it off
        self.secrets: set[str | None] = set()
        self.in_flight = 0
        self.peak = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tg"

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        update = await request.json()
        self.received.append(update["update_id"])
        self.secrets.add(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.answered.append(update["update_id"])
        if self.status != 200:
            return web.Response(status=self.status)
        return web.json_response(self.reply or {})

    async def start(self) -> Replica:
        """Listen (again on the same port after :meth:`kill`, as a restarted process would)."""
        app = web.Application()
        app.router.add_post("/tg", self._hook)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def kill(self) -> None:
        """Stop listening and cut open requests, as SIGKILL does to a bot process."""
        if self._runner is None:
            return
        server = self._runner.server
        for connection in list(server.connections if server is not None else []):
            if connection.transport is not None:
                connection.transport.abort()  # no graceful finish of the requests in flight
        await self._runner.cleanup()
        self._runner = None


@pytest_asyncio.fixture
async def emulator() -> Emulator:
    return Emulator(webhook_retry_delay=0.05, webhook_attempts=8)


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[Callable[..., Any]]:
    started: list[Replica] = []

    async def make(**kwargs: Any) -> Replica:
        replica = await Replica(**kwargs).start()
        started.append(replica)
        return replica

    yield make
    for replica in started:
        await replica.kill()


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def users_write(api: Api, count: int, first_user: int = 5000) -> list[int]:
    """``count`` users each write once in their own private chat (so no per-chat ordering holds them)."""
    ids = []
    for user_id in range(first_user, first_user + count):
        user = {"id": user_id, "first_name": f"U{user_id}"}
        ids.append((await api.user_says(f"order {user_id}", chat_id=user_id, user=user))["update_id"])
    return ids


async def deliveries(api: Api) -> Any:
    return await api.control_ok("GET", "/webhook/deliveries", params={"token": TOKEN})


async def all_delivered(api: Api, update_ids: list[int], seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        log = await deliveries(api)
        if log["pending"] == 0 and all(str(u) in log["updates"] for u in update_ids):
            return log
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.02)


async def set_backends(api: Api, *replicas: Replica, **extra: Any) -> None:
    body = {"token": TOKEN, "urls": [r.url for r in replicas], **extra}
    await api.control_ok("POST", "/webhook/backends", json=body)


# --------------------------------------------------------------------------- concurrency


async def test_deliveries_in_flight_reach_max_connections(api: Api, replicas: Callable[..., Any]) -> None:
    slow = await replicas(delay=0.3)
    await api.ok("setWebhook", url=slow.url, max_connections=5)
    sent = await users_write(api, 12)
    await eventually(lambda: slow.in_flight == 5)
    info = await api.ok("getWebhookInfo")
    assert info["max_connections"] == 5 and info["pending_update_count"] == 12  # in flight still pending
    await asyncio.sleep(0.05)
    assert slow.in_flight == 5  # never more than max_connections
    log = await all_delivered(api, sent)
    assert slow.peak == 5 and log["peak_in_flight"] == 5
    assert sorted(slow.received) == sent
    assert (await api.ok("getWebhookInfo"))["pending_update_count"] == 0


async def test_one_chat_is_delivered_one_update_at_a_time_in_order(
    api: Api, replicas: Callable[..., Any]
) -> None:
    replica = await replicas(delay=0.02)
    await api.ok("setWebhook", url=replica.url)
    sent = [(await api.user_says(f"m{i}"))["update_id"] for i in range(6)]
    await all_delivered(api, sent)
    assert replica.received == sent and replica.peak == 1


async def test_max_connections_is_clamped_and_an_unchanged_set_webhook_keeps_delivering(
    api: Api, replicas: Callable[..., Any]
) -> None:
    replica = await replicas(delay=0.2)
    await api.ok("setWebhook", url=replica.url, max_connections=500)
    assert (await api.ok("getWebhookInfo"))["max_connections"] == 100
    await api.ok("setWebhook", url=replica.url, max_connections=0)
    assert (await api.ok("getWebhookInfo"))["max_connections"] == 1
    sent = await users_write(api, 1)
    await eventually(lambda: replica.in_flight == 1)
    # A replica re-registering at start-up with the same parameters must not restart delivery.
    await api.ok("setWebhook", url=replica.url, max_connections=1)
    await all_delivered(api, sent)
    assert replica.received == sent


# --------------------------------------------------------------------------- replicas behind one address


async def test_round_robin_spreads_evenly_and_sends_the_secret_to_every_backend(
    api: Api, replicas: Callable[..., Any]
) -> None:
    first, second = await replicas(), await replicas()
    await set_backends(api, first, second)
    await api.ok("setWebhook", url="https://bot.example/tg", secret_token=SECRET)
    sent = await users_write(api, 20)
    log = await all_delivered(api, sent)
    assert len(first.received) == len(second.received) == 10
    assert sorted(first.received + second.received) == sent
    assert first.secrets == second.secrets == {SECRET}
    assert set(log["updates"].values()) == {1}
    for replica in (first, second):
        assert log["backends"][replica.url] == {"attempts": 10, "ok": 10, "failures": 0, "last_error": None}
    backends = await api.control_ok("GET", "/webhook/backends")
    assert backends["bots"][TOKEN.split(":")[0]]["urls"] == [first.url, second.url]


async def test_a_backend_down_sends_everything_once_through_the_other(
    api: Api, replicas: Callable[..., Any]
) -> None:
    alive, down = await replicas(), await replicas()
    await down.kill()  # nothing listens on its port: connection refused
    await set_backends(api, down, alive, fail_timeout=0)
    await api.ok("setWebhook", url="https://bot.example/tg")
    sent = await users_write(api, 10)
    log = await all_delivered(api, sent)
    assert sorted(alive.received) == sent
    assert set(log["updates"].values()) == {1}
    assert log["backends"][down.url]["ok"] == 0
    assert log["backends"][down.url]["last_error"] == "Connection refused"
    assert "last_error_date" not in await api.ok("getWebhookInfo")  # the proxy hid the failures


async def test_a_backend_killed_mid_way_and_restored(api: Api, replicas: Callable[..., Any]) -> None:
    first, second = await replicas(delay=0.1), await replicas(delay=0.1)
    await set_backends(api, first, second, fail_timeout=0.2)
    await api.ok("setWebhook", url="https://bot.example/tg")
    wave = await users_write(api, 20)
    await eventually(lambda: second.in_flight > 0)
    await second.kill()  # requests open at the second replica are cut: the proxy resends them
    log = await all_delivered(api, wave)
    assert set(log["updates"].values()) == {1}
    assert set(first.answered) == set(wave)
    cut = set(second.received)
    assert cut and cut <= set(first.received)

    await second.start()  # restarted on the same port
    await asyncio.sleep(0.25)  # past fail_timeout
    second.answered.clear()
    later = await users_write(api, 10, first_user=6000)
    log = await all_delivered(api, wave + later)
    assert set(log["updates"].values()) == {1}
    assert second.answered and set(first.answered) | set(second.answered) >= set(later)


async def test_all_backends_down_is_a_502_for_telegram_and_delivery_resumes(
    api: Api, replicas: Callable[..., Any]
) -> None:
    only = await replicas()
    await only.kill()
    await set_backends(api, only, fail_timeout=0)
    await api.ok("setWebhook", url="https://bot.example/tg")
    sent = await users_write(api, 1)
    for _ in range(200):
        info = await api.ok("getWebhookInfo")
        if "last_error_message" in info:
            break
        await asyncio.sleep(0.01)
    assert info["last_error_message"] == "Wrong response from the webhook: 502 Bad Gateway"
    assert info["pending_update_count"] == 1
    await only.start()
    await all_delivered(api, sent)
    assert only.received == sent


async def test_a_backend_answering_500_is_passed_through_and_retried(
    api: Api, replicas: Callable[..., Any]
) -> None:
    broken, healthy = await replicas(status=500), await replicas()
    await set_backends(api, broken, healthy)
    await api.ok("setWebhook", url="https://bot.example/tg")
    sent = await users_write(api, 1)
    log = await all_delivered(api, sent)
    assert broken.received == sent and healthy.received == sent  # the retry went round to the next
    assert log["updates"] == {str(sent[0]): 1}
    assert log["backends"][broken.url]["failures"] == 1
    info = await api.ok("getWebhookInfo")
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"


async def test_a_slow_backend_times_out_to_the_next(api: Api, replicas: Callable[..., Any]) -> None:
    slow, quick = await replicas(delay=2.0), await replicas()
    await set_backends(api, slow, quick, timeout=0.2)
    await api.ok("setWebhook", url="https://bot.example/tg")
    sent = await users_write(api, 4)
    log = await all_delivered(api, sent)
    assert sorted(quick.received) == sent
    assert log["backends"][slow.url]["last_error"] == "Read timeout expired"
    assert set(log["updates"].values()) == {1}


async def test_backends_off_again_delivers_to_the_webhook_url(api: Api, replicas: Callable[..., Any]) -> None:
    direct, behind = await replicas(), await replicas()
    await api.control_ok("POST", "/webhook/backends", json={"urls": [behind.url]})  # every bot
    await api.ok("setWebhook", url=direct.url)
    first = await users_write(api, 2)
    await all_delivered(api, first)
    await api.control_ok("POST", "/webhook/backends", json={"urls": []})
    assert (await api.control_ok("GET", "/webhook/backends"))["default"] is None
    second = await users_write(api, 2, first_user=7000)
    await all_delivered(api, second)
    assert sorted(behind.received) == first and sorted(direct.received) == second


# --------------------------------------------------------------------------- replays and replies


async def test_redeliver_replays_a_delivered_update_and_its_reply(
    api: Api, replicas: Callable[..., Any]
) -> None:
    reply = {"method": "sendMessage", "chat_id": 5000, "text": "card"}
    replica = await replicas(reply=reply)
    await api.ok("setWebhook", url=replica.url, secret_token=SECRET)
    sent = await users_write(api, 1)
    await all_delivered(api, sent)
    replay = await api.control_ok("POST", "/webhook/redeliver", json={"update_id": sent[0]})
    assert replay == {"update_id": sent[0], "status": 200, "backend": replica.url, "error": None}
    assert replica.received == sent * 2 and replica.secrets == {SECRET}
    assert (await deliveries(api))["updates"] == {str(sent[0]): 2}
    # The reply is executed again, as Telegram would: a bot that does not deduplicate answers twice.
    texts = [
        m["text"]
        for m in await api.control_ok("GET", "/chats/5000/messages")
        if m.get("from", {}).get("is_bot")
    ]
    assert texts == ["card", "card"]

    replica.status = 500
    replay = await api.control_ok("POST", "/webhook/redeliver", json={"update_id": sent[0], "token": TOKEN})
    assert replay["status"] == 500 and replay["error"].endswith("500 Internal Server Error")
    assert (await deliveries(api))["updates"] == {str(sent[0]): 2}
    await api.control_ok("DELETE", "/webhook/deliveries", params={"token": TOKEN})
    assert (await deliveries(api))["updates"] == {}


async def test_reply_methods_telegram_refuses_are_not_run(api: Api, replicas: Callable[..., Any]) -> None:
    replica = await replicas(reply={"method": "deleteWebhook"})
    await api.ok("setWebhook", url=replica.url)
    await all_delivered(api, await users_write(api, 1))
    assert (await api.ok("getWebhookInfo"))["url"] == replica.url


# --------------------------------------------------------------------------- control API input


async def test_malformed_webhook_control_requests_are_400(api: Api, replicas: Callable[..., Any]) -> None:
    replica = await replicas()
    bad_backends: list[Any] = [
        {},
        {"urls": "http://127.0.0.1:1/tg"},
        {"urls": ["ftp://127.0.0.1/tg"]},
        {"urls": [1]},
        {"urls": [replica.url, replica.url]},
        {"urls": [], "timeout": 0},
        {"urls": [], "fail_timeout": -1},
        {"urls": [], "token": "not-a-token"},
        [replica.url],
    ]
    for body in bad_backends:
        status, answer = await api.control("POST", "/webhook/backends", json=body)
        assert status == 400 and answer["ok"] is False and answer["error"], body
    status, answer = await api.control("POST", "/webhook/backends", data=b"{urls")
    assert status == 400 and "not valid JSON" in answer["error"]

    status, answer = await api.control("POST", "/webhook/redeliver", json={})
    assert status == 400 and '"update_id" is required' in answer["error"]
    status, answer = await api.control("POST", "/webhook/redeliver", json={"update_id": 999})
    assert status == 400 and "has not been delivered" in answer["error"]
    await api.ok("setWebhook", url=replica.url)
    status, answer = await api.control("POST", "/webhook/redeliver", json={"update_id": 999, "token": TOKEN})
    assert status == 400 and "has not been delivered" in answer["error"]
    await api.ok("deleteWebhook")
    status, answer = await api.control("POST", "/webhook/redeliver", json={"update_id": 1, "token": TOKEN})
    assert status == 400 and "no webhook" in answer["error"]
    status, answer = await api.control("GET", "/webhook/deliveries", params={"token": "x"})
    assert status == 400 and "malformed bot token" in answer["error"]


async def test_many_updates_go_out_quickly(
    api: Api, emulator: Emulator, replicas: Callable[..., Any]
) -> None:
    """A cheap engine: thousands of pending updates need no per-update scans of the pending list."""
    first, second = await replicas(), await replicas()
    await set_backends(api, first, second)
    await api.ok("setWebhook", url="https://bot.example/tg")
    count = 3000
    started = time.monotonic()
    for i in range(count):
        user = {"id": 10_000 + i % 300, "first_name": "U"}
        emulator.post_user_message(user["id"], user, f"#{i}")
    log = await all_delivered(api, [], seconds=30)
    elapsed = time.monotonic() - started
    assert sum(log["updates"].values()) == count and len(log["updates"]) == count
    assert Counter(len(r.received) for r in (first, second)) == Counter({count // 2: 2})
    assert elapsed < 15, elapsed
