"""Tests that read like a user: `agent.send("/card 138…")`, `agent.click(card, "Orders")`.

Everything goes over HTTP to the Bot API emulator's control API; the bot is a real process
polling the same emulator, exactly as it would poll Telegram.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

WAIT_SECONDS = 15.0


class ControlError(AssertionError):
    pass


@dataclass
class Emulator:
    base_url: str

    def call(self, verb: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=verb, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT_SECONDS + 10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ControlError(f"{verb} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def create_chat(self, chat_id: int, *, type_: str = "supergroup", title: str = "Team") -> None:
        self.call("POST", "/control/chats", {"id": chat_id, "type": type_, "title": title})

    def add_member(self, chat_id: int, user: dict[str, Any], status: str = "member") -> None:
        self.call("POST", f"/control/chats/{chat_id}/members", {"user": user, "status": status})

    def messages(self, chat_id: int, after: int = 0) -> list[dict[str, Any]]:
        return self.call("GET", f"/control/chats/{chat_id}/messages", after=after)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return self.call("GET", "/control/calls", method=method)

    def fault(self, method: str, kind: str, count: int = 1, **extra: Any) -> None:
        self.call("POST", "/control/faults", {"method": method, "kind": kind, "count": count, **extra})


@dataclass
class ChatUser:
    """One person in one chat."""

    emulator: Emulator
    chat_id: int
    user: dict[str, Any]
    seen: int = field(default=0)
    token: str | None = None  # address one bot only, when several are in the chat

    def send(self, text: str, *, expect: int = 1) -> list[dict[str, Any]]:
        """Send a message and return the bot's `expect` replies (fails if they do not come)."""
        body = {"chat_id": self.chat_id, "from": self.user, "text": text, "token": self.token}
        posted = self.emulator.call("POST", "/control/messages", {k: v for k, v in body.items() if v})
        after = posted["message"]["message_id"]
        return self._wait_new(after, expect)

    def send_silent(self, text: str, wait: float = 1.5) -> list[dict[str, Any]]:
        """Send and return whatever the bot said within `wait` seconds (expected: nothing)."""
        posted = self.emulator.call(
            "POST", "/control/messages", {"chat_id": self.chat_id, "from": self.user, "text": text}
        )
        after = posted["message"]["message_id"]
        result = self.emulator.call("GET", "/control/wait", chat_id=self.chat_id, after=after, timeout=wait)
        return _bot_messages(result)

    def reply_to(self, message: dict[str, Any], text: str, *, expect: int = 1) -> list[dict[str, Any]]:
        posted = self.emulator.call(
            "POST",
            "/control/messages",
            {
                "chat_id": self.chat_id,
                "from": self.user,
                "text": text,
                "reply_to_message_id": message["message_id"],
            },
        )
        return self._wait_new(posted["message"]["message_id"], expect)

    def click(self, message: dict[str, Any], button_text: str) -> dict[str, Any]:
        """Press the button whose text contains `button_text`; returns the callback answer."""
        data = button_data(message, button_text)
        pressed = self.emulator.call(
            "POST",
            "/control/press",
            {"chat_id": self.chat_id, "message_id": message["message_id"], "from": self.user, "data": data},
        )
        query_id = pressed["callback_query_id"]
        answers = self.emulator.call(
            "GET", "/control/callback_answers", callback_query_id=query_id, timeout=WAIT_SECONDS
        )
        if not answers:
            raise AssertionError(f"the bot did not answer the press on {button_text!r}")
        return answers[0]

    def click_and_wait_edit(self, message: dict[str, Any], button_text: str) -> dict[str, Any]:
        before = self.current(message)["edit_count"]
        self.click(message, button_text)
        return self.wait_edit(message, before)

    def wait_edit(self, message: dict[str, Any], edit_count: int) -> dict[str, Any]:
        result = self.emulator.call(
            "GET",
            "/control/wait_edit",
            chat_id=self.chat_id,
            message_id=message["message_id"],
            after_edit_count=edit_count,
            timeout=WAIT_SECONDS,
        )
        edited = result.get("message") if isinstance(result, dict) else None
        if not edited or result.get("timed_out"):
            raise AssertionError(f"message {message['message_id']} was not edited")
        return edited

    def current(self, message: dict[str, Any]) -> dict[str, Any]:
        for candidate in self.emulator.messages(self.chat_id):
            if candidate["message_id"] == message["message_id"]:
                return candidate
        raise AssertionError(f"message {message['message_id']} not found")

    def last_id(self) -> int:
        messages = self.emulator.messages(self.chat_id)
        return messages[-1]["message_id"] if messages else 0

    def click_expecting(
        self, message: dict[str, Any], button_text: str, expect: int = 1
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Press a button that makes the bot post `expect` new messages; returns (answer, messages)."""
        after = self.last_id()
        answer = self.click(message, button_text)
        return answer, self.wait_new(after, expect)

    def wait_new(self, after: int, expect: int = 1) -> list[dict[str, Any]]:
        """The next `expect` bot messages after message #`after` (a reminder, say)."""
        return self._wait_new(after, expect)

    def quiet_for(self, after: int, seconds: float = 1.5) -> list[dict[str, Any]]:
        """Bot messages after #`after` within `seconds` (expected: none)."""
        result = self.emulator.call(
            "GET", "/control/wait", chat_id=self.chat_id, after=after, timeout=seconds
        )
        return _bot_messages(result)

    def _wait_new(self, after: int, expect: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_SECONDS
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.emulator.call(
                "GET", "/control/wait", chat_id=self.chat_id, after=after, timeout=WAIT_SECONDS, count=expect
            )
            got = _bot_messages(result)
            if len(got) >= expect:
                return got[:expect]
        raise AssertionError(f"expected {expect} bot message(s) after #{after}, got {len(got)}: {got}")


def _bot_messages(result: Any) -> list[dict[str, Any]]:
    messages = result["messages"] if isinstance(result, dict) else result
    return [m for m in messages if m.get("from", {}).get("is_bot")]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    markup = message.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def button_data(message: dict[str, Any], text: str) -> str:
    for button in buttons(message):
        if text in button["text"]:
            return button["callback_data"]
    raise AssertionError(f"no button with {text!r} in {[b['text'] for b in buttons(message)]}")
