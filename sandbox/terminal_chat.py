"""A chat in the terminal on top of the emulator's control API: type as an agent, see the bot.

Bot messages are rendered from their entities (bold, italic, code, links); inline buttons are
numbered and pressed by typing the number (`3`, or `12.3` for button 3 of message #12).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rich.console import Console
from rich.text import Text

# "3" presses button 3 of the latest keyboard, "12.3" button 3 of message #12; a phone number is text.
BUTTON_PRESS = re.compile(r"^(?:\d{1,6}\.)?\d{1,2}$")

STYLES = {
    "bold": "bold",
    "italic": "italic",
    "underline": "underline",
    "strikethrough": "strike",
    "code": "cyan",
    "pre": "cyan",
    "text_link": "underline blue",
    "url": "underline blue",
    "spoiler": "reverse",
    "blockquote": "dim",
    "bot_command": "magenta",
}

HELP = (
    "Type a message (e.g. /card 王 or a phone number); a number presses that button of the latest keyboard,"
    " N.M presses button M of message #N; /as lead|agent|agent2|stranger switches who you are;"
    " /private and /group switch the chat (try /as stranger, then /private, to see a refusal); /quit leaves."
)


def render_entities(text: str, entities: list[dict[str, Any]]) -> Text:
    """Entities count UTF-16 code units; map them onto Python string indexes."""
    index_of: list[int] = []
    for i, char in enumerate(text):
        index_of.extend([i] * (2 if ord(char) > 0xFFFF else 1))
    index_of.append(len(text))
    rich_text = Text(text)
    for entity in entities:
        style = STYLES.get(entity.get("type", ""))
        start = entity.get("offset", 0)
        end = start + entity.get("length", 0)
        if style and 0 <= start < end < len(index_of) + 1:
            rich_text.stylize(style, index_of[start], index_of[min(end, len(index_of) - 1)])
    return rich_text


@dataclass
class TerminalChat:
    base_url: str
    group_id: int
    people: dict[str, dict[str, Any]]
    who: str = "agent"
    in_private: bool = False
    console: Console = field(default_factory=Console)
    _seen: dict[tuple[int, int], int] = field(default_factory=dict)
    _keyboards: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    _latest_keyboard: tuple[int, int] | None = None

    @property
    def user(self) -> dict[str, Any]:
        return self.people[self.who]

    @property
    def chat_id(self) -> int:
        return self.user["id"] if self.in_private else self.group_id

    async def run(self) -> None:
        self.console.print(f"[dim]{HELP}[/dim]")
        async with aiohttp.ClientSession(self.base_url) as http:
            watcher = asyncio.create_task(self._watch(http))
            try:
                while True:
                    where = "private" if self.in_private else "group"
                    line = await asyncio.to_thread(input, f"{self.user['first_name']} ({where})> ")
                    if not await self._handle(http, line.strip()):
                        break
            except (EOFError, KeyboardInterrupt):
                pass
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _handle(self, http: aiohttp.ClientSession, line: str) -> bool:
        if not line:
            return True
        if line == "/quit":
            return False
        if line.startswith("/as "):
            name = line.split(maxsplit=1)[1].strip()
            if name in self.people:
                self.who = name
            else:
                self.console.print(f"[red]Who? One of: {', '.join(self.people)}[/red]")
            return True
        if line in ("/private", "/group"):
            self.in_private = line == "/private"
            return True
        if BUTTON_PRESS.match(line):
            await self._press(http, line)
            return True
        body = {"chat_id": self.chat_id, "from": self.user, "text": line}
        async with http.post("/control/messages", json=body) as response:
            if response.status != 200:
                self.console.print(f"[red]{await response.text()}[/red]")
        return True

    async def _press(self, http: aiohttp.ClientSession, line: str) -> None:
        message_id, _, number = line.rpartition(".")
        target = (self.chat_id, int(message_id)) if message_id else self._latest_keyboard
        buttons = self._keyboards.get(target, []) if target else []
        index = int(number) - 1
        if not 0 <= index < len(buttons):
            self.console.print("[red]No such button.[/red]")
            return
        assert target is not None
        body = {
            "chat_id": target[0],
            "message_id": target[1],
            "from": self.user,
            "data": buttons[index]["data"],
        }
        async with http.post("/control/press", json=body) as response:
            if response.status != 200:
                self.console.print(f"[red]{await response.text()}[/red]")
                return
            pressed = await response.json()
        params = {"callback_query_id": pressed["callback_query_id"], "timeout": 5}
        async with http.get("/control/callback_answers", params=params) as response:
            answers = await response.json() if response.status == 200 else []
        for answer in answers:
            if answer.get("text"):
                self.console.print(f"[yellow]⚡ {answer['text']}[/yellow]")

    async def _watch(self, http: aiohttp.ClientSession) -> None:
        while True:
            for chat_id in {self.group_id, self.user["id"]}:
                async with http.get(f"/control/chats/{chat_id}/messages") as response:
                    messages = await response.json() if response.status == 200 else []
                for message in messages:
                    self._show_if_new(chat_id, message)
            await asyncio.sleep(0.3)

    def _show_if_new(self, chat_id: int, message: dict[str, Any]) -> None:
        key = (chat_id, message["message_id"])
        version = message.get("edit_count", 0)
        if self._seen.get(key) == version or message.get("deleted"):
            return
        first_time = key not in self._seen
        self._seen[key] = version
        if not message.get("from", {}).get("is_bot"):
            return
        label = "edited" if not first_time else ("private" if chat_id > 0 else "group")
        self.console.print(Text(f"\n🤖 #{message['message_id']} ({label})", style="bold green"))
        body = message.get("text") or message.get("caption") or ""
        entities = message.get("entities") or message.get("caption_entities") or []
        self.console.print(render_entities(body, entities))
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        buttons = [
            {"text": b["text"], "data": b.get("callback_data")}
            for row in rows
            for b in row
            if b.get("callback_data")
        ]
        if buttons:
            self._keyboards[key] = buttons
            self._latest_keyboard = key
            listing = "  ".join(f"[{i}] {b['text']}" for i, b in enumerate(buttons, start=1))
            self.console.print(Text(listing, style="cyan"))
