"""What the sandbox page polls: a chat's messages, each change numbered so the page asks only for news.

The emulator keeps messages with an ``edit_count`` and a ``deleted`` flag and fires one signal on any
change; the tracker compares those marks with what it saw last and gives every new, edited or
deleted message the next version number. A page long-polls ``after_version`` and gets just those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.emulator_state import Chat, Emulator, Json, StoredMessage

FILE_URL = "/sandbox/api/files/{file_id}"
QUOTE_CHARS = 120


@dataclass
class _Marks:
    chat: Chat  # a reset replaces the Chat object: then every message counts as new
    seen: dict[int, tuple[int, bool]] = field(default_factory=dict)
    version_of: dict[int, int] = field(default_factory=dict)
    force_replies: dict[int, Json] = field(default_factory=dict)
    latest: int = 0


class FeedTracker:
    def __init__(self) -> None:
        self.version = 0  # shared by all chats, so a version never repeats
        self._marks: dict[int, _Marks] = {}

    def latest(self, emulator: Emulator, chat_id: int) -> int:
        """The chat's newest version, after noting whatever changed since the last look."""
        chat = emulator.chats.get(chat_id)
        if chat is None:
            return self._marks[chat_id].latest if chat_id in self._marks else 0
        marks = self._marks.get(chat_id)
        if marks is None or marks.chat is not chat:
            marks = self._marks[chat_id] = _Marks(chat, latest=marks.latest if marks else 0)
        for stored in chat.messages.values():
            state = (stored.edit_count, stored.deleted)
            if marks.seen.get(stored.message_id) != state:
                self.version += 1
                marks.seen[stored.message_id] = state
                marks.version_of[stored.message_id] = self.version
                marks.latest = self.version
        return marks.latest

    def force_reply(self, emulator: Emulator, chat_id: int, message_id: int, markup: Json) -> None:
        """Remember a message's ForceReply and count it as a change (the page may have it already)."""
        self.latest(emulator, chat_id)
        marks = self._marks.get(chat_id)
        if marks is None:
            return
        marks.force_replies[message_id] = {
            "selective": bool(markup.get("selective")),
            "placeholder": str(markup.get("input_field_placeholder") or ""),
        }
        marks.seen.pop(message_id, None)
        emulator.signal.fire()

    def since(self, emulator: Emulator, chat_id: int, after: int) -> tuple[int, list[Json]]:
        """(latest version, the chat's messages changed after version ``after``, oldest first)."""
        latest = self.latest(emulator, chat_id)
        chat = emulator.chats.get(chat_id)
        if chat is None:
            return latest, []
        marks = self._marks[chat_id]
        changed = [s for s in chat.messages.values() if marks.version_of.get(s.message_id, 0) > after]
        if after == 0:  # a first load needs no tombstones
            changed = [s for s in changed if not s.deleted]
        return latest, [
            page_message(s, marks.version_of[s.message_id], marks.force_replies.get(s.message_id))
            for s in changed
        ]


def page_message(stored: StoredMessage, version: int, force_reply: Json | None = None) -> Json:
    """The parts of a stored Message the page draws; text stays text plus entities (UTF-16 offsets)."""
    message = stored.message
    if stored.deleted:
        return {"message_id": stored.message_id, "deleted": True, "version": version}
    sender = message.get("from") or {}
    out: Json = {
        "message_id": stored.message_id,
        "version": version,
        "date": message.get("date"),
        "edited": stored.edit_count > 0,
        "from": {k: sender.get(k) for k in ("id", "is_bot", "first_name", "last_name", "username")},
        "text": message.get("text") or message.get("caption") or "",
        "entities": message.get("entities") or message.get("caption_entities") or [],
    }
    if message.get("photo"):
        out["photo_url"] = FILE_URL.format(file_id=message["photo"][-1]["file_id"])
    if document := message.get("document"):
        out["document"] = {
            "name": document.get("file_name") or "file",
            "url": FILE_URL.format(file_id=document["file_id"]),
        }
    if replied := message.get("reply_to_message"):
        out["reply_to"] = _quote(replied)
    markup = message.get("reply_markup") or {}
    if keyboard := markup.get("inline_keyboard"):
        out["keyboard"] = [[_button(b) for b in row] for row in keyboard]
    if force_reply is not None:
        out["force_reply"] = force_reply
    return out


def _quote(replied: Json) -> Json:
    sender = replied.get("from") or {}
    text = replied.get("text") or replied.get("caption") or ""
    return {
        "message_id": replied.get("message_id"),
        "from_id": sender.get("id"),
        "from_name": " ".join(filter(None, (sender.get("first_name"), sender.get("last_name")))),
        "text": text[:QUOTE_CHARS],
    }


def _button(button: dict[str, Any]) -> Json:
    out: Json = {"text": button.get("text", "")}
    if "callback_data" in button:
        out["data"] = button["callback_data"]
    elif str(button.get("url", "")).startswith(("http://", "https://")):
        out["url"] = button["url"]
    return out


def image_type(data: bytes) -> str:
    """The MIME type of a photo's bytes (the emulator stores photos without one)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"
