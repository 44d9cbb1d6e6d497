"""Webhook delivery: POST pending updates to the bot's URL over up to ``max_connections`` connections.

Modelled on the Bot API server's WebhookActor: updates of one chat (callback queries: of one user) form a
queue that has at most one update in flight, so per-chat order holds while different chats go out in
parallel. An update leaves the pending list only after a 2xx; a failed one waits with back-off (its
chat's later updates wait behind it) and is dropped after ``emu.webhook_attempts`` attempts.

With a :class:`~sandbox.emulator_state.WebhookBalancer` set (``POST /control/webhook/backends``) each
request to the webhook address goes round-robin to one of several bot replicas, like a reverse proxy:
a backend that refuses the connection, drops it or times out is skipped to the next; a backend's HTTP
answer, 5xx included, is what Telegram sees.

Like Telegram, a reply body that names a Bot API ``method`` (JSON or multipart, as aiogram's webhook
handler produces) is executed on the bot's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

import aiohttp

from sandbox.emulator_methods import perform
from sandbox.emulator_params import Params, params_from_mapping, read_multipart
from sandbox.emulator_state import (
    ApiError,
    Bot,
    ControlError,
    Emulator,
    Json,
    Webhook,
    WebhookBalancer,
    update_type,
)

IDLE_RECHECK_SECONDS = 30.0
TIMEOUT_ERROR = "Read timeout expired"
# Methods the Bot API server refuses to run from a webhook reply (WebhookActor::handle).
_REPLY_REFUSED = frozenset({"deletewebhook", "setwebhook", "close", "logout"})

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One request to the webhook address: the HTTP status the bot side answered (None: no answer)."""

    status: int | None
    backend: str | None  # the URL that answered
    error: str | None  # None on 2xx, else Telegram's last_error_message wording


def queue_key(update: Json) -> Hashable:
    """The delivery queue an update joins: its chat, a callback query's user, or a queue of its own."""
    body = update.get(update_type(update))
    if isinstance(body, dict):
        if update_type(update) == "callback_query" and isinstance(body.get("from"), dict):
            return ("user", body["from"].get("id"))
        chat = body.get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", chat["id"])
    return ("update", update["update_id"])


class Sender:
    """Sends one update to the webhook address: the URL itself, or the replicas behind the balancer."""

    def __init__(self, emu: Emulator, bot: Bot, webhook: Webhook, session: aiohttp.ClientSession) -> None:
        self.emu, self.bot, self.webhook, self.session = emu, bot, webhook, session

    async def send(self, update: Json) -> Outcome:
        body = json.dumps(update, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook.secret_token
        balancer = self.emu.balancer_for(self.bot)
        if balancer is None:
            outcome, _ = await self._attempt(self.webhook.url, body, headers, self.emu.webhook_timeout)
        else:
            outcome = await self._balanced(balancer, body, headers)
        if outcome.error is None:
            self.bot.deliveries.record_success(update)
        return outcome

    async def _balanced(self, balancer: WebhookBalancer, body: bytes, headers: dict[str, str]) -> Outcome:
        timed_out = False
        for url in balancer.route(self.emu.clock()):
            outcome, reached = await self._attempt(url, body, headers, balancer.timeout)
            if reached:
                balancer.down_until.pop(url, None)
                return outcome
            balancer.down_until[url] = self.emu.clock() + balancer.fail_timeout
            timed_out = outcome.error == TIMEOUT_ERROR
        # Every replica failed: the proxy answers itself, as nginx does after its last upstream.
        status, reason = (504, "Gateway Time-out") if timed_out else (502, "Bad Gateway")
        return Outcome(status, None, f"Wrong response from the webhook: {status} {reason}")

    async def _attempt(
        self, url: str, body: bytes, headers: dict[str, str], seconds: float
    ) -> tuple[Outcome, bool]:
        """One POST; the flag says whether the backend answered at all (else a proxy tries the next)."""
        stats = self.bot.deliveries.backend(url)
        stats.attempts += 1
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                if not 200 <= response.status < 300:
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
                    stats.failures += 1
                    stats.last_error = error
                    return Outcome(response.status, url, error), True
                stats.ok += 1
                # Telegram ignores broken replies.
                with contextlib.suppress(ValueError, ApiError, aiohttp.ClientError, TimeoutError):
                    await _execute_reply(self.emu, self.bot, response)
                return Outcome(response.status, url, None), True
        except TimeoutError:
            error = TIMEOUT_ERROR
        except aiohttp.ClientConnectorError:
            error = "Connection refused"
        except aiohttp.ClientError as exc:  # e.g. the replica died with the request open
            error = f"Connection error: {type(exc).__name__}"
        stats.failures += 1
        stats.last_error = error
        return Outcome(None, None, error), False


class Dispatcher:
    """Feeds the bot's pending updates to up to ``max_connections`` concurrent deliveries."""

    def __init__(self, emu: Emulator, bot: Bot, webhook: Webhook, sender: Sender) -> None:
        self.emu, self.bot, self.webhook, self.sender = emu, bot, webhook, sender
        self.queues: dict[Hashable, deque[int]] = {}  # update ids per queue, head first
        self.ready: deque[Hashable] = deque()  # queues whose head can go out now
        self.delayed: list[tuple[float, int, Hashable]] = []  # heap of (due, seq, queue) after a failure
        self.failures: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.seen = 0  # the newest update_id taken into a queue
        self.kicked = False  # a delivery finished: room for the next
        self._seq = itertools.count()

    def active(self) -> bool:
        return self.bot.webhook is self.webhook and not self.emu.closing and not self.bot.detached

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.active():
                self.kicked = False
                self._take_in_new()
                while self.delayed and self.delayed[0][0] <= loop.time():
                    self.ready.append(heapq.heappop(self.delayed)[2])
                while self.ready and len(self.tasks) < self.webhook.max_connections:
                    self._start(self.ready.popleft())
                wait = IDLE_RECHECK_SECONDS
                if self.delayed:
                    wait = min(wait, max(0.0, self.delayed[0][0] - loop.time()))
                await self.emu.signal.wait_until(self._has_news, wait)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _has_news(self) -> bool:
        newest = next(reversed(self.bot.updates), 0)
        return not self.active() or self.kicked or newest > self.seen

    def _take_in_new(self) -> None:
        """Queue updates newer than the last seen, walking back from the newest: O(new), not O(pending)."""
        updates = self.bot.updates
        fresh: list[int] = []
        for update_id in reversed(updates):
            if update_id <= self.seen:
                break
            fresh.append(update_id)
        for update_id in reversed(fresh):
            key = queue_key(updates[update_id])
            queue = self.queues.get(key)
            if queue is None:
                self.queues[key] = deque([update_id])
                self.ready.append(key)
            else:
                queue.append(update_id)
        if fresh:
            self.seen = fresh[0]

    def _start(self, key: Hashable) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(key))
        self.tasks.add(task)
        deliveries = self.bot.deliveries  # counted, not set: an old worker may still be winding down
        deliveries.in_flight += 1
        deliveries.peak_in_flight = max(deliveries.peak_in_flight, deliveries.in_flight)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.bot.deliveries.in_flight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())
        self.kicked = True
        self.emu.signal.fire()

    async def _deliver(self, key: Hashable) -> None:
        queue = self.queues[key]
        update_id = queue[0]
        update = self.bot.updates.get(update_id)
        if update is not None:  # else dropped meanwhile (allowed_updates changed)
            self.bot.max_fetched_update_id = max(self.bot.max_fetched_update_id, update_id)
            outcome = await self.sender.send(update)
            if outcome.error is not None:
                self.webhook.last_error_date = int(time.time())
                self.webhook.last_error_message = outcome.error
                failures = self.failures.get(update_id, 0) + 1
                if failures < self.emu.webhook_attempts:
                    self.failures[update_id] = failures
                    doubled = self.emu.webhook_retry_delay * 2 ** min(failures - 1, 30)
                    backoff = min(self.emu.webhook_retry_max_delay, doubled)
                    due = asyncio.get_running_loop().time() + backoff
                    heapq.heappush(self.delayed, (due, next(self._seq), key))
                    return  # the queue stays blocked until the retry
            # Delivered, or given up after the last attempt.
            self.failures.pop(update_id, None)
            self.bot.updates.pop(update_id, None)
        queue.popleft()
        if queue:
            self.ready.append(key)
        else:
            del self.queues[key]


async def deliver_updates(emu: Emulator, bot: Bot) -> None:
    """Run until the webhook is replaced or removed, or the emulator stops."""
    webhook = bot.webhook
    if webhook is None:
        return
    # One session for the worker's life; the pool never needs more than max_connections sockets.
    connector = aiohttp.TCPConnector(limit=webhook.max_connections, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await Dispatcher(emu, bot, webhook, Sender(emu, bot, webhook, session)).run()


async def redeliver(emu: Emulator, bot: Bot, update_id: int) -> Outcome:
    """Send an already delivered update once more, as Telegram does when the webhook's answer got lost."""
    webhook = bot.webhook
    if webhook is None:
        raise ControlError(f"bot {bot.id} has no webhook set")
    update = bot.deliveries.sent.get(update_id)
    if update is None:
        raise ControlError(f"update {update_id} has not been delivered to bot {bot.id} by webhook")
    async with aiohttp.ClientSession() as session:
        return await Sender(emu, bot, webhook, session).send(update)


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
    if method and method.lower() not in _REPLY_REFUSED and not method.lower().startswith("get"):
        await perform(emu, bot.token, method, params)  # errors are ignored, as Telegram does
