"""Bot API method table and the methods about the bot itself, updates, webhooks, commands and chats."""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any

from sandbox.emulator_media import file_object
from sandbox.emulator_messages import MESSAGE_METHODS, Call, Handler
from sandbox.emulator_params import Params
from sandbox.emulator_state import (
    ADMIN_STATUSES,
    ApiError,
    Emulator,
    Json,
    Webhook,
    bad_request,
    json_copy,
)

MAX_LONG_POLL_SECONDS = 50
log = logging.getLogger(__name__)
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SCOPE_TYPES = frozenset(
    {"default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat"}
    | {"chat_administrators", "chat_member"}
)
_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
    "can_send_welcome_messages",
)
_PROFILE_LIMITS = {"name": 64, "description": 512, "short_description": 120}


# --------------------------------------------------------------------------- the bot itself


async def get_me(call: Call) -> Json:
    return {
        **call.bot.user,
        "can_join_groups": True,
        "can_read_all_group_messages": not call.emu.privacy_mode,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


async def log_out(call: Call) -> bool:
    return True


# --------------------------------------------------------------------------- updates and webhooks


def _set_allowed_updates(call: Call) -> None:
    allowed = call.params.decode_json("allowed_updates", "allowed updates")
    if allowed is None:
        return  # Telegram keeps the previous setting
    if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
        raise bad_request("allowed_updates must be an Array of String")
    call.bot.allowed_updates = allowed
    call.bot.prune_unwanted()


def _confirm(call: Call, offset: int) -> None:
    """Offsets confirm updates below them; a negative offset keeps only the last -offset updates."""
    bot = call.bot
    if offset > 0:
        for update_id in list(itertools.takewhile(lambda uid: uid < offset, bot.updates)):
            del bot.updates[update_id]
    elif offset < 0:
        for update_id in list(bot.updates)[:offset]:
            del bot.updates[update_id]


async def get_updates(call: Call) -> list[Json]:
    bot, emu = call.bot, call.emu
    if bot.webhook is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
            "webhook first",
        )
    _set_allowed_updates(call)
    limit = call.params.integer("limit", 100)
    limit = limit if 1 <= limit <= 100 else 100
    timeout = min(max(call.params.integer("timeout"), 0), MAX_LONG_POLL_SECONDS)
    _confirm(call, call.params.integer("offset"))
    # A newer request terminates the one still waiting, which answers 409 (as at Telegram).
    bot.poll_generation += 1
    generation = bot.poll_generation
    emu.signal.fire()
    if not bot.updates and timeout > 0:
        await emu.signal.wait_until(
            lambda: (
                bool(bot.updates)
                or bot.poll_generation != generation
                or bot.webhook is not None
                or bot.detached
                or emu.closing
            ),
            timeout,
        )
        if bot.poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                "is running",
            )
    batch = json_copy(list(itertools.islice(bot.updates.values(), limit)))
    if batch:
        bot.max_fetched_update_id = max(bot.max_fetched_update_id, batch[-1]["update_id"])
    return batch


async def set_webhook(call: Call) -> bool:
    url = call.params.get("url").strip()
    if not url:
        return await delete_webhook(call)
    if not re.match(r"^https?://[^\s/]+", url):
        raise bad_request("bad webhook: invalid webhook URL specified")
    secret = call.params.get("secret_token")
    if secret and not _SECRET_TOKEN_RE.match(secret):
        raise bad_request("secret token contains unallowed characters")
    _set_allowed_updates(call)
    # Like td::clamp in the Bot API server: out-of-range values are clamped, not refused.
    max_connections = min(max(call.params.integer("max_connections", 40), 1), 100)
    drop = call.params.flag("drop_pending_updates")
    current = call.bot.webhook
    if (
        current is not None
        and current.task is not None
        and not current.task.done()
        and not drop
        and (current.url, current.secret_token, current.max_connections) == (url, secret, max_connections)
    ):
        # "Webhook is already set": replicas re-registering at start-up must not disturb delivery.
        return True
    if drop:
        call.bot.updates.clear()
    call.emu.stop_webhook(call.bot)
    call.bot.webhook = Webhook(url=url, secret_token=secret, max_connections=max_connections)
    call.emu.start_webhook(call.bot)
    call.emu.signal.fire()
    return True


async def delete_webhook(call: Call) -> bool:
    call.emu.stop_webhook(call.bot)
    call.bot.webhook = None
    if call.params.flag("drop_pending_updates"):
        call.bot.updates.clear()
    call.emu.signal.fire()
    return True


async def get_webhook_info(call: Call) -> Json:
    bot = call.bot
    info: Json = {"url": "", "has_custom_certificate": False, "pending_update_count": len(bot.updates)}
    if bot.webhook is not None:
        info.update(url=bot.webhook.url, max_connections=bot.webhook.max_connections, ip_address="127.0.0.1")
        if bot.webhook.last_error_date is not None:
            info.update(
                last_error_date=bot.webhook.last_error_date, last_error_message=bot.webhook.last_error_message
            )
    if bot.allowed_updates:
        info["allowed_updates"] = list(bot.allowed_updates)
    return info


# --------------------------------------------------------------------------- commands, menu button, profile


def _scope_key(call: Call) -> tuple[str, str]:
    """(canonical scope JSON, language code): the key Telegram stores command lists under."""
    scope = call.params.decode_json("scope", "bot command scope") or {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in _SCOPE_TYPES:
        raise bad_request("unsupported bot command scope type")
    canonical: Json = {"type": scope["type"]}
    if scope["type"].startswith("chat"):
        chat_params = Params(args={"chat_id": str(scope.get("chat_id", ""))})
        canonical["chat_id"] = Call(call.emu, call.bot, chat_params).chat().id
    if scope["type"] == "chat_member":
        if not isinstance(scope.get("user_id"), int):
            raise bad_request("invalid user_id specified")
        canonical["user_id"] = scope["user_id"]
    language = call.params.get("language_code")
    if language and not re.match(r"^[a-z]{2}$", language):
        raise bad_request("invalid language code specified")
    return json.dumps(canonical, sort_keys=True), language


def _bot_command(raw: Any) -> Json:
    if not isinstance(raw, dict):
        raise bad_request("can't parse BotCommand: expected an Object")
    for field in ("command", "description"):
        if not isinstance(raw.get(field), str):
            raise bad_request(f'can\'t parse BotCommand: Field "{field}" must be of type String')
    command = raw["command"].removeprefix("/")
    if not _COMMAND_RE.match(command):
        raise bad_request("BOT_COMMAND_INVALID")
    if not 1 <= len(raw["description"].strip()) <= 256:
        raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    return {"command": command, "description": raw["description"]}


async def set_my_commands(call: Call) -> bool:
    raw = call.params.decode_json("commands", "commands") or []
    if not isinstance(raw, list):
        raise bad_request("expected an Array of BotCommand")
    if len(raw) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    commands = [_bot_command(item) for item in raw]
    key = _scope_key(call)
    if commands:
        call.bot.commands[key] = commands
    else:
        call.bot.commands.pop(key, None)
    return True


async def get_my_commands(call: Call) -> list[Json]:
    return json_copy(call.bot.commands.get(_scope_key(call), []))


async def delete_my_commands(call: Call) -> bool:
    call.bot.commands.pop(_scope_key(call), None)
    return True


async def set_chat_menu_button(call: Call) -> bool:
    button = call.params.decode_json("menu_button", "menu button")
    if button is not None and (
        not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default")
    ):
        raise bad_request("can't parse menu button: unsupported type")
    if call.params.has("chat_id"):
        call.chat().menu_button = button
    else:
        call.bot.default_menu_button = button
    return True


async def get_chat_menu_button(call: Call) -> Json:
    button = call.chat().menu_button if call.params.has("chat_id") else call.bot.default_menu_button
    return json_copy(button) if button else {"type": "default"}


def _profile_setter(field: str) -> Handler:
    async def setter(call: Call) -> bool:
        value = call.params.get(field)
        if len(value) > _PROFILE_LIMITS[field]:
            raise bad_request(f"{field} is too long")
        call.bot.profile[(field, call.params.get("language_code"))] = value
        return True

    return setter


def _profile_getter(field: str) -> Handler:
    async def getter(call: Call) -> Json:
        return {field: call.bot.profile.get((field, call.params.get("language_code")), "")}

    return getter


# --------------------------------------------------------------------------- chats and members


def chat_member(user: Json, status: str) -> Json:
    """A ChatMember object of the right subtype for ``status``."""
    member: Json = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(can_be_edited=False, is_anonymous=False, can_promote_members=False)
        member.update(dict.fromkeys(_ADMIN_RIGHTS, True))
    elif status == "kicked":
        member["until_date"] = 0
    return member


async def get_chat(call: Call) -> Json:
    chat = call.chat()
    info = {**chat.info, "accent_color_id": 0, "max_reaction_count": 11}
    info["accepted_gift_types"] = dict.fromkeys(
        ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels"),
        False,
    )
    pinned = chat.live_message(chat.pinned_message_id or 0)
    if pinned is not None:
        info["pinned_message"] = json_copy(pinned.message)
    return info


async def get_chat_member(call: Call) -> Json:
    chat = call.chat()
    user_id = call.params.integer("user_id")
    if not user_id:
        raise bad_request("invalid user_id specified")
    if user_id == call.bot.id:
        return chat_member(call.bot.user, call.emu.bot_status(call.bot, chat))
    member = chat.members.get(user_id)
    if member is not None:
        return chat_member(member.user, member.status)
    user = call.emu.users.get(user_id, {"id": user_id, "is_bot": False, "first_name": ""})
    status = "member" if chat.type == "private" and chat.id == user_id else "left"
    return chat_member(user, status)


async def get_chat_administrators(call: Call) -> list[Json]:
    chat = call.chat()
    if not chat.is_group:
        raise bad_request("there are no administrators in the private chat")
    return [chat_member(m.user, m.status) for m in chat.members.values() if m.status in ADMIN_STATUSES]


async def get_chat_member_count(call: Call) -> int:
    chat = call.chat()
    if not chat.is_group:
        return 2
    present = {uid for uid, m in chat.members.items() if m.status in ("creator", "administrator", "member")}
    if call.bot.id not in chat.members:
        present.add(call.bot.id)
    return len(present)


async def get_file(call: Call) -> Json:
    file_id = call.params.get("file_id")
    stored = call.emu.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    return file_object(stored, file_id)


BOT_METHODS: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": log_out,
    "close": log_out,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setChatMenuButton": set_chat_menu_button,
    "getChatMenuButton": get_chat_menu_button,
    "setMyName": _profile_setter("name"),
    "getMyName": _profile_getter("name"),
    "setMyDescription": _profile_setter("description"),
    "getMyDescription": _profile_getter("description"),
    "setMyShortDescription": _profile_setter("short_description"),
    "getMyShortDescription": _profile_getter("short_description"),
    "getChat": get_chat,
    "getChatMember": get_chat_member,
    "getChatAdministrators": get_chat_administrators,
    "getChatMemberCount": get_chat_member_count,
    "getFile": get_file,
}
METHODS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler) for name, handler in {**BOT_METHODS, **MESSAGE_METHODS}.items()
}


def canonical_name(method: str) -> str:
    entry = METHODS.get(method.lower())
    return entry[0] if entry else method


async def perform(emu: Emulator, token: str, method: str, params: Params) -> tuple[int, Json]:
    """Run one Bot API call and log it: (HTTP status, response body)."""
    entry = emu.begin_call(canonical_name(method), params.loggable())
    try:
        bot = emu.bot_for_token(token)
        handler = METHODS.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        result = await handler[1](Call(emu, bot, params))
    except ApiError as error:
        emu.finish_call(entry, error)
        return error.error_code, error.body()
    except Exception as exc:  # an emulator bug: answer like Telegram's 500 but keep the traceback in the log
        log.exception("emulator failure in %s", method)
        error = ApiError(500, f"Internal Server Error: emulator failure ({type(exc).__name__}: {exc})")
        emu.finish_call(entry, error)
        return 500, error.body()
    emu.finish_call(entry, None)
    return 200, {"ok": True, "result": result}
