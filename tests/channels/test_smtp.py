"""The e-mail channel against a real local SMTP server (aiosmtpd, tests/receivers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels import Outcome, Outgoing, Result, SmtpChannel
from tests.receivers import SmtpReceiver, free_port

SENDER = "care@shop.example"
TEXT = "王女士您好：\n您的订单 A1001 已签收，满意的话给我们一个好评吧。\n小鹿家居"


def outgoing(to: str | None = "buyer@example.com", subject: str | None = "订单已签收") -> Outgoing:
    return Outgoing(
        delivery_id="dlv-7", customer_id="C42", rule="signed", to=to, text=TEXT, subject=subject,
        order_no="A1001",
    )


@pytest.fixture
def receiver() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as running:
        yield running


@pytest.fixture
def channel(receiver: SmtpReceiver) -> SmtpChannel:
    return SmtpChannel(receiver.host, receiver.port, SENDER, timeout=5.0)


async def test_delivers_a_utf8_mail_with_a_stable_message_id(
    receiver: SmtpReceiver, channel: SmtpChannel
) -> None:
    result = await channel.send(outgoing())

    assert result.outcome == Outcome.DELIVERED
    [message] = receiver.messages
    assert message["From"] == SENDER
    assert message["To"] == "buyer@example.com"
    assert message["Subject"] == "订单已签收"
    assert message["Message-ID"] == "<dlv-7@touchpoint>"
    assert message["X-Touchpoint-Delivery"] == "dlv-7"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().splitlines() == TEXT.splitlines()  # CRLF on the wire


async def test_without_a_subject_the_first_line_is_used(receiver: SmtpReceiver, channel: SmtpChannel) -> None:
    await channel.send(outgoing(subject=None))
    assert receiver.messages[0]["Subject"] == "王女士您好："


async def test_a_refused_mailbox_is_rejected_with_the_code(
    receiver: SmtpReceiver, channel: SmtpChannel
) -> None:
    receiver.reject("gone@example.com")

    result = await channel.send(outgoing(to="gone@example.com"))

    assert result.outcome == Outcome.REJECTED
    assert result.detail.startswith("SMTP 550: ")
    assert "mailbox unavailable" in result.detail
    assert receiver.messages == []


async def test_451_is_retried_and_the_retry_delivers(receiver: SmtpReceiver, channel: SmtpChannel) -> None:
    receiver.defer(1)

    deferred = await channel.send(outgoing())
    retried = await channel.send(outgoing())

    assert deferred.outcome == Outcome.RETRY
    assert deferred.detail.startswith("SMTP 451: ")
    assert retried.outcome == Outcome.DELIVERED
    assert [m["Message-ID"] for m in receiver.messages] == ["<dlv-7@touchpoint>"]


@pytest.mark.parametrize("to", [None, "", "13800138000"])
async def test_no_address_is_rejected_without_connecting(to: str | None) -> None:
    channel = SmtpChannel("127.0.0.1", free_port(), SENDER)
    assert await channel.send(outgoing(to=to)) == Result(Outcome.REJECTED, "no e-mail address")


async def test_an_address_with_a_line_break_is_rejected(receiver: SmtpReceiver, channel: SmtpChannel) -> None:
    result = await channel.send(outgoing(to="a@example.com\r\nBcc: all@example.com"))
    assert result.outcome == Outcome.REJECTED
    assert receiver.messages == []


async def test_a_server_that_is_down_is_retried() -> None:
    port = free_port()
    result = await SmtpChannel("127.0.0.1", port, SENDER, timeout=2.0).send(outgoing())
    assert result == Result(Outcome.RETRY, f"connection refused: 127.0.0.1:{port}")


def test_starttls_and_tls_together_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        SmtpChannel("127.0.0.1", 25, SENDER, starttls=True, use_tls=True)
