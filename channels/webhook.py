"""The default channel: POST each care message as signed JSON to the shop's gateway (SMS, platform IM…).

The gateway de-duplicates on `Idempotency-Key` (the delivery id), so a retry after a timeout whose
request did arrive is answered 409 and counts as delivered rather than reaching the customer twice.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from channels.base import Outcome, Outgoing, Result
from channels.signing import sign

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
REASON_FIELDS = ("error", "reason", "message")
REASON_CHARS = 200
BODY_PEEK_BYTES = 4096  # enough for a reason; a chatty receiver's page is not read whole


class WebhookChannel:
    name = "webhook"

    def __init__(
        self, url: str, secret: str | None, *, timeout: float = 10.0, shop_name: str | None = None
    ) -> None:
        self._url = url
        self._secret = secret.encode() if secret else None
        self._timeout = timeout
        self._shop_name = shop_name
        parsed = URL(url)
        self._where = f"{parsed.host}:{parsed.port}"  # for logs and details: no path, query or userinfo
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, and kept for connection reuse.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    def _payload(self, item: Outgoing) -> bytes:
        body: dict[str, Any] = {
            "id": item.delivery_id,
            "customer_id": item.customer_id,
            "rule": item.rule,
            "to": item.to,
            "text": item.text,
            "order_no": item.order_no,
            "locale": item.locale,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if self._shop_name:
            body["shop"] = self._shop_name
        return json.dumps(body, ensure_ascii=False).encode()

    async def send(self, item: Outgoing) -> Result:
        body = self._payload(item)
        headers = {"Content-Type": "application/json", "Idempotency-Key": item.delivery_id}
        if self._secret is not None:
            timestamp = str(int(time.time()))
            headers["X-Touchpoint-Timestamp"] = timestamp
            headers["X-Touchpoint-Signature"] = sign(self._secret, timestamp, body)
        try:
            # A redirect is not followed: the signed message goes to the configured URL or nowhere.
            post = self._client().post(self._url, data=body, headers=headers, allow_redirects=False)
            async with post as response:
                peek = b"" if 200 <= response.status < 300 else await _peek(response)
                result = _classify(response.status, response.headers, peek, response.reason or "")
        except TimeoutError:  # before ClientError: aiohttp's timeouts are both
            result = Result(Outcome.RETRY, f"timeout after {self._timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            why = "connection refused" if refused else f"cannot connect ({exc.os_error.strerror or exc})"
            result = Result(Outcome.RETRY, f"{why}: {self._where}")
        except aiohttp.ClientError as exc:
            result = Result(Outcome.RETRY, f"HTTP error: {type(exc).__name__}")
        log.info("webhook delivery %s to %s: %s %s", item.delivery_id, self._where, result.outcome,
                 result.detail)
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _classify(status: int, headers: CIMultiDictProxy[str], body: bytes, phrase: str) -> Result:
    """The receiver's answer as an outcome: only another 4xx (or a 3xx, not followed) is a rejection."""
    if 200 <= status < 300:
        return Result(Outcome.DELIVERED, f"HTTP {status}")
    if status == 409:  # the receiver already has this Idempotency-Key: an earlier attempt got through
        return Result(Outcome.DELIVERED, "HTTP 409: already delivered")
    detail = f"HTTP {status}: {_reason(body) or phrase}"
    if status in RETRY_STATUSES or status >= 500:
        return Result(Outcome.RETRY, detail, _retry_after(headers.get("Retry-After")))
    return Result(Outcome.REJECTED, detail)


async def _peek(response: aiohttp.ClientResponse) -> bytes:
    chunks = bytearray()
    while len(chunks) < BODY_PEEK_BYTES:
        chunk = await response.content.read(BODY_PEEK_BYTES - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def _reason(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        text = next((str(parsed[key]) for key in REASON_FIELDS if parsed.get(key)), text)
    return " ".join(text.split())[:REASON_CHARS]


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form: gateways send that; an HTTP date falls back to our own backoff.
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
