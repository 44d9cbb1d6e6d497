"""The webhook channel against a real local gateway (tests/receivers.py): what it sends, and how it
reads every kind of answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from channels import Outcome, Outgoing, Result, WebhookChannel
from tests.receivers import Reply, WebhookReceiver, free_port

SECRET = "s3cret-for-tests-only"
TEXT = "亲，您的订单 A1001 已发货，顺丰 SF123，请留意查收。"


def outgoing(delivery_id: str = "dlv-1", to: str | None = "13800138000") -> Outgoing:
    return Outgoing(delivery_id, customer_id="C42", rule="shipped", to=to, text=TEXT, order_no="A1001")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
async def channel(receiver: WebhookReceiver) -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(receiver.url, SECRET, timeout=2.0)
    yield webhook
    await webhook.close()


async def test_delivers_signed_json_the_receiver_verifies(
    receiver: WebhookReceiver, channel: WebhookChannel
) -> None:
    result = await channel.send(outgoing())

    assert result.outcome == Outcome.DELIVERED
    [request] = receiver.requests
    assert request["status"] == 200  # the receiver checked the signature
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Idempotency-Key"] == "dlv-1"
    assert request["headers"]["X-Touchpoint-Signature"].startswith("sha256=")
    assert TEXT.encode() in request["body"]  # UTF-8 as is, not \\u escapes
    body = request["json"]
    sent_at = datetime.fromisoformat(body.pop("sent_at"))
    assert sent_at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 5
    assert body == {
        "id": "dlv-1", "customer_id": "C42", "rule": "shipped", "to": "13800138000", "text": TEXT,
        "order_no": "A1001", "locale": "zh_CN",
    }
    assert receiver.delivered == {"dlv-1": 1}


async def test_without_a_phone_number_and_unsigned() -> None:
    with WebhookReceiver(None) as unsigned:
        webhook = WebhookChannel(unsigned.url, None, shop_name="小鹿家居")
        try:
            result = await webhook.send(outgoing(to=None))
        finally:
            await webhook.close()
    assert result.outcome == Outcome.DELIVERED
    [request] = unsigned.requests
    assert "X-Touchpoint-Signature" not in request["headers"]
    assert request["json"]["to"] is None
    assert request["json"]["shop"] == "小鹿家居"


async def test_a_wrong_secret_is_rejected_by_the_receiver(receiver: WebhookReceiver) -> None:
    webhook = WebhookChannel(receiver.url, "not-the-secret")
    try:
        result = await webhook.send(outgoing())
    finally:
        await webhook.close()
    assert result == Result(Outcome.REJECTED, "HTTP 401: bad signature")
    assert receiver.delivered == {}


async def test_500_then_200_delivers_once_under_one_key(
    receiver: WebhookReceiver, channel: WebhookChannel
) -> None:
    receiver.script([500])

    first = await channel.send(outgoing())
    second = await channel.send(outgoing())

    assert first.outcome == Outcome.RETRY
    assert first.detail == "HTTP 500: Internal Server Error"
    assert second.outcome == Outcome.DELIVERED
    assert [r["headers"]["Idempotency-Key"] for r in receiver.requests] == ["dlv-1", "dlv-1"]
    assert receiver.delivered == {"dlv-1": 1}


async def test_a_repeat_answered_409_counts_as_delivered(
    receiver: WebhookReceiver, channel: WebhookChannel
) -> None:
    await channel.send(outgoing())
    repeat = await channel.send(outgoing())

    assert repeat.outcome == Outcome.DELIVERED
    assert "already delivered" in repeat.detail
    assert [r["status"] for r in receiver.requests] == [200, 409]
    assert receiver.delivered == {"dlv-1": 1}
    assert receiver.duplicates == {"dlv-1": 1}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(400, {"error": "unknown phone number"}), "unknown phone number"),
        (Reply(422, {"code": 17, "message": "text has a banned word"}), "text has a banned word"),
        (Reply(403, {"reason": "customer unsubscribed"}), "customer unsubscribed"),
        (Reply(404, "no such   route\n"), "no such route"),
        (Reply(410, "x" * 500), "x" * 200),
        (Reply(301, "moved", headers={"Location": "http://127.0.0.1:9/elsewhere"}), "moved"),  # not followed
    ],
)
async def test_other_4xx_is_rejected_with_the_receivers_reason(
    receiver: WebhookReceiver, channel: WebhookChannel, reply: Reply, reason: str
) -> None:
    receiver.script([reply])

    result = await channel.send(outgoing())

    assert result.outcome == Outcome.REJECTED
    assert result.detail == f"HTTP {reply.status}: {reason}"
    assert result.retry_after is None


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(429, headers={"Retry-After": "7"}), 7.0),
        (Reply(503, headers={"Retry-After": "1.5"}), 1.5),
        (Reply(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), None),
        (Reply(502), None),
        (Reply(408), None),
        (Reply(425), None),
    ],
)
async def test_busy_or_broken_receiver_means_retry(
    receiver: WebhookReceiver, channel: WebhookChannel, reply: Reply, retry_after: float | None
) -> None:
    receiver.script([reply])

    result = await channel.send(outgoing())

    assert result.outcome == Outcome.RETRY
    assert result.detail.startswith(f"HTTP {reply.status}: ")
    assert result.retry_after == retry_after


async def test_a_timeout_is_retried_and_the_receiver_still_counts_one(receiver: WebhookReceiver) -> None:
    receiver.delay(0.6, times=1)
    webhook = WebhookChannel(receiver.url, SECRET, timeout=0.2)
    try:
        timed_out = await webhook.send(outgoing())
        retried = await webhook.send(outgoing())
    finally:
        await webhook.close()

    assert timed_out == Result(Outcome.RETRY, "timeout after 0.2 s")
    assert retried.outcome == Outcome.DELIVERED
    for _ in range(50):  # the slow first request finishes on the receiver after we gave up on it
        if all(r["status"] is not None for r in receiver.requests):
            break
        await asyncio.sleep(0.05)
    assert sorted(r["status"] for r in receiver.requests) == [200, 409]
    assert receiver.delivered == {"dlv-1": 1}


async def test_connection_refused_is_retried() -> None:
    port = free_port()
    webhook = WebhookChannel(f"http://127.0.0.1:{port}/care", SECRET, timeout=2.0)
    try:
        result = await webhook.send(outgoing())
    finally:
        await webhook.close()
    assert result.outcome == Outcome.RETRY
    assert result.detail == f"connection refused: 127.0.0.1:{port}"


async def test_the_session_is_reused_and_comes_back_after_close(
    receiver: WebhookReceiver, channel: WebhookChannel
) -> None:
    assert (await channel.send(outgoing("a"))).outcome == Outcome.DELIVERED
    await channel.close()
    assert (await channel.send(outgoing("b"))).outcome == Outcome.DELIVERED
    assert receiver.delivered == {"a": 1, "b": 1}


async def test_neither_secret_nor_signature_reaches_the_logs(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.script([500, Reply(400, {"error": "nope"})])
    receiver.delay(0.5, times=1)
    slow = WebhookChannel(receiver.url, SECRET, timeout=0.1)
    webhook = WebhookChannel(receiver.url, SECRET)
    try:
        results = [await slow.send(outgoing("slow"))]
        results += [await webhook.send(outgoing(f"d{i}")) for i in range(3)]
    finally:
        await slow.close()
        await webhook.close()

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY, Outcome.REJECTED, Outcome.DELIVERED]
    assert caplog.records  # the channel did log each outcome
    logged = caplog.text + "".join(r.detail for r in results)
    assert SECRET not in logged
    assert "sha256=" not in logged
    signatures = [r["headers"]["X-Touchpoint-Signature"].removeprefix("sha256=") for r in receiver.requests]
    assert not any(signature in logged for signature in signatures)
