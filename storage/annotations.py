"""What agents add to a customer: intelligence tags and notes. Each function is one unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, CustomerTag, Note

NOTE_MAX_CHARS = 2000


async def toggle_tag(*, session: AsyncSession, customer_pk: int, tag: str, user_id: int) -> bool:
    """Set the tag if absent, clear it if present; returns whether it is now set."""
    existing = (
        await session.exec(
            select(CustomerTag).where(CustomerTag.customer_pk == customer_pk, CustomerTag.tag == tag)
        )
    ).first()
    if existing is not None:
        await session.exec(delete(CustomerTag).where(CustomerTag.id == existing.id))  # type: ignore[call-overload]
        await session.commit()
        return False
    session.add(CustomerTag(customer_pk=customer_pk, tag=tag, set_by=user_id, set_at=datetime.now(UTC)))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # a double tap set it a moment ago: it is set either way
    return True


async def add_note(
    *, session: AsyncSession, customer_pk: int, author_id: int, author_name: str, text: str
) -> Note | None:
    """Stores the note verbatim (rendering escapes it); None if the customer no longer exists."""
    if await session.get(Customer, customer_pk) is None:
        return None
    note = Note(
        customer_pk=customer_pk,
        author_id=author_id,
        author_name=author_name[:128],
        text=text[:NOTE_MAX_CHARS],
        created_at=datetime.now(UTC),
    )
    session.add(note)
    await session.commit()
    return note
