"""Real local receivers for the delivery channels: an HTTP gateway and an SMTP server.

Each serves from its own background thread, so both the async channel tests and the synchronous
end-to-end tests (the bot runs as a subprocess) can use them; every read is a copy taken under a lock.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import json
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from multidict import CIMultiDict

from channels.signing import sign

MAX_SIGNATURE_AGE = 300  # seconds, as the bot's own event API


def free_port() -> int:
    """A port nothing listens on (right now): for servers that need a number up front, and for
    "connection refused"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer: a dict body goes out as JSON, a str as plain text."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body, headers=self.headers)
        body = self.body if self.body is not None else {"error": HTTPStatus(self.status).phrase}
        return web.json_response(body, status=self.status, headers=self.headers)


class _Background(ABC):
    """start / stop, and the same as a context manager."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class WebhookReceiver(_Background):
    """A care gateway as a shop would run one: checks the signature, de-duplicates on Idempotency-Key
    (a key already answered 2xx gets 409), and can be told to fail or be slow."""

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret.encode() if secret else None
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._delivered: Counter[str] = Counter()
        self._duplicates: Counter[str] = Counter()
        self._script: deque[Reply] = deque()
        self._delay = 0.0
        self._delays_left: int | None = None  # None: every request until told otherwise
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/care"

    def script(self, statuses: list[int | Reply]) -> None:
        """The next requests answer these in turn (a bare status gets a JSON reason), then 200 again."""
        with self._lock:
            self._script.extend(s if isinstance(s, Reply) else Reply(s) for s in statuses)

    def delay(self, seconds: float, times: int | None = None) -> None:
        """Answer after `seconds`: the next `times` requests, or every one until `delay(0)`."""
        with self._lock:
            self._delay, self._delays_left = seconds, times

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Each request as {"path", "headers", "body" (raw bytes), "json", "status" (None while pending)}."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def delivered(self) -> dict[str, int]:
        """Idempotency-Key → requests answered 2xx (1 per key, thanks to the 409s)."""
        with self._lock:
            return dict(self._delivered)

    @property
    def duplicates(self) -> dict[str, int]:
        """Idempotency-Key → repeats answered 409."""
        with self._lock:
            return dict(self._duplicates)

    def start(self) -> Self:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="webhook", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the webhook receiver did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # this thread's own loop, for everything that asks for "the" loop
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        # A short shutdown: a request held by delay() must not keep stop() waiting.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        self._port = runner.addresses[0][1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            # Requests still held by delay() outlive the short shutdown: end them before the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        record: dict[str, Any] = {
            "path": request.path,
            "headers": CIMultiDict(request.headers),
            "body": raw,
            "json": parsed,
            "status": None,
        }
        with self._lock:
            self._requests.append(record)
            delay = self._take_delay()
        if self._secret is not None and not self._signed(request, raw):
            reply = Reply(401, {"error": "bad signature"})
        elif parsed is None:
            reply = Reply(400, {"error": "the body is not JSON"})
        else:
            await asyncio.sleep(delay)
            reply = self._decide(request.headers.get("Idempotency-Key"))
        with self._lock:
            record["status"] = reply.status
        return reply.response()

    def _take_delay(self) -> float:
        if self._delays_left is None:
            return self._delay
        if self._delays_left == 0:
            return 0.0
        self._delays_left -= 1
        return self._delay

    def _signed(self, request: web.Request, raw: bytes) -> bool:
        assert self._secret is not None
        timestamp = request.headers.get("X-Touchpoint-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SIGNATURE_AGE:
            return False
        signature = request.headers.get("X-Touchpoint-Signature", "")
        return hmac.compare_digest(sign(self._secret, timestamp, raw), signature)

    def _decide(self, key: str | None) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else Reply(200, {"ok": True})
            if not 200 <= scripted.status < 300:
                return scripted
            if not key:
                return Reply(400, {"error": "Idempotency-Key missing"})
            if key in self._delivered:
                self._duplicates[key] += 1
                return Reply(409, {"error": "already delivered"})
            self._delivered[key] += 1
            return scripted


class SmtpReceiver(_Background):
    """An SMTP server (aiosmtpd) that keeps what it accepts and can refuse a mailbox or defer messages.

    It is its own aiosmtpd handler: the `handle_*` methods are aiosmtpd's hooks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._rejected: set[str] = set()
        self._deferrals = 0
        self._controller: Controller | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def reject(self, address: str) -> None:
        """RCPT TO this address is answered 550 (no such mailbox)."""
        with self._lock:
            self._rejected.add(address.lower())

    def defer(self, n: int) -> None:
        """The next n messages are answered 451 after DATA (try again later)."""
        with self._lock:
            self._deferrals = n

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def start(self) -> Self:
        self.port = free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            if address.lower() in self._rejected:
                return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._deferrals > 0:
                self._deferrals -= 1
                return "451 4.3.0 mailbox busy, try again later"
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            message = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self._messages.append(message)
        return "250 2.0.0 accepted"
