"""The ``/control`` API tests use to play users, script faults and observe what the bot did.

JSON in, JSON out. Every malformed request gets HTTP 400 ``{"ok": false, "error": "..."}``.

==========================================  ====================================================
POST   /control/chats                       {id, type, title?, username?, is_forum?, first_name?}
GET    /control/chats/{id}                  chat, members, pinned_message_id
POST   /control/chats/{id}/members          {user, status="member"}; the bot's own id works too
GET    /control/chats/{id}/messages         ?after=&thread= → [Message + edit_count + deleted]
POST   /control/messages                    {chat_id, from, text, message_thread_id?, reply_to_message_id?,
                                            entities?, token?} → {message, update_id}
POST   /control/press                       {chat_id, message_id, from, data | text}
                                            → {callback_query_id, update_id}
GET    /control/wait                        ?chat_id&after&count=1&timeout=5&thread → {messages, timed_out}
GET    /control/wait_edit                   ?chat_id&message_id&after_edit_count&timeout
                                            → {message, timed_out}
GET    /control/callback_answers            ?callback_query_id&timeout → [answer]
GET    /control/updates/pending             ?token → {pending, unfetched, unclaimed}
POST   /control/faults                      {method | "*", kind, count=1, retry_after=1, delay=1}
GET    /control/faults, DELETE              list, clear
GET    /control/calls                       ?method&since → [call]
GET    /control/stats, /commands, /bots     observation
GET    /control/limits, POST                {enforce?, per_chat_per_second?, per_chat_burst?, ...}
POST   /control/outbox                      the sandbox's SMS gateway: a care delivery (JSON, with an
                                            Idempotency-Key header) → 200, or 409 for a key seen before
GET    /control/outbox                      → [delivery]
POST   /control/webhook/backends            {urls: [url, ...], token?, timeout=10, fail_timeout=1}: a
                                            round-robin proxy in front of the webhook address (bot
                                            replicas); [] = off. Without token: for every bot
GET    /control/webhook/backends            → {default, bots: {bot_id: config}}
GET    /control/webhook/deliveries          ?token → {backends: {url: {attempts, ok, failures,
                                            last_error}}, updates: {update_id: 2xx deliveries},
                                            in_flight, peak_in_flight, pending}
DELETE /control/webhook/deliveries          ?token: zero those counters
POST   /control/webhook/redeliver           {update_id, token?}: send a delivered update once more
                                            → {update_id, status, backend, error}
POST   /control/reset                       forget everything
==========================================  ====================================================
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from aiohttp import web

from sandbox.emulator_limits import FAULT_KINDS, Fault
from sandbox.emulator_state import (
    ApiError,
    BackendStats,
    Bot,
    ControlError,
    Emulator,
    Json,
    WebhookBalancer,
)
from sandbox.emulator_webhook import redeliver

MAX_WAIT_SECONDS = 300.0
EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


def _emu(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


# --------------------------------------------------------------------------- input validation


async def _body(request: web.Request) -> Json:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise ControlError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError("request body must be a JSON object")
    return body


def _int(body: Json, key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(
            f'"{key}" is required and must be an integer'
            if key not in body
            else f'"{key}" must be an integer'
        )
    return value


def _opt_int(body: Json, key: str) -> int | None:
    return None if body.get(key) is None else _int(body, key)


def _str(body: Json, key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise ControlError(
            f'"{key}" is required and must be a string' if key not in body else f'"{key}" must be a string'
        )
    return value


def _opt_str(body: Json, key: str) -> str | None:
    return None if body.get(key) is None else _str(body, key)


def _bool(body: Json, key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ControlError(f'"{key}" must be true or false')
    return value


def _number(body: Json, key: str, default: float) -> float:
    value = body.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ControlError(f'"{key}" must be a non-negative number')
    return float(value)


def _user(value: Any, key: str = "from") -> Json:
    """A Telegram User from ``{"id", "first_name"?, "last_name"?, "username"?, "language_code"?}``."""
    if not isinstance(value, dict):
        raise ControlError(f'"{key}" must be a user object like {{"id": 1001, "first_name": "Ann"}}')
    user: Json = {"id": _int(value, "id"), "is_bot": False}
    user["first_name"] = _str(value, "first_name", f"User {user['id']}")
    for optional in ("last_name", "username", "language_code"):
        if (text := _opt_str(value, optional)) is not None:
            user[optional] = text
    if user["id"] <= 0:
        raise ControlError('user "id" must be positive')
    return user


def _query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ControlError(f"query parameter {name!r} must be an integer") from None


def _query_required_int(request: web.Request, name: str) -> int:
    value = _query_int(request, name)
    if value is None:
        raise ControlError(f"query parameter {name!r} is required")
    return value


def _query_timeout(request: web.Request, default: float) -> float:
    raw = request.query.get("timeout")
    try:
        timeout = default if raw in (None, "") else float(raw)
    except ValueError:
        raise ControlError("query parameter 'timeout' must be a number of seconds") from None
    return min(max(timeout, 0.0), MAX_WAIT_SECONDS)


def _chat_id_param(request: web.Request) -> int:
    try:
        return int(request.match_info["chat_id"])
    except ValueError:
        raise ControlError("chat id in the path must be an integer") from None


# --------------------------------------------------------------------------- chats and users


async def create_chat(request: web.Request) -> web.Response:
    body = await _body(request)
    chat = _emu(request).create_chat(
        _int(body, "id"),
        _str(body, "type"),
        title=_opt_str(body, "title"),
        username=_opt_str(body, "username"),
        is_forum=_bool(body, "is_forum"),
        first_name=_opt_str(body, "first_name"),
        last_name=_opt_str(body, "last_name"),
    )
    return json_response(chat)


async def get_chat(request: web.Request) -> web.Response:
    chat = _emu(request).control_chat(_chat_id_param(request))
    members = [{"user": m.user, "status": m.status} for m in chat.members.values()]
    return json_response({"chat": chat.info, "members": members, "pinned_message_id": chat.pinned_message_id})


async def set_member(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _user(body.get("user"), "user")
    status = _str(body, "status", "member")
    return json_response(_emu(request).set_member(_chat_id_param(request), user, status))


async def chat_messages(request: web.Request) -> web.Response:
    chat = _emu(request).control_chat(_chat_id_param(request))
    after = _query_int(request, "after", 0) or 0
    thread = _query_int(request, "thread")
    messages = [
        m.snapshot()
        for m in chat.messages.values()
        if m.message_id > after and (thread is None or m.thread_id == thread)
    ]
    return json_response(messages)


# --------------------------------------------------------------------------- playing users


async def post_message(request: web.Request) -> web.Response:
    body = await _body(request)
    entities = body.get("entities")
    if entities is not None and not isinstance(entities, list):
        raise ControlError('"entities" must be a list of MessageEntity objects')
    text = _str(body, "text")
    if not text:
        raise ControlError('"text" must not be empty')
    message, update_id = _emu(request).post_user_message(
        _int(body, "chat_id"),
        _user(body.get("from")),
        text,
        thread_id=_opt_int(body, "message_thread_id"),
        reply_to_message_id=_opt_int(body, "reply_to_message_id"),
        entities=entities,
        token=_opt_str(body, "token"),
    )
    return json_response({"message": message, "update_id": update_id})


async def press(request: web.Request) -> web.Response:
    body = await _body(request)
    data, text = _opt_str(body, "data"), _opt_str(body, "text")
    if (data is None) == (text is None):
        raise ControlError('give exactly one of "data" (callback_data) or "text" (the button label)')
    query_id, update_id = _emu(request).press_button(
        _int(body, "chat_id"), _int(body, "message_id"), _user(body.get("from")), data=data, button_text=text
    )
    return json_response({"callback_query_id": query_id, "update_id": update_id})


# --------------------------------------------------------------------------- waiting for the bot


async def wait_messages(request: web.Request) -> web.Response:
    count = _query_int(request, "count", 1) or 1
    messages, timed_out = await _emu(request).wait_bot_messages(
        _query_required_int(request, "chat_id"),
        after=_query_int(request, "after", 0) or 0,
        count=count,
        seconds=_query_timeout(request, 5.0),
        thread=_query_int(request, "thread"),
    )
    return json_response({"messages": messages, "timed_out": timed_out})


async def wait_edit(request: web.Request) -> web.Response:
    message, timed_out = await _emu(request).wait_edit(
        _query_required_int(request, "chat_id"),
        _query_required_int(request, "message_id"),
        _query_int(request, "after_edit_count", 0) or 0,
        _query_timeout(request, 5.0),
    )
    return json_response({"message": message, "timed_out": timed_out})


async def callback_answers(request: web.Request) -> web.Response:
    query_id = request.query.get("callback_query_id") or None
    answers, _ = await _emu(request).wait_callback_answers(query_id, _query_timeout(request, 0.0))
    return json_response(answers)


async def pending_updates(request: web.Request) -> web.Response:
    return json_response(_emu(request).pending_updates(request.query.get("token") or None))


# --------------------------------------------------------------------------- faults, limits, observation


async def add_fault(request: web.Request) -> web.Response:
    body = await _body(request)
    kind = str(body.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ControlError(f'"kind" must be one of {sorted(FAULT_KINDS)}')
    count = _int(body, "count", 1)
    if count < 1:
        raise ControlError('"count" must be at least 1')
    fault = Fault(
        method=_str(body, "method").lower(),
        kind=kind,
        count=count,
        retry_after=_int(body, "retry_after", 1),
        delay=_number(body, "delay", 1.0),
    )
    _emu(request).faults.add(fault)
    return json_response({"ok": True, "fault": fault.describe()})


async def list_faults(request: web.Request) -> web.Response:
    return json_response({"faults": [fault.describe() for fault in _emu(request).faults.faults]})


async def clear_faults(request: web.Request) -> web.Response:
    _emu(request).faults.clear()
    return json_response({"ok": True})


async def calls(request: web.Request) -> web.Response:
    method = (request.query.get("method") or "").lower()
    since = _query_int(request, "since", 0) or 0
    log = [
        c for c in _emu(request).calls if c["seq"] > since and (not method or c["method"].lower() == method)
    ]
    return json_response(log)


async def stats(request: web.Request) -> web.Response:
    return json_response(_emu(request).stats())


async def commands(request: web.Request) -> web.Response:
    stored = []
    for bot in _emu(request).bots.values():
        for (scope, language), entries in bot.commands.items():
            stored.append(
                {"bot_id": bot.id, "scope": json.loads(scope), "language_code": language, "commands": entries}
            )
    return json_response({"commands": stored})


async def bots(request: web.Request) -> web.Response:
    listing = [
        {
            "id": bot.id,
            "username": bot.user["username"],
            "webhook_url": bot.webhook.url if bot.webhook else None,
            "pending_updates": len(bot.updates),
            "allowed_updates": bot.allowed_updates,
        }
        for bot in _emu(request).bots.values()
    ]
    return json_response({"bots": listing})


async def set_limits(request: web.Request) -> web.Response:
    body = await _body(request)
    limiter = _emu(request).limiter
    if "enforce" in body:
        limiter.enforce = _bool(body, "enforce")
    config = limiter.config
    per_second = _number(body, "per_chat_per_second", config.per_chat_per_second)
    if per_second <= 0:
        raise ControlError('"per_chat_per_second" must be positive')
    config.per_chat_per_second = per_second
    config.per_chat_burst = _int(body, "per_chat_burst", config.per_chat_burst)
    config.per_group_per_minute = _int(body, "per_group_per_minute", config.per_group_per_minute)
    config.per_bot_per_second = _int(body, "per_bot_per_second", config.per_bot_per_second)
    return json_response(limiter.describe())


async def get_limits(request: web.Request) -> web.Response:
    return json_response(_emu(request).limiter.describe())


async def deliver_to_outbox(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise ControlError("an Idempotency-Key header is required")
    body = await _body(request)
    outbox = _emu(request).outbox
    if key in outbox:
        return json_response({"ok": True, "duplicate": True}, status=409)
    outbox[key] = body
    return json_response({"ok": True})


async def read_outbox(request: web.Request) -> web.Response:
    return json_response(list(_emu(request).outbox.values()))


# --------------------------------------------------------------------------- webhook replicas


_URL_RE = re.compile(r"^https?://[^\s/]+")


def _bot_of(emu: Emulator, token: str | None) -> Bot | None:
    if token is None:
        return None
    try:
        return emu.bot_for_token(token)
    except ApiError:
        raise ControlError(f"malformed bot token {token!r}") from None


def _bots(emu: Emulator, token: str | None) -> list[Bot]:
    bot = _bot_of(emu, token)
    return [bot] if bot is not None else list(emu.bots.values())


async def set_webhook_backends(request: web.Request) -> web.Response:
    body = await _body(request)
    urls = body.get("urls")
    if not isinstance(urls, list) or not all(isinstance(url, str) and _URL_RE.match(url) for url in urls):
        raise ControlError('"urls" must be a list of http(s) URLs like "http://127.0.0.1:8443/tg" ([] = off)')
    if len(set(urls)) != len(urls):
        raise ControlError('"urls" lists a backend twice')
    timeout = _number(body, "timeout", 10.0)
    if timeout <= 0:
        raise ControlError('"timeout" must be positive')
    balancer = WebhookBalancer(
        urls=list(urls), timeout=timeout, fail_timeout=_number(body, "fail_timeout", 1.0)
    )
    emu = _emu(request)
    bot = _bot_of(emu, _opt_str(body, "token"))
    if bot is not None:
        bot.balancer = balancer
    else:  # every bot, present and future
        emu.default_balancer = balancer if urls else None
        for each in emu.bots.values():
            each.balancer = None
    return json_response({"ok": True, "backends": balancer.describe()})


async def get_webhook_backends(request: web.Request) -> web.Response:
    emu = _emu(request)
    default = emu.default_balancer.describe() if emu.default_balancer else None
    own = {str(bot.id): bot.balancer.describe() for bot in emu.bots.values() if bot.balancer is not None}
    return json_response({"default": default, "bots": own})


async def webhook_deliveries(request: web.Request) -> web.Response:
    bots = _bots(_emu(request), request.query.get("token") or None)
    backends: dict[str, BackendStats] = {}
    delivered: Counter[int] = Counter()
    for bot in bots:
        for url, stats in bot.deliveries.backends.items():
            total = backends.setdefault(url, BackendStats())
            total.attempts += stats.attempts
            total.ok += stats.ok
            total.failures += stats.failures
            total.last_error = stats.last_error or total.last_error
        delivered.update(bot.deliveries.delivered)
    return json_response(
        {
            "backends": {url: vars(stats) for url, stats in backends.items()},
            "updates": {str(update_id): count for update_id, count in sorted(delivered.items())},
            "in_flight": sum(bot.deliveries.in_flight for bot in bots),
            "peak_in_flight": max((bot.deliveries.peak_in_flight for bot in bots), default=0),
            "pending": sum(len(bot.updates) for bot in bots),
        }
    )


async def clear_webhook_deliveries(request: web.Request) -> web.Response:
    for bot in _bots(_emu(request), request.query.get("token") or None):
        deliveries = bot.deliveries
        deliveries.backends.clear()
        deliveries.delivered.clear()
        deliveries.peak_in_flight = deliveries.in_flight  # kept: the updates to redeliver
    return json_response({"ok": True})


async def redeliver_update(request: web.Request) -> web.Response:
    body = await _body(request)
    update_id = _int(body, "update_id")
    emu = _emu(request)
    bot = _bot_of(emu, _opt_str(body, "token"))
    if bot is None:
        holders = [each for each in emu.bots.values() if update_id in each.deliveries.sent]
        if not holders:
            raise ControlError(f"update {update_id} has not been delivered by webhook")
        if len(holders) > 1:
            raise ControlError(f'update {update_id} went to {len(holders)} bots; say which with "token"')
        bot = holders[0]
    outcome = await redeliver(emu, bot, update_id)
    return json_response(
        {"update_id": update_id, "status": outcome.status, "backend": outcome.backend, "error": outcome.error}
    )


async def reset(request: web.Request) -> web.Response:
    _emu(request).reset()
    return json_response({"ok": True})


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/control/chats", create_chat)
    app.router.add_get("/control/chats/{chat_id}", get_chat)
    app.router.add_post("/control/chats/{chat_id}/members", set_member)
    app.router.add_get("/control/chats/{chat_id}/messages", chat_messages)
    app.router.add_post("/control/messages", post_message)
    app.router.add_post("/control/press", press)
    app.router.add_get("/control/wait", wait_messages)
    app.router.add_get("/control/wait_edit", wait_edit)
    app.router.add_get("/control/callback_answers", callback_answers)
    app.router.add_get("/control/updates/pending", pending_updates)
    app.router.add_post("/control/faults", add_fault)
    app.router.add_get("/control/faults", list_faults)
    app.router.add_delete("/control/faults", clear_faults)
    app.router.add_get("/control/calls", calls)
    app.router.add_get("/control/stats", stats)
    app.router.add_get("/control/commands", commands)
    app.router.add_get("/control/bots", bots)
    app.router.add_post("/control/limits", set_limits)
    app.router.add_get("/control/limits", get_limits)
    app.router.add_post("/control/outbox", deliver_to_outbox)
    app.router.add_get("/control/outbox", read_outbox)
    app.router.add_post("/control/webhook/backends", set_webhook_backends)
    app.router.add_get("/control/webhook/backends", get_webhook_backends)
    app.router.add_get("/control/webhook/deliveries", webhook_deliveries)
    app.router.add_delete("/control/webhook/deliveries", clear_webhook_deliveries)
    app.router.add_post("/control/webhook/redeliver", redeliver_update)
    app.router.add_post("/control/reset", reset)
