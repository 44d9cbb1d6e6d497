"""Follow-ups: start one from a card or with /follow, act on reminders, /timers, the scenario table."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import gettext as _
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.callbacks import CardAction, CardCb, FollowAction, FollowCb, ScenarioCb
from bot.card_service import CardService
from bot.clock import Clock
from bot.followup_engine import FollowUpEngine, redraw, still_open
from bot.handlers.common import current_locale, is_lead, masks_contacts, release, replace, replace_markup
from bot.keyboards import cancel_keyboard, list_keyboard, scenarios_keyboard
from bot.scenario_book import ScenarioBook
from bot.views.card import display_name
from bot.views.followups import (
    FollowUpContext,
    at_time,
    confirmation,
    outcome,
    render_list,
    render_table,
    suggested_reply,
    timers_header,
)
from bot.views.format import clip, h
from crm import followups as rules
from crm.followups import SNOOZE_CHOICES
from crm.lookup import QueryError, parse_query
from crm.scenarios import Scenario, ScenarioError, ScenarioTable, parse_minutes
from storage import followups, scenario_settings
from storage.customers import find_customers, latest_unpaid_order, order_pk_by_no
from storage.followups import Claimed, NewFollowUp
from storage.models import Agent, Customer, FollowUp, Order, TeamChat

router = Router(name="followups")
TIMERS_SHOWN = 15
ALERT_CHARS = 190  # Telegram shows at most 200 characters in a callback alert


def _ctx(clock: Clock, cards: CardService, table: ScenarioTable) -> FollowUpContext:
    return FollowUpContext(clock.now(), cards.settings.zone, table, current_locale())


def _button_label(row: Scenario, book: ScenarioBook) -> str:
    title = book.title(row, current_locale())
    if not row.has_timer:
        return "💬 " + title
    return f"⏱ {book.when(row)} · {title}"


@router.callback_query(CardCb.filter(F.action == CardAction.FOLLOW))
async def show_scenarios(
    query: CallbackQuery, callback_data: CardCb, session: AsyncSession, scenario_book: ScenarioBook
) -> None:
    await query.answer(_("Pick the situation; the reminder comes to you."))
    table = await scenario_book.current(session)
    unpaid = await latest_unpaid_order(session=session, customer_pk=callback_data.customer)
    await release(session)
    rows = [(row.key, _button_label(row, scenario_book)) for row in table.rows.values()]
    await replace_markup(query, scenarios_keyboard(callback_data.customer, rows, unpaid))


def _team_chat_for(chat_id: int, chat_type: str, agent: Agent | None) -> int | None:
    """Reminders go to the team group: this one, or from a private chat the agent's group."""
    if chat_type != "private":
        return chat_id
    return agent.last_seen_chat if agent is not None else None


async def _start(
    *,
    session: AsyncSession,
    engine: FollowUpEngine,
    clock: Clock,
    customer: Customer,
    row: Scenario,
    minutes: int | None,
    team_chat_id: int,
    user: User,
    order_pk: int | None,
    product: str | None = None,
) -> FollowUp:
    assert customer.id is not None
    now = clock.now()
    due, remind, carried = rules.plan(now, minutes, engine.hours.next_open)
    follow_up = await followups.create(
        session=session,
        item=NewFollowUp(
            customer_pk=customer.id,
            chat_id=team_chat_id,
            scenario=row.key,
            owner_id=user.id,
            owner_name=user.full_name,
            created_by=user.id,
            due_at=due,
            fire_at=remind,
            minutes=minutes,
            carried_over=carried,
            order_pk=order_pk,
            product=product,
        ),
        now=now,
    )
    if remind is not None:
        engine.wake_at(remind)
    return follow_up


async def _confirm(
    message: Message,
    session: AsyncSession,
    follow_up: FollowUp,
    customer: Customer,
    ctx: FollowUpContext,
    *,
    reply_to: int | None = None,
) -> None:
    order_no = None
    if follow_up.order_pk is not None:
        order = await session.get(Order, follow_up.order_pk)
        order_no = order.order_no if order else None
    await release(session)
    assert follow_up.id is not None
    sent = await message.answer(
        confirmation(follow_up, customer, ctx, order_no=order_no),
        reply_markup=cancel_keyboard(follow_up.id),
        reply_to_message_id=reply_to,
    )
    await followups.set_origin(
        session=session, follow_up_id=follow_up.id, chat_id=sent.chat.id, message_id=sent.message_id
    )


@router.callback_query(ScenarioCb.filter())
async def start_from_card(
    query: CallbackQuery,
    callback_data: ScenarioCb,
    session: AsyncSession,
    cards: CardService,
    clock: Clock,
    scenario_book: ScenarioBook,
    followup_engine: FollowUpEngine,
    agent: Agent | None,
) -> None:
    table = await scenario_book.current(session)
    row = table.get(callback_data.key)
    if row is None:
        await query.answer(_("This scenario is no longer in the table. Refresh the card."), show_alert=True)
        return
    ctx = _ctx(clock, cards, table)
    if not row.has_timer:
        await query.answer(clip(suggested_reply(row.key, ctx), ALERT_CHARS), show_alert=True)
        return
    customer = await session.get(Customer, callback_data.customer)
    message = query.message
    if customer is None or not isinstance(message, Message):
        await query.answer(_("This customer no longer exists."), show_alert=True)
        return
    team_chat_id = _team_chat_for(message.chat.id, message.chat.type, agent)
    if team_chat_id is None:
        await query.answer(
            _("Use this in the team group first, so I know where to remind you."), show_alert=True
        )
        return
    follow_up = await _start(
        session=session,
        engine=followup_engine,
        clock=clock,
        customer=customer,
        row=row,
        minutes=row.minutes,
        team_chat_id=team_chat_id,
        user=query.from_user,
        order_pk=callback_data.order or None,
    )
    when = at_time(follow_up.fire_at, ctx) if follow_up.fire_at else _("when restocked")
    await query.answer(_("⏱ Reminder: {when}").format(when=when))
    card = await cards.render(
        session, callback_data.customer, locale=current_locale(), mask_contacts=masks_contacts(message.chat)
    )
    if card is not None:  # the card now lists the follow-up, then the confirmation below it
        await replace(query, card.text, card.keyboard)
    await _confirm(message, session, follow_up, customer, ctx, reply_to=message.message_id)


def _scenario_keys(table: ScenarioTable) -> str:
    return _("Scenarios: {keys}").format(keys=", ".join(f"<code>{k}</code>" for k in table.keys))


def _unknown_scenario(key: str, table: ScenarioTable) -> str:
    return _("Unknown scenario “{key}”.").format(key=h(clip(key, 24))) + "\n" + _scenario_keys(table)


def _split_follow_args(args: str, table: ScenarioTable) -> tuple[str, str, str | None]:
    """'<query> <scenario> [minutes]' → (query, scenario key, minutes text); the query may have spaces."""
    words = args.split()
    minutes = None
    if len(words) >= 3 and re.fullmatch(r"[-+]?\d[\w.]*", words[-1]):
        minutes = words.pop()
    if len(words) < 2:
        raise ScenarioError("usage")
    key = words.pop().lower()
    return " ".join(words), key, minutes


@router.message(Command("follow"))
async def follow_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    cards: CardService,
    clock: Clock,
    scenario_book: ScenarioBook,
    followup_engine: FollowUpEngine,
    agent: Agent | None,
) -> None:
    table = await scenario_book.current(session)
    usage = _(
        "Usage: /follow &lt;customer&gt; &lt;scenario&gt; [minutes], e.g. /follow 13800138000 unpaid 20"
    )
    try:
        raw_query, key, minutes_text = _split_follow_args(command.args or "", table)
    except ScenarioError:
        await message.answer(usage + "\n" + _scenario_keys(table))
        return
    row = table.get(key)
    if row is None:
        await message.answer(_unknown_scenario(key, table))
        return
    minutes = row.minutes
    if minutes_text is not None:
        try:
            minutes = parse_minutes(minutes_text)
        except ScenarioError:
            await message.answer(_("Minutes must be a whole number from 1 to 1440 (24 hours)."))
            return
    ctx = _ctx(clock, cards, table)
    if not row.has_timer and minutes_text is None:
        await message.answer(
            _("The table sets no follow-up for “{title}”. Suggested reply: {reply}").format(
                title=h(scenario_book.title(row, ctx.locale)), reply=h(suggested_reply(row.key, ctx))
            )
        )
        return
    try:
        found = await find_customers(session=session, query=parse_query(raw_query))
    except QueryError:
        await message.answer(usage)
        return
    if len(found) != 1:
        text = (
            _("No customer matches “{query}”.") if not found else _("“{query}” matches several customers.")
        ).format(query=h(clip(raw_query, 40)))
        await message.answer(
            text + "\n" + _("Use a phone, order no. or customer id, or start it from the card.")
        )
        return
    team_chat_id = _team_chat_for(message.chat.id, message.chat.type, agent)
    if team_chat_id is None or message.from_user is None:
        await message.answer(_("Use this in the team group first, so I know where to remind you."))
        return
    order_pk = await order_pk_by_no(session=session, order_no=raw_query.strip()) or (
        await latest_unpaid_order(session=session, customer_pk=found[0].id or 0)
        if row.key == "unpaid"
        else None
    )
    follow_up = await _start(
        session=session,
        engine=followup_engine,
        clock=clock,
        customer=found[0],
        row=row,
        minutes=minutes,
        team_chat_id=team_chat_id,
        user=message.from_user,
        order_pk=order_pk,
    )
    await _confirm(message, session, follow_up, found[0], ctx)


# Acting on reminders ------------------------------------------------------------------------------


def _ids_on(message: Message) -> list[int]:
    """The follow-ups a message's buttons act on, in order (one for a reminder, several for a list)."""
    ids: list[int] = []
    for row in message.reply_markup.inline_keyboard if message.reply_markup else []:
        for button in row:
            if button.callback_data and button.callback_data.startswith(FollowCb.__prefix__ + ":"):
                fid = FollowCb.unpack(button.callback_data).id
                if fid not in ids:
                    ids.append(fid)
    return ids


async def _redraw(query: CallbackQuery, acted: FollowUp, items: list[Claimed], ctx: FollowUpContext) -> None:
    message = query.message
    assert isinstance(message, Message)
    head = message.html_text.split("\n")[0]
    if (message.chat.id, message.message_id) == (acted.origin_chat_id, acted.origin_message_id):
        # the confirmation: say what became of it
        markup = message.reply_markup if still_open(acted) else None
        await replace(query, head + "\n" + outcome(acted, ctx), markup)
        return
    text, markup = redraw(items, ctx, header=head)
    await replace(query, text, markup)


@router.callback_query(FollowCb.filter())
async def act_on_follow_up(
    query: CallbackQuery,
    callback_data: FollowCb,
    session: AsyncSession,
    cards: CardService,
    clock: Clock,
    scenario_book: ScenarioBook,
    followup_engine: FollowUpEngine,
) -> None:
    now, user, action = clock.now(), query.from_user, callback_data.action
    fid = callback_data.id
    if action in (FollowAction.DONE, FollowAction.CANCEL):
        result = await followups.close(
            session=session,
            follow_up_id=fid,
            done=action == FollowAction.DONE,
            actor_id=user.id,
            actor_name=user.full_name,
            now=now,
        )
    elif action == FollowAction.MINE:
        result = await followups.reassign(
            session=session,
            follow_up_id=fid,
            owner_id=user.id,
            owner_name=user.full_name,
            now=now,
            grace=followup_engine.grace,
        )
    else:
        minutes = SNOOZE_CHOICES[0] if action == FollowAction.SNOOZE_5 else SNOOZE_CHOICES[1]
        due, remind, _carried = rules.plan(now, minutes, followup_engine.hours.next_open)
        assert due is not None and remind is not None
        result = await followups.snooze(
            session=session,
            follow_up_id=fid,
            due_at=due,
            fire_at=remind,
            actor_id=user.id,
            actor_name=user.full_name,
            now=now,
        )
    if result.ok and result.follow_up is not None and result.follow_up.fire_at is not None:
        followup_engine.wake_at(result.follow_up.fire_at)
    table = await scenario_book.current(session)
    ctx = _ctx(clock, cards, table)
    if result.follow_up is None:
        await query.answer(_("This follow-up no longer exists."), show_alert=True)
        return
    if not result.ok:
        await query.answer(
            _("Already closed: {outcome}").format(outcome=outcome(result.follow_up, ctx)), show_alert=True
        )
    else:
        await query.answer(_notice(action, result.follow_up, ctx))
    message = query.message
    if not isinstance(message, Message):
        return
    ids = _ids_on(message) or [fid]
    items = await followups.load(session=session, ids=ids)
    await _redraw(query, result.follow_up, items, ctx)


def _notice(action: FollowAction, f: FollowUp, ctx: FollowUpContext) -> str:
    if action == FollowAction.DONE:
        return _("✅ Done")
    if action == FollowAction.CANCEL:
        return _("✖️ Cancelled")
    if action == FollowAction.MINE:
        return _("🙋 It's yours now")
    return _("💤 I'll remind you at {when}").format(when=at_time(f.fire_at, ctx))


# Overview -----------------------------------------------------------------------------------------


@router.message(Command("timers"))
async def list_timers(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    cards: CardService,
    clock: Clock,
    scenario_book: ScenarioBook,
) -> None:
    arg = (command.args or "").strip().lower()
    if arg not in ("", "all"):
        await message.answer(_("Usage: /timers (yours) or /timers all (the team's)"))
        return
    assert message.from_user is not None
    mine = arg != "all"
    chat_id = None if message.chat.type == "private" else message.chat.id
    table = await scenario_book.current(session)
    ctx = _ctx(clock, cards, table)
    items, total, overdue = await followups.open_in_chat(
        session=session,
        chat_id=chat_id,
        owner_id=message.from_user.id if mine else None,
        now=ctx.now,
        limit=TIMERS_SHOWN,
    )
    header = timers_header(total, len(items), mine=mine, overdue=overdue)
    if not items:
        await message.answer(header)
        return
    rows = [(n, c.follow_up.id or 0, display_name(c.customer)) for n, c in enumerate(items, 1)]
    await message.answer(render_list(items, ctx, header=header), reply_markup=list_keyboard(rows))


# The table ----------------------------------------------------------------------------------------


@router.message(Command("scenarios"))
async def show_table(
    message: Message, session: AsyncSession, cards: CardService, clock: Clock, scenario_book: ScenarioBook
) -> None:
    table = await scenario_book.current(session)
    await message.answer(render_table(table, _ctx(clock, cards, table)))


@router.message(Command("scenario"))
async def change_scenario(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    clock: Clock,
    scenario_book: ScenarioBook,
    is_admin: bool,
    team_chat: TeamChat | None,
) -> None:
    usage = _("Usage: /scenario set KEY minutes N (1–1440), or /scenario set KEY reply TEXT")
    assert message.from_user is not None
    if not is_lead(message.from_user, is_admin, team_chat):
        await message.answer(_("Only a team lead can change the scenario table."))
        return
    parts = (command.args or "").split(maxsplit=3)
    if len(parts) < 4 or parts[0].lower() != "set" or parts[2].lower() not in ("minutes", "reply"):
        await message.answer(usage)
        return
    _set, key, field, value = parts[0], parts[1].lower(), parts[2].lower(), parts[3].strip()
    table = await scenario_book.reload(session)
    row = table.get(key)
    if row is None:
        await message.answer(_unknown_scenario(key, table))
        return
    locale = current_locale()
    if field == "minutes":
        try:
            value = str(parse_minutes(value))
        except ScenarioError:
            await message.answer(_("Minutes must be a whole number from 1 to 1440 (24 hours)."))
            return
        old = str(row.minutes) if row.minutes is not None else None
    else:
        if len(value) > 500:
            await message.answer(_("A suggested reply is at most 500 characters."))
            return
        old = scenario_book.reply(row, locale)
    await scenario_settings.change(
        session=session,
        scenario=key,
        field=field,
        value=value,
        old_value=old,
        user_id=message.from_user.id,
        user_name=message.from_user.full_name,
        now=clock.now(),
    )
    table = await scenario_book.reload(session)
    changed = table.get(key)
    assert changed is not None
    await message.answer(
        _("✅ {title}: {when}\n💬 {reply}").format(
            title=h(scenario_book.title(changed, locale)),
            when=h(scenario_book.when(changed)),
            reply=h(scenario_book.reply(changed, locale)),
        )
    )
