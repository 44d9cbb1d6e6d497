"""In-memory world of the Bot API emulator: bots, chats, members, messages, updates and waits.

This module knows nothing about HTTP. Bot API semantics live in :mod:`sandbox.emulator_methods`, the
test-facing control surface in :mod:`sandbox.emulator_control`; both drive the :class:`Emulator` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.telegram_html import Entity, utf16_len

if TYPE_CHECKING:
    from sandbox.emulator_limits import FaultInjector, LimitConfig, RateLimiter
    from sandbox.emulator_media import StoredFile

Json = dict[str, Any]


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): what the emulator hands out and
    keeps. Ten times cheaper than copy.deepcopy, which was a sixth of the emulator's time."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]{20,}$")
CHAT_TYPES = frozenset({"private", "group", "supergroup"})
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "left", "kicked"})
ADMIN_STATUSES = frozenset({"creator", "administrator"})
# Update types a bot gets only when it asks for them explicitly in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_BOT_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")


class ApiError(Exception):
    """A Bot API failure, rendered as ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def forbidden(description: str) -> ApiError:
    return ApiError(403, f"Forbidden: {description}")


class ControlError(Exception):
    """A malformed or impossible control-API request (always HTTP 400 with a readable message)."""


def find_bot_commands(text: str) -> list[Entity]:
    """bot_command entities as Telegram detects them in user messages (offsets in UTF-16 units)."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
        for m in _BOT_COMMAND_RE.finditer(text)
    ]


def update_type(update: Json) -> str:
    return next(key for key in update if key != "update_id")


class Signal:
    """Broadcast wake-up: waiters re-check their own condition whenever any state changes."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None  # created lazily so it binds to the running loop

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Wait until ``predicate()`` holds; False if ``seconds`` pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, seconds)
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            # asyncio.timeout, not wait_for: no task per wake-up (every change wakes every waiter).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()
        return True


@dataclass
class Member:
    user: Json
    status: str


@dataclass
class StoredMessage:
    message: Json
    bot_id: int | None  # the bot that sent it; None for messages written by users
    edit_count: int = 0
    deleted: bool = False

    @property
    def message_id(self) -> int:
        return int(self.message["message_id"])

    @property
    def thread_id(self) -> int | None:
        return self.message.get("message_thread_id")

    def snapshot(self) -> Json:
        return {**json_copy(self.message), "edit_count": self.edit_count, "deleted": self.deleted}


@dataclass
class Chat:
    info: Json
    members: dict[int, Member] = field(default_factory=dict)
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    menu_button: Json | None = None
    pinned_message_id: int | None = None

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def type(self) -> str:
        return str(self.info["type"])

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    @property
    def is_forum(self) -> bool:
        return bool(self.info.get("is_forum"))

    def live_message(self, message_id: int) -> StoredMessage | None:
        stored = self.messages.get(message_id)
        return None if stored is None or stored.deleted else stored


@dataclass
class CallbackQuery:
    id: str
    bot_id: int
    chat_id: int
    message_id: int
    user: Json
    data: str
    created_at: float
    answer: Json | None = None


@dataclass
class Webhook:
    url: str
    secret_token: str = ""
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class WebhookBalancer:
    """A reverse proxy in front of bot replicas: round-robin, passive health checks (nginx-like).

    A backend that refuses the connection or times out is marked down for ``fail_timeout`` seconds
    (nginx's max_fails=1) and the request goes on to the next one.
    """

    urls: list[str]
    timeout: float = 10.0
    fail_timeout: float = 1.0
    cursor: int = 0
    down_until: dict[str, float] = field(default_factory=dict)

    def route(self, now: float) -> list[str]:
        """The order to try backends in for one request: the next in turn first, those marked down last."""
        if not self.urls:
            return []
        start = self.cursor % len(self.urls)
        self.cursor += 1
        rotated = self.urls[start:] + self.urls[:start]
        return sorted(rotated, key=lambda url: self.down_until.get(url, 0.0) > now)  # stable

    def describe(self) -> Json:
        return {"urls": list(self.urls), "timeout": self.timeout, "fail_timeout": self.fail_timeout}


@dataclass
class BackendStats:
    attempts: int = 0
    ok: int = 0  # answered 2xx
    failures: int = 0  # refused, timed out, dropped or answered non-2xx
    last_error: str | None = None


SENT_UPDATES_KEPT = 20_000  # delivered updates remembered for /control/webhook/redeliver


@dataclass
class DeliveryLog:
    """What webhook delivery did, for tests: per backend URL and per update_id."""

    backends: dict[str, BackendStats] = field(default_factory=dict)
    delivered: Counter[int] = field(default_factory=Counter)  # update_id → deliveries answered 2xx
    sent: dict[int, Json] = field(default_factory=dict)  # recent delivered updates, oldest first
    in_flight: int = 0
    peak_in_flight: int = 0

    def backend(self, url: str) -> BackendStats:
        stats = self.backends.get(url)
        if stats is None:
            stats = self.backends[url] = BackendStats()
        return stats

    def record_success(self, update: Json) -> None:
        update_id = int(update["update_id"])
        self.delivered[update_id] += 1
        self.sent.pop(update_id, None)
        self.sent[update_id] = update
        if len(self.sent) > SENT_UPDATES_KEPT:
            del self.sent[next(iter(self.sent))]


@dataclass
class Bot:
    id: int
    token: str
    user: Json
    # Not yet confirmed (polling) or delivered (webhook), by update_id; ids only grow, so the dict is sorted.
    updates: dict[int, Json] = field(default_factory=dict)
    max_fetched_update_id: int = 0
    allowed_updates: list[str] = field(default_factory=list)
    webhook: Webhook | None = None
    balancer: WebhookBalancer | None = None  # None: the emulator-wide one, if any
    deliveries: DeliveryLog = field(default_factory=DeliveryLog)
    poll_generation: int = 0
    detached: bool = False  # set by reset so in-flight long polls of the old world return
    commands: dict[tuple[str, str], list[Json]] = field(default_factory=dict)
    profile: dict[tuple[str, str], str] = field(default_factory=dict)
    default_menu_button: Json | None = None

    def wants(self, kind: str) -> bool:
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in OPT_IN_UPDATES

    def prune_unwanted(self) -> None:
        self.updates = {uid: u for uid, u in self.updates.items() if self.wants(update_type(u))}

    def add_update(self, update: Json) -> None:
        self.updates[int(update["update_id"])] = update


WebhookWorker = Callable[["Emulator", Bot], Coroutine[Any, Any, None]]


class Emulator:
    """The whole simulated Telegram: shared chats and users, one :class:`Bot` per distinct token."""

    def __init__(
        self,
        *,
        bot_username: str = "touchpoint_bot",
        bot_first_name: str = "Touchpoint",
        enforce_limits: bool = False,
        limits: LimitConfig | None = None,
        privacy_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
        # Telegram keeps re-delivering a failed update for a long while (it holds updates 24 hours):
        # 60 attempts, backing off from 0.2 s to at most 5 s between them, is about 4 minutes.
        webhook_attempts: int = 60,
        webhook_retry_delay: float = 0.2,
        webhook_retry_max_delay: float = 5.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        from sandbox.emulator_limits import FaultInjector, LimitConfig, RateLimiter

        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.privacy_mode = privacy_mode
        self.clock = clock
        self.webhook_attempts = webhook_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_retry_max_delay = webhook_retry_max_delay
        self.webhook_timeout = webhook_timeout  # per delivery attempt to the webhook URL itself
        self.webhook_worker: WebhookWorker | None = None  # installed by build_app
        self._enforce_by_default = enforce_limits
        self.limiter: RateLimiter = RateLimiter(limits or LimitConfig(), enforce_limits, clock)
        self.faults: FaultInjector = FaultInjector()
        self.signal = Signal()
        self.closing = False
        self._init_world()

    def _init_world(self) -> None:
        self.bots: dict[int, Bot] = {}
        self.chats: dict[int, Chat] = {}
        self.users: dict[int, Json] = {}
        self.callback_queries: dict[str, CallbackQuery] = {}
        self.files: dict[str, StoredFile] = {}
        self.unclaimed_updates: list[Json] = []  # arrived before any bot connected
        self.default_balancer: WebhookBalancer | None = None  # for bots without their own
        self.calls: list[Json] = []
        # The shop side in the sandbox: care messages the bot delivered (its webhook channel points here).
        self.outbox: dict[str, Json] = {}
        self.method_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.too_many_requests = 0
        self._update_ids = itertools.count(1)
        self._call_seq = itertools.count(1)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A process-unique number for file ids, callback query ids and the like."""
        return next(self._ids)

    # ----------------------------------------------------------------- lifecycle

    def reset(self) -> None:
        for bot in self.bots.values():
            bot.detached = True
            self.stop_webhook(bot)
        self._init_world()
        self.faults.clear()
        self.limiter.reset(self._enforce_by_default)
        self.signal.fire()

    def close(self) -> None:
        """Release long polls and webhook workers so the server can shut down promptly."""
        self.closing = True
        for bot in self.bots.values():
            self.stop_webhook(bot)
        self.signal.fire()

    def start_webhook(self, bot: Bot) -> None:
        if bot.webhook is None or self.webhook_worker is None or self.closing:
            return
        bot.webhook.task = asyncio.get_running_loop().create_task(self.webhook_worker(self, bot))

    def stop_webhook(self, bot: Bot) -> None:
        if bot.webhook is not None and bot.webhook.task is not None:
            bot.webhook.task.cancel()
            bot.webhook.task = None

    # ----------------------------------------------------------------- bots

    def bot_for_token(self, token: str) -> Bot:
        """The bot a token belongs to, registering it on first use; 401 for malformed or clashing tokens."""
        match = TOKEN_RE.match(token)
        if match is None:
            raise ApiError(401, "Unauthorized")
        bot_id = int(match.group(1))
        bot = self.bots.get(bot_id)
        if bot is None:
            user = {
                "id": bot_id,
                "is_bot": True,
                "first_name": self.bot_first_name,
                "username": self.bot_username,
            }
            bot = Bot(id=bot_id, token=token, user=user)
            self.bots[bot_id] = bot
            for update in json_copy(self.unclaimed_updates):
                bot.add_update(update)
            self.unclaimed_updates.clear()
        elif bot.token != token:
            raise ApiError(401, "Unauthorized")
        return bot

    def balancer_for(self, bot: Bot) -> WebhookBalancer | None:
        """The proxy in front of the bot's webhook address; None (or no urls): deliver to the URL itself."""
        balancer = bot.balancer if bot.balancer is not None else self.default_balancer
        return balancer if balancer is not None and balancer.urls else None

    def bot_status(self, bot: Bot, chat: Chat) -> str:
        member = chat.members.get(bot.id)
        return member.status if member else "member"

    # ----------------------------------------------------------------- chats and users

    def remember_user(self, user: Json) -> Json:
        self.users[int(user["id"])] = user
        return user

    def create_chat(
        self,
        chat_id: int,
        chat_type: str,
        *,
        title: str | None = None,
        username: str | None = None,
        is_forum: bool = False,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> Json:
        if chat_type not in CHAT_TYPES:
            raise ControlError(f"chat type must be one of {sorted(CHAT_TYPES)}, got {chat_type!r}")
        if (chat_type == "private") != (chat_id > 0):
            raise ControlError("private chats need a positive id (the user's id); groups a negative one")
        if is_forum and chat_type != "supergroup":
            raise ControlError("only supergroups can be forums")
        info: Json = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            known = self.users.get(chat_id, {})
            info["first_name"] = first_name or known.get("first_name") or f"User {chat_id}"
            for key, value in (("last_name", last_name), ("username", username)):
                if value or known.get(key):
                    info[key] = value or known[key]
        else:
            info["title"] = title or f"Group {abs(chat_id)}"
            if username:
                info["username"] = username
            if is_forum:
                info["is_forum"] = True
        chat = self.chats.get(chat_id)
        if chat is None:
            self.chats[chat_id] = Chat(info=info)
        else:
            chat.info = info
        return dict(info)

    def control_chat(self, chat_id: int) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ControlError(f"chat {chat_id} does not exist; create it with POST /control/chats")
        return chat

    def set_member(self, chat_id: int, user: Json, status: str) -> Json:
        if status not in MEMBER_STATUSES:
            raise ControlError(f"status must be one of {sorted(MEMBER_STATUSES)}, got {status!r}")
        chat = self.control_chat(chat_id)
        bot = self.bots.get(int(user["id"]))
        user = bot.user if bot else self.remember_user(user)
        chat.members[int(user["id"])] = Member(user=user, status=status)
        self.signal.fire()
        return {"chat_id": chat_id, "user": user, "status": status}

    def _private_chat_for(self, user: Json) -> Chat:
        info = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        info.update({key: user[key] for key in ("last_name", "username") if user.get(key)})
        chat = Chat(info=info)
        self.chats[chat.id] = chat
        return chat

    def _join_if_needed(self, chat: Chat, user: Json) -> None:
        if not chat.is_group:
            return
        member = chat.members.get(int(user["id"]))
        if member is not None and member.status == "kicked":
            raise ControlError(f"user {user['id']} is banned (kicked) in chat {chat.id}")
        if member is None or member.status == "left":
            chat.members[int(user["id"])] = Member(user=user, status="member")

    # ----------------------------------------------------------------- messages

    def add_message(
        self,
        chat: Chat,
        sender: Json,
        content: Json,
        *,
        bot_id: int | None,
        thread_id: int | None = None,
        reply_to: StoredMessage | None = None,
        reply_markup: Json | None = None,
    ) -> StoredMessage:
        """Store a message under the chat's next id (user and bot messages share the counter)."""
        message: Json = {"message_id": chat.next_message_id, "from": sender, "chat": dict(chat.info)}
        chat.next_message_id += 1
        if thread_id:
            message["message_thread_id"] = thread_id
            if chat.is_forum:
                message["is_topic_message"] = True
        message["date"] = int(time.time())
        if reply_to is not None:
            replied = json_copy(reply_to.message)
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update({key: value for key, value in content.items() if value not in (None, [], "")})
        if reply_markup:
            message["reply_markup"] = reply_markup
        stored = StoredMessage(message=message, bot_id=bot_id)
        chat.messages[stored.message_id] = stored
        self.signal.fire()
        return stored

    def post_user_message(
        self,
        chat_id: int,
        user: Json,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        entities: list[Entity] | None = None,
        token: str | None = None,
    ) -> tuple[Json, int]:
        """A user writes ``text``; every bot in the chat (or the one for ``token``) gets the update."""
        user = self.remember_user(user)
        chat = self.chats.get(chat_id)
        if chat is None and chat_id == user["id"]:
            chat = self._private_chat_for(user)
        if chat is None:
            raise ControlError(f"chat {chat_id} does not exist; create it with POST /control/chats")
        if chat.type == "private" and chat.id != user["id"]:
            raise ControlError(f"only user {chat.id} can write in private chat {chat.id}")
        self._join_if_needed(chat, user)
        reply_to = None
        if reply_to_message_id:
            reply_to = chat.live_message(reply_to_message_id)
            if reply_to is None:
                raise ControlError(f"message {reply_to_message_id} to reply to not found in chat {chat_id}")
            thread_id = thread_id or reply_to.thread_id
        content = {"text": text, "entities": find_bot_commands(text) if entities is None else entities}
        stored = self.add_message(chat, user, content, bot_id=None, thread_id=thread_id, reply_to=reply_to)
        targets = self._recipients(chat, stored, token)
        update_id = self.enqueue({"message": stored.message}, targets)
        return json_copy(stored.message), update_id

    def _recipients(self, chat: Chat, stored: StoredMessage, token: str | None) -> list[Bot] | None:
        """Bots that receive a user message; None while no bot has connected yet."""
        if token is not None:
            try:
                return [self.bot_for_token(token)]
            except ApiError:
                raise ControlError(f"malformed bot token {token!r}") from None
        if not self.bots:
            return None
        return [
            bot
            for bot in self.bots.values()
            if self.bot_status(bot, chat) not in ("left", "kicked") and self._bot_sees(bot, chat, stored)
        ]

    def _bot_sees(self, bot: Bot, chat: Chat, stored: StoredMessage) -> bool:
        """Privacy mode: in groups a non-admin bot only sees commands, replies to it and mentions."""
        if not self.privacy_mode or not chat.is_group or self.bot_status(bot, chat) in ADMIN_STATUSES:
            return True
        text = str(stored.message.get("text", ""))
        username = f"@{bot.user['username']}"
        replied = stored.message.get("reply_to_message", {})
        if replied.get("from", {}).get("id") == bot.id or username.lower() in text.lower():
            return True
        command = _BOT_COMMAND_RE.match(text)
        return command is not None and ("@" not in command.group() or command.group().endswith(username))

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        user: Json,
        *,
        data: str | None = None,
        button_text: str | None = None,
    ) -> tuple[str, int]:
        """A user presses an inline button; the bot that sent the message gets a callback_query."""
        user = self.remember_user(user)
        chat = self.control_chat(chat_id)
        stored = chat.live_message(message_id)
        if stored is None:
            raise ControlError(f"message {message_id} not found in chat {chat_id}")
        buttons = [
            b for row in stored.message.get("reply_markup", {}).get("inline_keyboard", []) for b in row
        ]
        if data is not None:
            matches = [b for b in buttons if b.get("callback_data") == data]
        else:
            matches = [b for b in buttons if b.get("text") == button_text and "callback_data" in b]
        if not matches:
            wanted = f"callback_data {data!r}" if data is not None else f"text {button_text!r}"
            offered = [{k: v for k, v in b.items() if k in ("text", "callback_data")} for b in buttons]
            raise ControlError(
                f"message {message_id} has no callback button with {wanted}; buttons: {offered}"
            )
        bot = self.bots.get(stored.bot_id) if stored.bot_id is not None else None
        if bot is None:
            raise ControlError(f"message {message_id} was not sent by a connected bot")
        # No auto-join here: in a public group, people who never joined can press buttons.
        query = CallbackQuery(
            id=str(4_100_000_000_000_000_000 + self.next_id()),
            bot_id=bot.id,
            chat_id=chat_id,
            message_id=message_id,
            user=user,
            data=str(matches[0]["callback_data"]),
            created_at=self.clock(),
        )
        self.callback_queries[query.id] = query
        body = {
            "id": query.id,
            "from": user,
            "message": stored.message,
            "chat_instance": str((chat_id * 2654435761 + bot.id) % 2**63),
            "data": query.data,
        }
        return query.id, self.enqueue({"callback_query": body}, [bot])

    # ----------------------------------------------------------------- updates

    def enqueue(self, body: Json, targets: list[Bot] | None) -> int:
        """Queue an update for ``targets`` (None: keep it for the first bot that connects)."""
        update = {"update_id": next(self._update_ids), **json_copy(body)}
        if targets is None:
            self.unclaimed_updates.append(update)
        for bot in targets or []:
            if bot.wants(update_type(update)):
                bot.add_update(json_copy(update))
        self.signal.fire()
        return int(update["update_id"])

    def pending_updates(self, token: str | None) -> Json:
        if token is not None:
            try:
                bots = [self.bot_for_token(token)]
            except ApiError:
                raise ControlError(f"malformed bot token {token!r}") from None
        else:
            bots = list(self.bots.values())
        pending = sum(len(bot.updates) for bot in bots)
        unfetched = sum(1 for bot in bots for uid in bot.updates if uid > bot.max_fetched_update_id)
        unclaimed = len(self.unclaimed_updates) if token is None else 0
        return {"pending": pending + unclaimed, "unfetched": unfetched + unclaimed, "unclaimed": unclaimed}

    # ----------------------------------------------------------------- waits for tests

    async def wait_bot_messages(
        self, chat_id: int, *, after: int, count: int, seconds: float, thread: int | None = None
    ) -> tuple[list[Json], bool]:
        chat = self.control_chat(chat_id)

        def found() -> list[StoredMessage]:
            # Newest first, stopping at `after`: a wake-up costs the new messages, not the chat's history.
            fresh = []
            for m in reversed(chat.messages.values()):
                if m.message_id <= after:
                    break
                if m.bot_id is not None and (thread is None or m.thread_id == thread):
                    fresh.append(m)
            fresh.reverse()
            return fresh

        done = await self.signal.wait_until(lambda: len(found()) >= count, seconds)
        return [m.snapshot() for m in found()], not done

    async def wait_edit(
        self, chat_id: int, message_id: int, after_edit_count: int, seconds: float
    ) -> tuple[Json, bool]:
        chat = self.control_chat(chat_id)
        stored = chat.messages.get(message_id)
        if stored is None:
            raise ControlError(f"message {message_id} not found in chat {chat_id}")
        done = await self.signal.wait_until(lambda: stored.edit_count > after_edit_count, seconds)
        return stored.snapshot(), not done

    async def wait_callback_answers(self, query_id: str | None, seconds: float) -> tuple[list[Json], bool]:
        if query_id is not None and query_id not in self.callback_queries:
            raise ControlError(f"unknown callback_query_id {query_id!r}")

        def answers() -> list[Json]:
            queries = [self.callback_queries[query_id]] if query_id else self.callback_queries.values()
            return [{"callback_query_id": q.id, **q.answer} for q in queries if q.answer is not None]

        done = await self.signal.wait_until(lambda: bool(answers()), seconds) if query_id else True
        return answers(), not done

    # ----------------------------------------------------------------- bookkeeping

    def begin_call(self, method: str, params: dict[str, str]) -> Json:
        """Log a call as it arrives (``ok`` stays None until it finishes, e.g. during a long poll)."""
        chat_id: int | str | None = params.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id) if chat_id is not None else None
        self.method_counts[method] += 1
        entry: Json = {
            "seq": next(self._call_seq),
            "method": method,
            "time": self.clock(),
            "chat_id": chat_id,
            "ok": None,
            "error_code": None,
            "description": None,
            "params": params,
        }
        self.calls.append(entry)
        return entry

    def finish_call(self, entry: Json, error: ApiError | None) -> None:
        entry.update(ok=error is None, duration=round(self.clock() - entry["time"], 3))
        if error is not None:
            entry.update(error_code=error.error_code, description=error.description)
            self.error_counts[f"{entry['method']}:{error.error_code}"] += 1
            self.too_many_requests += error.error_code == 429

    def log_call(self, method: str, params: dict[str, str], error: ApiError | None) -> None:
        self.finish_call(self.begin_call(method, params), error)

    def stats(self) -> Json:
        messages_per_chat = {  # messages sent by bots, which is what the flood limits count
            str(chat.id): sum(1 for m in chat.messages.values() if m.bot_id is not None)
            for chat in self.chats.values()
        }
        return {
            "methods": dict(self.method_counts),
            "errors": dict(self.error_counts),
            "too_many_requests": self.too_many_requests,
            "messages_per_chat": messages_per_chat,
            "pending_updates": {str(bot.id): len(bot.updates) for bot in self.bots.values()},
            "unclaimed_updates": len(self.unclaimed_updates),
            "limits": self.limiter.describe(),
        }
