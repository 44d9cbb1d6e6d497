"""Bot API methods that create or change messages, with Telegram's validation and error texts."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sandbox.emulator_markdown import parse_markdown, parse_markdown_v2
from sandbox.emulator_media import media_content, store_document, store_photo
from sandbox.emulator_params import Params
from sandbox.emulator_state import (
    ADMIN_STATUSES,
    ApiError,
    Bot,
    Chat,
    Emulator,
    Json,
    StoredMessage,
    bad_request,
    forbidden,
    json_copy,
)
from sandbox.telegram_html import (
    PARSE_ERROR_PREFIX,
    Entity,
    EntityParseError,
    check_link,
    fix_formatted_text,
    parse_html,
    utf16_len,
)

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
    | {"upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
)
# The order telegram-bot-api tries a button's action fields in; url and callback_data must be non-empty.
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "callback_game",
    "pay",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "login_url",
    "web_app",
    "copy_text",
)
_BUTTON_EXTRAS = ("icon_custom_emoji_id", "style")
_STRING_ACTIONS = frozenset(
    {"url", "callback_data", "switch_inline_query", "switch_inline_query_current_chat"}
)
_OBJECT_ACTIONS = frozenset({"switch_inline_query_chosen_chat", "login_url", "web_app", "copy_text"})
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


@dataclass
class Call:
    """One Bot API invocation: the world, the calling bot and its decoded arguments."""

    emu: Emulator
    bot: Bot
    params: Params

    def chat(self, name: str = "chat_id") -> Chat:
        raw = self.params.get(name).strip()
        if not raw:
            raise bad_request(f"{name} is empty")
        chat: Chat | None = None
        if raw.startswith("@"):
            username = raw[1:].lower()
            chat = next(
                (c for c in self.emu.chats.values() if c.info.get("username", "").lower() == username), None
            )
        else:
            try:
                chat = self.emu.chats.get(int(raw))
            except ValueError:
                chat = None
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def writable_chat(self) -> Chat:
        """The target chat, refusing like Telegram when the bot was removed or blocked."""
        chat = self.chat()
        status = self.emu.bot_status(self.bot, chat)
        if chat.type == "private":
            if status == "kicked":
                raise forbidden("bot was blocked by the user")
        elif status == "kicked":
            raise forbidden(f"bot was kicked from the {chat.type} chat")
        elif status == "left":
            raise forbidden(f"bot is not a member of the {chat.type} chat")
        return chat


Handler = Callable[[Call], Awaitable[Any]]


# --------------------------------------------------------------------------- text and markup


def formatted_text(params: Params, text_field: str, entities_field: str) -> tuple[str, list[Entity]]:
    """Apply parse_mode (or explicit entities) and TDLib's trimming to ``text_field``."""
    text = params.get(text_field)
    mode = params.get("parse_mode").strip().lower()
    try:
        if mode == "html":
            text, entities = parse_html(text)
        elif mode == "markdownv2":
            text, entities = parse_markdown_v2(text)
        elif mode == "markdown":
            text, entities = parse_markdown(text)
        elif mode:
            raise bad_request("unsupported parse_mode")
        else:
            entities = _explicit_entities(params, entities_field)
    except EntityParseError as error:
        raise bad_request(PARSE_ERROR_PREFIX + str(error)) from None
    return fix_formatted_text(text, entities)


def _explicit_entities(params: Params, name: str) -> list[Entity]:
    entities = params.decode_json(name, "entities")
    if entities is None:
        return []
    if not isinstance(entities, list):
        raise bad_request("can't parse entities JSON object")
    for entity in entities:
        valid = isinstance(entity, dict) and isinstance(entity.get("type"), str)
        if not valid or not all(
            isinstance(entity.get(k), int) and entity[k] >= 0 for k in ("offset", "length")
        ):
            raise bad_request(f"can't parse MessageEntity: {entity!r}")
    return [dict(e) for e in entities]


def parse_reply_markup(params: Params) -> Json | None:
    """The inline keyboard to store on the message; other keyboards are validated but not part of Message."""
    markup = params.decode_json("reply_markup", "reply keyboard markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
        keyboard = []
        for row in rows:
            if not isinstance(row, list):
                raise bad_request(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            if row:
                keyboard.append([_inline_button(button) for button in row])
        return {"inline_keyboard": keyboard} if keyboard else None
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
    return None


def _button_error(reason: str) -> ApiError:
    return bad_request(f"can't parse inline keyboard button: {reason}")


def _inline_button(raw: Any) -> Json:
    if not isinstance(raw, dict):
        raise _button_error("InlineKeyboardButton must be an Object")
    if "text" not in raw:
        raise _button_error('Can\'t find field "text"')
    text = raw["text"]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise _button_error('Field "text" must be of type String')
    button: Json = {"text": text}
    button.update({key: raw[key] for key in _BUTTON_EXTRAS if isinstance(raw.get(key), str)})
    for action in _BUTTON_ACTIONS:
        value = raw.get(action)
        if value is None or (action in ("url", "callback_data") and value == ""):
            continue
        button[action] = _button_action(action, value)
        break
    else:
        raise _button_error("Text buttons are unallowed in the inline keyboard")
    if not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    return button


def _button_action(action: str, value: Any) -> Any:
    if action in _STRING_ACTIONS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _button_error(f'Field "{action}" must be of type String')
    if action in _OBJECT_ACTIONS and not isinstance(value, dict):
        raise _button_error(f'Field "{action}" must be of type Object')
    if action == "callback_data" and len(value.encode()) > MAX_CALLBACK_DATA_BYTES:
        raise bad_request("BUTTON_DATA_INVALID")
    if action == "url" and not check_link(value):
        raise bad_request("BUTTON_URL_INVALID")
    return value


def reply_target(chat: Chat, params: Params) -> tuple[int | None, StoredMessage | None]:
    """(message_thread_id, replied message) from reply_parameters or the legacy reply_to_message_id."""
    thread_id = params.integer("message_thread_id") or None
    reply = params.decode_json("reply_parameters", "reply parameters")
    if reply is not None:
        if not isinstance(reply, dict):
            raise bad_request("object expected as reply parameters")
        reply_id, allow_missing = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
        if not isinstance(reply_id, int) or isinstance(reply_id, bool):
            raise bad_request('can\'t parse reply parameters: field "message_id" must be of type Number')
    else:
        reply_id, allow_missing = (
            params.integer("reply_to_message_id"),
            params.flag("allow_sending_without_reply"),
        )
    if not reply_id:
        return thread_id, None
    replied = chat.live_message(reply_id)
    if replied is None and not allow_missing:
        raise bad_request("message to be replied not found")
    if replied is not None and thread_id is None:
        thread_id = replied.thread_id  # a reply lands in the replied message's topic
    return thread_id, replied


def _caption(params: Params) -> tuple[str, list[Entity]]:
    caption, entities = formatted_text(params, "caption", "caption_entities")
    if utf16_len(caption) > MAX_CAPTION_LENGTH:
        raise bad_request("message caption is too long")
    return caption, entities


def _publish(call: Call, chat: Chat, content: Json, markup: Json | None) -> Json:
    thread_id, replied = reply_target(chat, call.params)
    call.emu.limiter.acquire(call.bot.id, chat.id)
    stored = call.emu.add_message(
        chat,
        call.bot.user,
        content,
        bot_id=call.bot.id,
        thread_id=thread_id,
        reply_to=replied,
        reply_markup=markup,
    )
    return json_copy(stored.message)


# --------------------------------------------------------------------------- sending


def _text_and_markup(call: Call) -> tuple[Json, Json | None]:
    """A message's text as sendMessage and editMessageText both take and check it."""
    if not call.params.has("text"):
        raise bad_request("message text is empty")
    text, entities = formatted_text(call.params, "text", "entities")
    markup = parse_reply_markup(call.params)
    if not text:
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return {"text": text, "entities": entities}, markup


async def send_message(call: Call) -> Json:
    chat = call.writable_chat()
    content, markup = _text_and_markup(call)
    return _publish(call, chat, content, markup)


async def _send_media(call: Call, kind: str) -> Json:
    chat = call.writable_chat()
    caption, entities = _caption(call.params)
    markup = parse_reply_markup(call.params)
    stored = store_photo(call.emu, call.params) if kind == "photo" else store_document(call.emu, call.params)
    content = {**media_content(stored), "caption": caption, "caption_entities": entities}
    if call.params.flag("has_spoiler"):
        content["has_media_spoiler"] = True
    return _publish(call, chat, content, markup)


async def send_photo(call: Call) -> Json:
    return await _send_media(call, "photo")


async def send_document(call: Call) -> Json:
    return await _send_media(call, "document")


async def send_media_group(call: Call) -> list[Json]:
    chat = call.writable_chat()
    media = call.params.decode_json("media", "media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise bad_request("media must be an Array of 2-10 InputMedia objects")
    contents = [_media_item(call, item) for item in media]
    thread_id, replied = reply_target(chat, call.params)
    call.emu.limiter.acquire(call.bot.id, chat.id)
    group_id = str(13_000_000_000_000_000 + call.emu.next_id())
    sent = [
        call.emu.add_message(
            chat,
            call.bot.user,
            {**content, "media_group_id": group_id},
            bot_id=call.bot.id,
            thread_id=thread_id,
            reply_to=replied,
        )
        for content in contents
    ]
    return [json_copy(stored.message) for stored in sent]


def _media_item(call: Call, item: Any) -> Json:
    if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
        raise bad_request("can't parse InputMedia: only photo and document media are emulated")
    kind = str(item["type"])
    fields = {
        kind: item.get("media"),
        **{k: item.get(k) for k in ("caption", "parse_mode", "caption_entities")},
    }
    item_params = Params(
        args={k: v if isinstance(v, str) else _json_text(v) for k, v in fields.items() if v is not None},
        files=call.params.files,
    )
    caption, entities = _caption(item_params)
    stored = store_photo(call.emu, item_params) if kind == "photo" else store_document(call.emu, item_params)
    return {**media_content(stored), "caption": caption, "caption_entities": entities}


def _json_text(value: Any) -> str:
    return json.dumps(value)


async def send_chat_action(call: Call) -> bool:
    call.writable_chat()
    if call.params.get("action").strip().lower() not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


# --------------------------------------------------------------------------- editing


def _target_message(call: Call, action: str) -> tuple[Chat, StoredMessage]:
    """The chat and live message a call names by chat_id + message_id, with Telegram's errors."""
    chat = call.chat()
    message_id = call.params.integer("message_id")
    if not message_id:
        raise bad_request("message identifier is not specified")
    stored = chat.live_message(message_id)
    if stored is None:
        raise bad_request(f"message to {action} not found")
    return chat, stored


def _message_to_edit(call: Call) -> tuple[Chat, StoredMessage]:
    if call.params.has("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")  # no inline mode in the emulator
    chat, stored = _target_message(call, "edit")
    if stored.bot_id != call.bot.id:
        raise bad_request("message can't be edited")
    return chat, stored


def _visible_state(message: Json) -> tuple[Any, ...]:
    return (
        message.get("text"),
        message.get("entities", []),
        message.get("caption"),
        message.get("caption_entities", []),
        message.get("reply_markup"),
    )


def _commit_edit(call: Call, chat: Chat, stored: StoredMessage, content: Json, markup: Json | None) -> Json:
    """Apply an edit; Telegram refuses edits that change nothing, and a missing markup removes it."""
    edited = json_copy(stored.message)
    for key, value in {**content, "reply_markup": markup}.items():
        if value in (None, [], ""):
            edited.pop(key, None)
        else:
            edited[key] = value
    if _visible_state(edited) == _visible_state(stored.message):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same "
            "as a current content and reply markup of the message"
        )
    call.emu.limiter.acquire(call.bot.id, chat.id)
    edited["edit_date"] = int(time.time())
    stored.message = edited
    stored.edit_count += 1
    call.emu.signal.fire()
    return json_copy(edited)


async def edit_message_text(call: Call) -> Json:
    chat, stored = _message_to_edit(call)
    if "text" not in stored.message:
        raise bad_request("there is no text in the message to edit")
    content, markup = _text_and_markup(call)
    return _commit_edit(call, chat, stored, content, markup)


async def edit_message_caption(call: Call) -> Json:
    chat, stored = _message_to_edit(call)
    if "text" in stored.message:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = _caption(call.params)
    markup = parse_reply_markup(call.params)
    return _commit_edit(call, chat, stored, {"caption": caption, "caption_entities": entities}, markup)


async def edit_message_reply_markup(call: Call) -> Json:
    chat, stored = _message_to_edit(call)
    return _commit_edit(call, chat, stored, {}, parse_reply_markup(call.params))


# --------------------------------------------------------------------------- deleting, pinning, callbacks


def _deletable(call: Call, chat: Chat, stored: StoredMessage) -> bool:
    """Bots delete their own messages anywhere, others' in private chats, and in groups only as admins."""
    own = stored.bot_id == call.bot.id
    return own or not chat.is_group or call.emu.bot_status(call.bot, chat) in ADMIN_STATUSES


async def delete_message(call: Call) -> bool:
    chat, stored = _target_message(call, "delete")
    if not _deletable(call, chat, stored):
        raise bad_request("message can't be deleted")
    stored.deleted = True
    call.emu.signal.fire()
    return True


async def delete_messages(call: Call) -> bool:
    chat = call.chat()
    ids = call.params.decode_json("message_ids", "message identifiers")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(isinstance(i, int) for i in ids):
        raise bad_request("message_ids must be an Array of 1-100 message identifiers")
    for message_id in ids:  # Telegram skips messages it can't find or delete
        stored = chat.live_message(message_id)
        if stored is not None and _deletable(call, chat, stored):
            stored.deleted = True
    call.emu.signal.fire()
    return True


async def pin_chat_message(call: Call) -> bool:
    chat = call.writable_chat()
    stored = chat.live_message(call.params.integer("message_id"))
    if stored is None:
        raise bad_request("message to pin not found")
    if chat.is_group and call.emu.bot_status(call.bot, chat) not in ADMIN_STATUSES:
        raise bad_request("not enough rights to manage pinned messages in the chat")
    chat.pinned_message_id = stored.message_id
    return True


async def unpin_chat_message(call: Call) -> bool:
    chat = call.writable_chat()
    chat.pinned_message_id = None
    return True


async def answer_callback_query(call: Call) -> bool:
    text = call.params.get("text")
    if utf16_len(text) > MAX_CALLBACK_ANSWER_LENGTH:
        raise bad_request("MESSAGE_TOO_LONG")
    query = call.emu.callback_queries.get(call.params.get("callback_query_id"))
    if query is None or query.bot_id != call.bot.id or query.answer is not None:
        raise bad_request(_QUERY_INVALID)
    query.answer = {
        "text": text or None,
        "show_alert": call.params.flag("show_alert"),
        "url": call.params.get("url") or None,
        "cache_time": call.params.integer("cache_time"),
        "answered_at": time.time(),
        "seconds_after_press": round(call.emu.clock() - query.created_at, 3),
    }
    call.emu.signal.fire()
    return True


MESSAGE_METHODS: dict[str, Handler] = {
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "sendDocument": send_document,
    "sendMediaGroup": send_media_group,
    "sendChatAction": send_chat_action,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
    "pinChatMessage": pin_chat_message,
    "unpinChatMessage": unpin_chat_message,
    "answerCallbackQuery": answer_callback_query,
}
