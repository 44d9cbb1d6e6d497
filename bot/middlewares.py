"""Per-update context: a database session, who is acting and where, and the access rule."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User
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
    """Loads the bound team chat and the agent; a person seen in a bound group is a team member."""

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
        if team_chat is not None and user is not None and not user.is_bot and _stale(agent, chat):
            agent = await team.record_agent(
                session=session,
                user_id=user.id,
                display_name=user.full_name,
                username=user.username,
                chat_id=team_chat.chat_id,
            )
            directory.remember_agent(agent)
        data["team_chat"] = team_chat
        data["agent"] = agent
        data["is_admin"] = user is not None and user.id in settings.admin_ids
        return await handler(event, data)


def _stale(agent: Agent | None, chat: Chat | None) -> bool:
    if agent is None or agent.verified_at is None or chat is None:
        return True
    return agent.last_seen_chat != chat.id or datetime.now(UTC) - agent.verified_at > AGENT_REFRESH


async def _still_member(
    bot: Bot, session: AsyncSession, directory: TeamDirectory, user: User, agent: Agent | None
) -> bool:
    """Private chats: trust a recent sighting, else ask Telegram about each bound group."""
    if agent is not None and agent.verified_at and datetime.now(UTC) - agent.verified_at < MEMBERSHIP_TTL:
        return True
    for chat_id in await team.active_chat_ids(session=session):
        try:
            member = await bot.get_chat_member(chat_id=chat_id, user_id=user.id)
        except TelegramAPIError:
            log.warning("membership check failed for chat %s", chat_id)
            continue
        if member.status in MEMBER_STATUSES:
            found = await team.record_agent(
                session=session,
                user_id=user.id,
                display_name=user.full_name,
                username=user.username,
                chat_id=chat_id,
            )
            directory.remember_agent(found)
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
        else:
            allowed = data["team_chat"] is not None
            reason = _(
                "This group is not bound to Touchpoint yet. A team lead listed in ADMIN_IDS sends /bind here."
            )
        if allowed:
            return await handler(event, data)
        await _refuse(event, reason)
        return None


async def _refuse(event: TelegramObject, reason: str) -> None:
    if isinstance(event, CallbackQuery):
        await event.answer(reason, show_alert=True)
    elif isinstance(event, Message) and (event.chat.type == "private" or _is_command(event)):
        # In groups only commands get an answer: the bot must not talk over every message.
        await event.answer(reason)


def _is_command(message: Message) -> bool:
    return bool(message.text and message.text.startswith("/"))
