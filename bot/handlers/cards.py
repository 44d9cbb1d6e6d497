"""/card look-ups and everything a card's buttons do: orders, tags, notes, refresh."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message
from aiogram.utils.i18n import gettext as _
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.callbacks import CardAction, CardCb, TagCb
from bot.card_service import CardService, RenderedCard
from bot.handlers.common import current_locale, masks_contacts, release, replace, replace_markup
from bot.keyboards import orders_keyboard, pick_keyboard, tags_keyboard
from bot.views.card import display_name
from bot.views.format import clip, h
from bot.views.orders import render_orders_page, render_pick_list
from crm.lookup import MAX_QUERY_CHARS, QueryError
from storage import annotations
from storage.customers import PICK_LIMIT, customer_tags, orders_page
from storage.models import Customer

router = Router(name="cards")
ORDERS_PER_PAGE = 8


class NoteFlow(StatesGroup):
    text = State()


def search_hint() -> str:
    return _("Search by phone, nickname, name, order no. or customer id, e.g. /card 13800138000")


async def answer_lookup(message: Message, raw: str | None, session: AsyncSession, cards: CardService) -> None:
    mask = masks_contacts(message.chat)
    try:
        found, card = await cards.look_up(session, raw, locale=current_locale(), mask_contacts=mask)
    except QueryError as exc:
        if exc.reason == "too_long":
            await message.answer(
                _("That query is too long ({limit} characters at most).").format(limit=MAX_QUERY_CHARS)
                + "\n"
                + search_hint()
            )
        else:
            await message.answer(_("Whom should I look up?") + "\n" + search_hint())
        return
    await release(session)
    if not found:
        await message.answer(
            _("No customer matches “{query}”.").format(query=h(clip(" ".join((raw or "").split()), 40)))
            + "\n"
            + search_hint()
        )
        return
    if len(found) > 1:
        await message.answer(
            render_pick_list(raw or "", len(found), more=len(found) >= PICK_LIMIT),
            reply_markup=pick_keyboard(found, mask_contacts=mask),
        )
        return
    assert card is not None
    await message.answer(card.text, reply_markup=card.keyboard)


@router.message(Command("card"))
async def card_command(
    message: Message, command: CommandObject, session: AsyncSession, cards: CardService
) -> None:
    await answer_lookup(message, command.args, session, cards)


async def render_for_press(
    query: CallbackQuery, cards: CardService, session: AsyncSession, customer_pk: int
) -> RenderedCard | None:
    """The card for the chat the button was pressed in (masked in groups)."""
    assert query.message is not None
    return await cards.render(
        session, customer_pk, locale=current_locale(), mask_contacts=masks_contacts(query.message.chat)
    )


@router.callback_query(CardCb.filter(F.action.in_({CardAction.OPEN, CardAction.REFRESH})))
async def open_card(
    query: CallbackQuery, callback_data: CardCb, session: AsyncSession, cards: CardService
) -> None:
    await query.answer()
    assert query.message is not None
    card = await render_for_press(query, cards, session, callback_data.customer)
    await release(session)
    if card is None:
        await replace(query, _("This customer no longer exists."), None)
        return
    await replace(query, card.text, card.keyboard)


@router.callback_query(CardCb.filter(F.action == CardAction.ORDERS))
async def show_orders(
    query: CallbackQuery, callback_data: CardCb, session: AsyncSession, cards: CardService
) -> None:
    await query.answer()
    customer = await session.get(Customer, callback_data.customer)
    if customer is None:
        await replace(query, _("This customer no longer exists."), None)
        return
    page = callback_data.page
    orders, total = await orders_page(
        session=session, customer_pk=callback_data.customer, page=page, per_page=ORDERS_PER_PAGE
    )
    pages = max(1, -(-total // ORDERS_PER_PAGE))
    if page >= pages:  # a stale button after orders changed: show the last page there is
        page = pages - 1
        orders, total = await orders_page(
            session=session, customer_pk=callback_data.customer, page=page, per_page=ORDERS_PER_PAGE
        )
    await release(session)
    text = render_orders_page(customer, orders, page=page, pages=pages, total=total, zone=cards.settings.zone)
    await replace(query, text, orders_keyboard(callback_data.customer, page=page, pages=pages))


@router.callback_query(CardCb.filter(F.action == CardAction.TAGS))
async def show_tags(
    query: CallbackQuery, callback_data: CardCb, session: AsyncSession, cards: CardService
) -> None:
    await query.answer(_("Tap a tag to set or clear it."))
    current = await customer_tags(session=session, customer_pk=callback_data.customer)
    await release(session)
    await replace_markup(
        query, tags_keyboard(callback_data.customer, cards.palette, current, current_locale())
    )


@router.callback_query(TagCb.filter())
async def toggle_tag(
    query: CallbackQuery, callback_data: TagCb, session: AsyncSession, cards: CardService
) -> None:
    if callback_data.tag not in cards.palette.keys:
        await query.answer(_("This tag is no longer in the palette."), show_alert=True)
        return
    await query.answer()
    if await session.get(Customer, callback_data.customer) is None:
        await replace(query, _("This customer no longer exists."), None)
        return
    await annotations.toggle_tag(
        session=session, customer_pk=callback_data.customer, tag=callback_data.tag, user_id=query.from_user.id
    )
    assert query.message is not None
    card = await render_for_press(query, cards, session, callback_data.customer)
    assert card is not None
    current = await customer_tags(session=session, customer_pk=callback_data.customer)
    await release(session)
    await replace(
        query, card.text, tags_keyboard(callback_data.customer, cards.palette, current, current_locale())
    )


@router.callback_query(CardCb.filter(F.action == CardAction.NOTE))
async def start_note(
    query: CallbackQuery, callback_data: CardCb, session: AsyncSession, state: FSMContext, bot: Bot
) -> None:
    customer = await session.get(Customer, callback_data.customer)  # one key look-up: quick
    if customer is None or query.message is None:
        await query.answer(_("This customer no longer exists."), show_alert=True)
        return
    await query.answer()
    await release(session)
    await state.set_state(NoteFlow.text)
    await state.update_data(customer=callback_data.customer)
    agent = f'<a href="tg://user?id={query.from_user.id}">{h(query.from_user.full_name)}</a>'
    await bot.send_message(
        query.message.chat.id,
        _("📝 {agent}, reply with the note for {customer}. /cancel stops.").format(
            agent=agent, customer=h(display_name(customer))
        ),
        reply_markup=ForceReply(selective=True, input_field_placeholder=_("Note text")),
    )


@router.message(NoteFlow.text, F.text, ~F.text.startswith("/"))
async def save_note(message: Message, session: AsyncSession, state: FSMContext) -> None:
    data = await state.get_data()
    await state.clear()
    assert message.from_user is not None and message.text is not None
    note = await annotations.add_note(
        session=session,
        customer_pk=int(data["customer"]),
        author_id=message.from_user.id,
        author_name=message.from_user.full_name,
        text=message.text,
    )
    if note is None:
        await message.answer(_("This customer no longer exists; the note was not saved."))
        return
    customer = await session.get(Customer, note.customer_pk)
    name = display_name(customer) if customer else ""
    await message.answer(_("✅ Note saved for {customer}.").format(customer=h(name)))


@router.message(NoteFlow.text, ~F.text)
async def note_needs_text(message: Message) -> None:
    await message.answer(_("Please send the note as text, or /cancel."))


@router.message(StateFilter(None), F.chat.type == "private", F.text, ~F.text.startswith("/"))
async def private_lookup(message: Message, session: AsyncSession, cards: CardService) -> None:
    await answer_lookup(message, message.text, session, cards)
