"""The sandbox's web chat page: ``/`` and ``/sandbox/api/…`` on the emulator's own port.

The page is plain HTML/CSS/JavaScript (``sandbox/page/``), nothing fetched from elsewhere. It plays
the people of the demo team through the emulator (the same calls the control API makes), long-polls
a chat's changes, fires shop events into the running bot (`EventIntake.ingest`) and moves the
sandbox clock. Every malformed request is a 400 with ``{"ok": false, "code", "error"}``; nothing is
changed by a request that fails.

==========================================  ====================================================
GET    /                                    the page
GET    /sandbox/api/state                   ?lang → texts, people, group, clock, ready
GET    /sandbox/api/feed                    ?as&chat=group|private&after_version=0&timeout=25
                                            → {version, messages}: those changed since the version
POST   /sandbox/api/send                    {as, chat, text, reply_to_message_id?} → {message_id}
POST   /sandbox/api/press                   {as, chat, message_id, data} → {answer | null}
GET    /sandbox/api/commands                ?as → the bot's commands (setMyCommands) in their language
GET    /sandbox/api/customers               ?q → up to 8 demo customers
POST   /sandbox/api/events                  {customer_id, kind: created|paid|shipped|signed|review}
GET    /sandbox/api/clock, POST             {minutes: 1…1440} moves the clock on; → {now, offset_minutes}
GET    /sandbox/api/outbox                  care messages delivered to the sandbox's SMS gateway
GET    /sandbox/api/files/{file_id}         a photo's or document's bytes
==========================================  ====================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.clock import Clock
from bot.config import SUPPORTED_LOCALES
from sandbox import page_shop as shop
from sandbox.emulator_state import ApiError, ControlError, Emulator, Json
from sandbox.page_feed import FeedTracker, image_type
from sandbox.page_texts import locale_names, texts_for

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)
PAGE_DIR = Path(__file__).with_name("page")
MAX_TEXT = 4096
MAX_POLL_SECONDS = 30.0
PRESS_ANSWER_SECONDS = 10.0
MAX_ADVANCE_MINUTES = 1440
MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageError(Exception):
    """A request the page API refuses; ``code`` lets the page show it in the reader's language."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass
class SandboxPage:
    emulator: Emulator
    group_id: int
    people: dict[str, Json]
    i18n: I18n
    clock: Clock
    zone: ZoneInfo
    app: App | None = None  # the bot, once it runs: events, customers and engine wake-ups need it
    tracker: FeedTracker = field(default_factory=FeedTracker)

    def install(self, app: web.Application) -> None:
        """Add the page to the emulator's aiohttp app (see sandbox.emulator.build_app)."""
        api = web.Application(middlewares=[_page_errors])
        api[PAGE_KEY] = self
        api.router.add_get("/api/state", state)
        api.router.add_get("/api/feed", feed)
        api.router.add_post("/api/send", send)
        api.router.add_post("/api/press", press)
        api.router.add_get("/api/commands", commands)
        api.router.add_get("/api/customers", customers)
        api.router.add_post("/api/events", fire_event)
        api.router.add_get("/api/clock", clock)
        api.router.add_post("/api/clock", advance_clock)
        api.router.add_get("/api/outbox", outbox)
        api.router.add_get("/api/files/{file_id}", file_bytes)
        api.router.add_static("/page/", PAGE_DIR)
        app.add_subapp("/sandbox", api)
        app.router.add_get("/", index)
        app[PAGE_KEY] = self
        app.middlewares.append(_watch_force_replies)

    def bot(self) -> App:
        if self.app is None:
            raise PageError("the bot is still starting", "not_ready", 503)
        return self.app

    def clock_json(self) -> Json:
        now = self.clock.now().astimezone(self.zone)
        offset = self.clock.offset().total_seconds()
        return {"now": f"{now:%Y-%m-%d %H:%M}", "offset_minutes": round(offset / 60), "zone": self.zone.key}


PAGE_KEY: web.AppKey[SandboxPage] = web.AppKey("sandbox_page", SandboxPage)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


@web.middleware
async def _page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refusal is JSON the page can show; an unexpected failure is logged, never sent as a traceback."""
    try:
        return await handler(request)
    except PageError as exc:
        return json_response({"ok": False, "code": exc.code, "error": exc.message}, exc.status)
    except (ControlError, ApiError) as exc:
        return json_response({"ok": False, "code": "bad_request", "error": str(exc)}, 400)
    except web.HTTPException as exc:
        if not request.path.startswith("/sandbox/api/"):
            raise
        return json_response({"ok": False, "code": "bad_request", "error": exc.reason}, exc.status)
    except Exception:
        log.exception("sandbox page request %s failed", request.path)
        error = "internal error; the sandbox's log has the details"
        return json_response({"ok": False, "code": "internal", "error": error}, 500)


@web.middleware
async def _watch_force_replies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note which bot messages asked for a ForceReply. The Bot API leaves it out of the Message (so
    does the emulator), but a Telegram app shows it: the page's composer replies to such a message."""
    response = await handler(request)
    if request.match_info.get("method", "").lower() != "sendmessage" or response.status != 200:
        return response
    if request.content_type == "application/json":
        sent = json.loads(await request.read() or b"{}")  # cached: the handler has read it already
    elif request.content_type == "application/x-www-form-urlencoded":
        sent = dict(await request.post())
    else:
        return response  # multipart: its stream is consumed; the bot sends text prompts urlencoded
    markup = sent.get("reply_markup") if isinstance(sent, dict) else None
    try:
        markup = json.loads(markup) if isinstance(markup, str) else markup
        message = json.loads(response.body)["result"] if isinstance(response, web.Response) else None
    except (ValueError, TypeError, KeyError):
        return response
    if isinstance(markup, dict) and markup.get("force_reply") and isinstance(message, dict):
        page = request.app[PAGE_KEY]
        page.tracker.force_reply(page.emulator, message["chat"]["id"], message["message_id"], markup)
    return response


# --------------------------------------------------------------------------- reading requests


def _page(request: web.Request) -> SandboxPage:
    return request.config_dict[PAGE_KEY]


async def _body(request: web.Request, allowed: set[str]) -> Json:
    # JSON only: a form another web site posts cross-origin cannot be JSON without a CORS preflight.
    if request.content_type != "application/json":
        raise PageError("send a JSON object with Content-Type: application/json")
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise PageError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PageError("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise PageError(f"unknown field(s) {unknown}; expected {sorted(allowed)}")
    return body


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PageError(f'"{name}" must be a whole number from {low} to {high}')
    return value


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise PageError(f'"{name}" is required and must be a string')
    if len(value) > limit:
        raise PageError(f'"{name}" is longer than {limit} characters')
    return value


def _person(page: SandboxPage, who: Any) -> Json:
    """The Telegram User the page acts as (the emulator stores it in messages as given)."""
    if who not in page.people:
        raise PageError(f'"as" must be one of {sorted(page.people)}')
    return {"is_bot": False, **page.people[who]}


def _chat_id(page: SandboxPage, chat: Any, person: Json) -> int:
    """ "group" is the demo group; "private" the person's private chat with the bot."""
    if chat == "group":
        return page.group_id
    if chat == "private":
        return int(person["id"])
    raise PageError('"chat" must be "group" or "private"')


def _query_number(request: web.Request, name: str, default: float, high: float) -> float:
    raw = request.query.get(name, "")
    try:
        value = default if raw == "" else float(raw)
    except ValueError:
        raise PageError(f"query parameter {name!r} must be a number") from None
    if not 0 <= value <= high:
        raise PageError(f"query parameter {name!r} must be from 0 to {high:g}")
    return value


# --------------------------------------------------------------------------- the chat


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def state(request: web.Request) -> web.Response:
    page = _page(request)
    lang = request.query.get("lang") or page.i18n.default_locale
    if lang not in SUPPORTED_LOCALES:
        raise PageError(f"lang must be one of {list(SUPPORTED_LOCALES)}")
    group = page.emulator.chats.get(page.group_id)
    people = [
        {"key": key, "id": p["id"], "name": p["first_name"], "language": p.get("language_code", "")}
        for key, p in page.people.items()
    ]
    members = [m for m in group.members.values() if m.status in MEMBER_STATUSES] if group else []
    bot = next(iter(page.emulator.bots.values()), None)
    return json_response(
        {
            "lang": lang,
            "locales": locale_names(page.i18n),
            "texts": texts_for(page.i18n, lang),
            "people": people,
            "members": [m.user["id"] for m in members],
            "group": {"id": page.group_id, "title": group.info.get("title") if group else ""},
            "bot": {"id": bot.id, "name": bot.user["first_name"]} if bot else None,
            "clock": page.clock_json(),
            "ready": page.app is not None,
        }
    )


async def feed(request: web.Request) -> web.Response:
    page, emu = _page(request), _page(request).emulator
    person = _person(page, request.query.get("as"))
    chat_id = _chat_id(page, request.query.get("chat"), person)
    after = int(_query_number(request, "after_version", 0, 1e15))
    timeout = _query_number(request, "timeout", 25.0, MAX_POLL_SECONDS)
    tracker = page.tracker
    await emu.signal.wait_until(lambda: emu.closing or tracker.latest(emu, chat_id) > after, timeout)
    version, messages = tracker.since(emu, chat_id, after)
    return json_response({"version": version, "messages": messages})


async def send(request: web.Request) -> web.Response:
    page = _page(request)
    body = await _body(request, {"as", "chat", "text", "reply_to_message_id"})
    person = _person(page, body.get("as"))
    chat_id = _chat_id(page, body.get("chat"), person)
    text = _text(body.get("text"), "text", MAX_TEXT).strip()
    if not text:
        raise PageError('"text" must not be empty')
    reply_to = body.get("reply_to_message_id")
    reply_to = None if reply_to is None else _int(reply_to, "reply_to_message_id", 1, 2**31)
    if chat_id == page.group_id and not _is_member(page, person):
        # The demo group is private: only members write in it (the emulator would let anyone join).
        raise PageError(f"{person['first_name']} is not a member of the group", "not_member", 403)
    message, _update = page.emulator.post_user_message(chat_id, person, text, reply_to_message_id=reply_to)
    return json_response({"ok": True, "message_id": message["message_id"]})


def _is_member(page: SandboxPage, person: Json) -> bool:
    group = page.emulator.chats.get(page.group_id)
    member = group.members.get(int(person["id"])) if group else None
    return member is not None and member.status in MEMBER_STATUSES


async def press(request: web.Request) -> web.Response:
    page = _page(request)
    body = await _body(request, {"as", "chat", "message_id", "data"})
    person = _person(page, body.get("as"))
    chat_id = _chat_id(page, body.get("chat"), person)
    message_id = _int(body.get("message_id"), "message_id", 1, 2**31)
    data = _text(body.get("data"), "data", 64)
    query_id, _update = page.emulator.press_button(chat_id, message_id, person, data=data)
    answers, _timed_out = await page.emulator.wait_callback_answers(query_id, PRESS_ANSWER_SECONDS)
    answer = answers[0] if answers else None
    if answer is not None:
        answer = {"text": answer.get("text") or "", "show_alert": bool(answer.get("show_alert"))}
    return json_response({"ok": True, "answer": answer})


async def commands(request: web.Request) -> web.Response:
    """The menu Telegram would show this person: the default scope in their language, else the default."""
    page = _page(request)
    person = _person(page, request.query.get("as"))
    language = str(person.get("language_code") or "")[:2]
    bot = next(iter(page.emulator.bots.values()), None)
    stored = bot.commands if bot else {}
    for code in (language, ""):
        for (scope, lang), entries in stored.items():
            if lang == code and json.loads(scope).get("type") == "default":
                return json_response(entries)
    return json_response([])


async def file_bytes(request: web.Request) -> web.StreamResponse:
    stored = _page(request).emulator.files.get(request.match_info["file_id"])
    if stored is None or stored.data is None:
        raise PageError("no such file", "not_found", 404)
    mime = image_type(stored.data) if stored.kind == "photo" else stored.mime_type
    return web.Response(body=stored.data, content_type=mime or "application/octet-stream")


# --------------------------------------------------------------------------- the shop and the clock


async def customers(request: web.Request) -> web.Response:
    page = _page(request)
    query = request.query.get("q", "").strip()
    if len(query) > shop.MAX_QUERY:
        raise PageError(f"the search is longer than {shop.MAX_QUERY} characters")
    found = await shop.search_customers(page.bot().followups.sessions, query)
    return json_response([shop.customer_json(c) for c in found])


async def fire_event(request: web.Request) -> web.Response:
    page = _page(request)
    body = await _body(request, {"customer_id", "kind"})
    kind = body.get("kind")
    if kind not in shop.EVENT_TYPES:
        raise PageError(f'"kind" must be one of {sorted(shop.EVENT_TYPES)}')
    customer_id = _text(body.get("customer_id"), "customer_id", 64)
    app = page.bot()
    sessions = app.followups.sessions
    customer = await shop.find_customer(sessions, customer_id)
    if customer is None:
        raise PageError(f"no customer with ID {customer_id!r}", "no_customer")
    now = page.clock.now()
    if kind == "created":
        order_no = shop.new_order_no(now.astimezone(page.zone))
    else:
        order = await shop.latest_order(sessions, customer)
        if order is None:
            raise PageError("this customer has no order yet", "no_order")
        order_no = order.order_no
    result = await app.events.ingest([shop.shop_event(kind, customer, order_no, now)])
    if not result.ok:
        raise PageError(f"the bot refused the event: {result.errors}")
    kind_name, who = shop.EVENT_TYPES[kind], shop.customer_json(customer)
    return json_response({"ok": True, "type": kind_name, "order_no": order_no, "customer": who})


async def clock(request: web.Request) -> web.Response:
    return json_response(_page(request).clock_json())


async def advance_clock(request: web.Request) -> web.Response:
    page = _page(request)
    body = await _body(request, {"minutes"})
    minutes = _int(body.get("minutes"), "minutes", 1, MAX_ADVANCE_MINUTES)
    app = page.bot()
    page.clock.advance_minutes(minutes)
    # The engines' next wake-up was set on the old clock: have them look at their rows now.
    app.followups.kick()
    app.care.kick()
    return json_response(page.clock_json())


async def outbox(request: web.Request) -> web.Response:
    deliveries = list(_page(request).emulator.outbox.values())
    keys = ("customer_id", "to", "rule", "order_no", "text", "sent_at")
    return json_response([{k: d.get(k) for k in keys} for d in reversed(deliveries)])
