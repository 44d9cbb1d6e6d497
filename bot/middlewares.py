"""Per-update context: a database session, who is acting and where, and the access rule."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Chat, ChatMemberRestricted, Message, TelegramObject, Update, User
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.team_directory import TeamDirectory
from storage import team
from storage.models import Agent

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
# How long a private chat trusts that its agent is still in a team group before asking Telegram.
MEMBERSHIP_TTL = timedelta(hours=12)
AGENT_REFRESH = timedelta(hours=1)


class DbSessionMiddleware(BaseMiddleware):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.sessionmaker() as session:
            data["session"] = session
            return await handler(event, data)


class TeamContextMiddleware(BaseMiddleware):
    """Loads the bound team chat and the agent.

    Only a message in a bound group proves membership (sending one needs it); a button press does
    not, since anyone may press buttons in a public group they have not joined.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        session: AsyncSession = data["session"]
        settings: Settings = data["settings"]
        directory: TeamDirectory = data["team_directory"]
        chat: Chat | None = data.get("event_chat")
        user: User | None = data.get("event_from_user")
        team_chat = None
        if chat is not None and chat.type != "private":
            team_chat = await directory.chat(session, chat.id)
        agent = await directory.agent(session, user.id) if user else None
        sent_a_message = isinstance(event, Update) and event.message is not None
        if (
            team_chat is not None
            and user is not None
            and not user.is_bot
            and sent_a_message
            and _stale(agent, chat)
        ):
            agent = await _record(session, directory, user, team_chat.chat_id)
        data["team_chat"] = team_chat
        data["agent"] = agent
        data["is_admin"] = user is not None and user.id in settings.admin_ids
        return await handler(event, data)


def _stale(agent: Agent | None, chat: Chat | None) -> bool:
    if agent is None or agent.verified_at is None or chat is None:
        return True
    return agent.last_seen_chat != chat.id or datetime.now(UTC) - agent.verified_at > AGENT_REFRESH


async def _record(session: AsyncSession, directory: TeamDirectory, user: User, chat_id: int) -> Agent:
    agent = await team.record_agent(
        session=session,
        user_id=user.id,
        display_name=user.full_name,
        username=user.username,
        chat_id=chat_id,
        language=user.language_code,
    )
    directory.remember_agent(agent)
    return agent


async def _member_of(bot: Bot, chat_id: int, user_id: int) -> bool:
    try:
        member = await bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    except TelegramAPIError:
        log.warning("membership check failed for chat %s", chat_id)
        return False
    if isinstance(member, ChatMemberRestricted):
        return member.is_member  # restricted users may have left the group
    return member.status in MEMBER_STATUSES


async def _still_member(
    bot: Bot, session: AsyncSession, directory: TeamDirectory, user: User, agent: Agent | None
) -> bool:
    """Private chats: trust a recent sighting in a group that is still bound, else ask Telegram."""
    if (
        agent is not None
        and agent.verified_at
        and agent.last_seen_chat is not None
        and datetime.now(UTC) - agent.verified_at < MEMBERSHIP_TTL
        and await directory.chat(session, agent.last_seen_chat) is not None
    ):
        return True
    for chat_id in await team.active_chat_ids(session=session):
        if await _member_of(bot, chat_id, user.id):
            await _record(session, directory, user, chat_id)
            return True
    return False


async def _may_press_in_group(data: dict[str, Any], chat: Chat, user: User) -> bool:
    """A press in a bound group: team members only (a public group's visitors can press too)."""
    agent: Agent | None = data["agent"]
    if data["is_admin"] or (
        agent is not None and agent.last_seen_chat == chat.id and not _stale(agent, chat)
    ):
        return True
    if await _member_of(data["bot"], chat.id, user.id):
        await _record(data["session"], data["team_directory"], user, chat.id)
        return True
    return False


class AccessMiddleware(BaseMiddleware):
    """Only bound team chats and their members act. Handlers flagged `public` are open to all."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if get_flag(data, "public"):
            return await handler(event, data)
        chat: Chat | None = data.get("event_chat")
        user: User | None = data.get("event_from_user")
        if chat is None or user is None:
            return None
        if chat.type == "private":
            allowed = data["is_admin"] or await _still_member(
                data["bot"], data["session"], data["team_directory"], user, data["agent"]
            )
            reason = _(
                "Sorry, Touchpoint works only for members of a bound support team. "
                "Ask your team lead to add you to the team group, then try again."
            )
        elif data["team_chat"] is None:
            allowed = False
            reason = _(
                "This group is not bound to Touchpoint yet. A team lead listed in ADMIN_IDS sends /bind here."
            )
        else:
            allowed = not isinstance(event, CallbackQuery) or await _may_press_in_group(data, chat, user)
            reason = _("Only members of this team can use these buttons.")
        if allowed:
            return await handler(event, data)
        if not await _addressed_to_another_bot(event, data["bot"]):
            await _refuse(event, reason)
        return None


async def _addressed_to_another_bot(event: TelegramObject, bot: Bot) -> bool:
    if not isinstance(event, Message) or not _is_command(event):
        return False
    _command, _at, mention = (event.text or "").split()[0].partition("@")
    me = await bot.me()
    return bool(mention) and mention.lower() != (me.username or "").lower()


async def _refuse(event: TelegramObject, reason: str) -> None:
    if isinstance(event, CallbackQuery):
        await event.answer(reason, show_alert=True)
    elif isinstance(event, Message) and (event.chat.type == "private" or _is_command(event)):
        # In groups only commands get an answer: the bot must not talk over every message.
        await event.answer(reason)


def _is_command(message: Message) -> bool:
    return bool(message.text and message.text.startswith("/"))
