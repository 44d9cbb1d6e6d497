"""Bound team chats and the agents seen in them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Agent, TeamChat

T = TypeVar("T")


async def _commit_or_retry(session: AsyncSession, retry: Callable[[], Awaitable[T]]) -> T | None:
    """Two updates creating the same row at once: the loser rolls back and runs again as an update."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return await retry()
    return None


async def bind_chat(*, session: AsyncSession, chat_id: int, title: str, bound_by: int) -> bool:
    """Bind (or re-activate) a team chat; returns False if it was already bound."""
    chat = await session.get(TeamChat, chat_id)
    if chat is not None and chat.active:
        return False
    if chat is None:
        chat = TeamChat(chat_id=chat_id, title=title, bound_by=bound_by, bound_at=datetime.now(UTC))
    chat.active, chat.title, chat.bound_by, chat.bound_at = True, title, bound_by, datetime.now(UTC)
    session.add(chat)
    again = await _commit_or_retry(
        session, lambda: bind_chat(session=session, chat_id=chat_id, title=title, bound_by=bound_by)
    )
    return True if again is None else again


async def unbind_chat(*, session: AsyncSession, chat_id: int) -> bool:
    chat = await session.get(TeamChat, chat_id)
    if chat is None or not chat.active:
        return False
    chat.active = False
    session.add(chat)
    await session.commit()
    return True


async def active_chat(*, session: AsyncSession, chat_id: int) -> TeamChat | None:
    chat = await session.get(TeamChat, chat_id)
    return chat if chat is not None and chat.active else None


async def active_chat_ids(*, session: AsyncSession) -> list[int]:
    return list((await session.exec(select(TeamChat.chat_id).where(TeamChat.active))).all())


async def get_agent(*, session: AsyncSession, user_id: int) -> Agent | None:
    return await session.get(Agent, user_id)


async def record_agent(
    *,
    session: AsyncSession,
    user_id: int,
    display_name: str,
    username: str | None,
    chat_id: int | None,
    language: str | None = None,
) -> Agent:
    """Remember a member of a bound chat (so their private chat with the bot is allowed)."""
    agent = await session.get(Agent, user_id)
    if agent is None:
        agent = Agent(user_id=user_id)
    agent.display_name, agent.username = display_name[:128], username
    agent.telegram_language = (language or "")[:16] or agent.telegram_language
    agent.last_seen_chat = chat_id if chat_id is not None else agent.last_seen_chat
    agent.verified_at = datetime.now(UTC)
    session.add(agent)
    again = await _commit_or_retry(
        session,
        lambda: record_agent(
            session=session,
            user_id=user_id,
            display_name=display_name,
            username=username,
            chat_id=chat_id,
            language=language,
        ),
    )
    return again or agent


async def set_agent_locale(
    *, session: AsyncSession, user_id: int, display_name: str, locale: str | None
) -> None:
    agent = await session.get(Agent, user_id) or Agent(user_id=user_id, display_name=display_name[:128])
    agent.locale = locale
    session.add(agent)
    await _commit_or_retry(
        session,
        lambda: set_agent_locale(session=session, user_id=user_id, display_name=display_name, locale=locale),
    )
