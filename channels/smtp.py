"""E-mail delivery through an SMTP relay (aiosmtplib), one connection per message.

Every attempt at a message carries the same Message-ID, `<delivery id@touchpoint>`, so a mailbox or
relay that saw an earlier attempt (accepted, but its reply lost to a timeout) can drop the repeat.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from channels.base import Outcome, Outgoing, Result

log = logging.getLogger(__name__)
SUBJECT_CHARS = 60
REPLY_CHARS = 200


class SmtpChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if starttls and use_tls:
            raise ValueError("starttls and use_tls exclude each other: pick the one the relay speaks")
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._use_tls = use_tls
        self._timeout = timeout

    def _message(self, item: Outgoing) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = item.to
        message["Subject"] = item.subject or _default_subject(item.text)
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = f"<{item.delivery_id}@touchpoint>"
        message["X-Touchpoint-Delivery"] = item.delivery_id
        message.set_content(item.text)  # UTF-8, transfer-encoded so any relay carries it
        return message

    async def send(self, item: Outgoing) -> Result:
        if not item.to or "@" not in item.to:
            return Result(Outcome.REJECTED, "no e-mail address")
        try:
            message = self._message(item)
        except ValueError as exc:  # a line break or the like in the address or subject
            return Result(Outcome.REJECTED, f"cannot build the e-mail: {exc}"[:REPLY_CHARS])
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                use_tls=self._use_tls,
                timeout=self._timeout,
            )
            result = Result(Outcome.DELIVERED, f"accepted by {self._host}:{self._port}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]  # we send to one address
            result = _by_reply(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:
            result = _by_reply(exc.code, exc.message)
        except TimeoutError:  # aiosmtplib's timeouts are TimeoutErrors too
            result = Result(Outcome.RETRY, f"timeout after {self._timeout:g} s")
        except ConnectionError as exc:  # SMTPConnectError, SMTPServerDisconnected
            refused = isinstance(exc.__cause__, ConnectionRefusedError)
            why = "connection refused" if refused else f"connection lost ({type(exc).__name__})"
            result = Result(Outcome.RETRY, f"{why}: {self._host}:{self._port}")
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS not offered: the relay, not the message
            result = Result(Outcome.RETRY, f"SMTP error: {_short(str(exc))}")
        log.info("smtp delivery %s: %s %s", item.delivery_id, result.outcome, result.detail)
        return result

    async def close(self) -> None:
        """Nothing to release: each message has its own connection."""


def _by_reply(code: int, message: str) -> Result:
    # A permanent (5xx) reply will not change on a retry; a transient (4xx) one, or a code outside
    # the scheme, may.
    outcome = Outcome.REJECTED if 500 <= code < 600 else Outcome.RETRY
    return Result(outcome, f"SMTP {code}: {_short(message)}")


def _short(text: str) -> str:
    return " ".join(text.split())[:REPLY_CHARS]


def _default_subject(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= SUBJECT_CHARS else first[: SUBJECT_CHARS - 1] + "…"
