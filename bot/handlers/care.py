"""The care queue in the group: Approve · Skip · Edit · Approve all of this rule today on a card,
call tasks, bad-review alerts, /queue, /optout, /route, /care auto."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message
from aiogram.utils.i18n import gettext as _
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.callbacks import CareAction, CareCb
from bot.care_engine import CareEngine
from bot.handlers.common import is_lead, release
from bot.keyboards import care_digest_keyboard, edit_confirm_keyboard
from bot.routes import KINDS
from bot.views.card import display_name
from bot.views.care import outcome, queue_header, render_digest, rule_title, sent_again
from bot.views.format import h
from crm.care_queue import CareState
from crm.care_rules import RULE_KEYS
from crm.lookup import QueryError, parse_query
from storage import care
from storage.customers import find_customers
from storage.models import CareMessage, TeamChat

router = Router(name="care")
MAX_TEXT = 1000


class EditFlow(StatesGroup):
    text = State()
    confirm = State()


def _already(m: CareMessage | None, engine: CareEngine) -> str:
    if m is None:
        return _("This message no longer exists.")
    return _("Already decided: {outcome}").format(outcome=outcome(m, engine.context()))


async def _after(query: CallbackQuery, engine: CareEngine, m: CareMessage | None, done: str) -> None:
    """Answer the press first, then redraw the card (or digest) it is on."""
    await query.answer(done)
    if m is not None:
        await engine.refresh(m)


async def _on_its_way(query: CallbackQuery, engine: CareEngine, decision: care.Decision, done: str) -> bool:
    """A press that sends a message on its way: the loser of two presses is told who decided; for
    the winner the card is redrawn and the engine woken (it may be due now)."""
    if not decision.won:
        await query.answer(_already(decision.message, engine), show_alert=True)
        return False
    await _after(query, engine, decision.message, done)
    engine.kick()
    return True


@router.callback_query(CareCb.filter(F.action == CareAction.APPROVE))
async def approve(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    now = care_engine.clock.now()
    decision = await care.approve(
        session=session,
        message_id=callback_data.id,
        actor_id=query.from_user.id,
        actor_name=query.from_user.full_name,
        now=now,
        schedule=care_engine.schedule,
    )
    await _on_its_way(query, care_engine, decision, _("Approved."))


async def _decide(
    query: CallbackQuery,
    session: AsyncSession,
    engine: CareEngine,
    message_id: int,
    from_states: tuple[str, ...],
    to_state: str,
    done: str,
) -> CareMessage | None:
    """One press moves the message from one of `from_states` to `to_state`; returns it, or None
    (the presser is told who decided first)."""
    decision = await care.decide(
        session=session,
        message_id=message_id,
        from_states=from_states,
        to_state=to_state,
        actor_id=query.from_user.id,
        actor_name=query.from_user.full_name,
        now=engine.clock.now(),
    )
    if not decision.won or decision.message is None:
        await query.answer(_already(decision.message, engine), show_alert=True)
        return None
    await _after(query, engine, decision.message, done)
    return decision.message


@router.callback_query(CareCb.filter(F.action == CareAction.SKIP))
async def skip(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    await _decide(
        query, session, care_engine, callback_data.id, (CareState.QUEUED,), CareState.SKIPPED, _("Skipped.")
    )


@router.callback_query(CareCb.filter(F.action == CareAction.DONE))
async def task_done(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    await _decide(
        query, session, care_engine, callback_data.id, (CareState.TASK,), CareState.DONE, _("Noted.")
    )


@router.callback_query(CareCb.filter(F.action == CareAction.TAKE))
async def take_alert(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    await _decide(
        query,
        session,
        care_engine,
        callback_data.id,
        (CareState.ALERT,),
        CareState.HANDLING,
        _("It's yours."),
    )


@router.callback_query(CareCb.filter(F.action == CareAction.RESOLVED))
async def resolve_alert(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    settled = await _decide(
        query,
        session,
        care_engine,
        callback_data.id,
        (CareState.HANDLING,),
        CareState.HANDLED,
        _("Resolved."),
    )
    if settled is None:
        return
    # The complaint is settled: marketing may reach them again (a bad review still holds it back).
    await care.set_reach(session=session, customer_pk=settled.customer_pk, open_complaint=False)
    await session.commit()


@router.callback_query(CareCb.filter(F.action == CareAction.RETRY))
async def send_again(
    query: CallbackQuery, callback_data: CareCb, session: AsyncSession, care_engine: CareEngine
) -> None:
    """Under a dead letter: back to approved with a fresh round of attempts; the notice says who."""
    now = care_engine.clock.now()
    decision = await care.retry_failed(
        session=session,
        message_id=callback_data.id,
        actor_name=query.from_user.full_name,
        now=now,
        schedule=care_engine.schedule,
    )
    if not await _on_its_way(query, care_engine, decision, _("It goes out again.")):
        return
    if isinstance(query.message, Message) and query.message.html_text:
        line = sent_again(query.from_user.full_name, now, care_engine.context())
        await query.message.edit_text(f"{query.message.html_text}\n\n{line}", reply_markup=None)


@router.callback_query(CareCb.filter(F.action == CareAction.APPROVE_RULE))
async def approve_rule_today(
    query: CallbackQuery,
    callback_data: CareCb,
    session: AsyncSession,
    care_engine: CareEngine,
    is_admin: bool,
    team_chat: TeamChat | None,
) -> None:
    if not is_lead(query.from_user, is_admin, team_chat):
        await query.answer(_("Only a team lead can approve a whole rule at once."), show_alert=True)
        return
    pressed = await session.get(CareMessage, callback_data.id)
    if pressed is None or pressed.chat_id is None:
        await query.answer(_already(None, care_engine), show_alert=True)
        return
    await query.answer(_("Approving all of this rule from today…"))
    now = care_engine.clock.now()
    zone = care_engine.settings.zone
    start = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    ids = await care.queued_of_rule(
        session=session,
        chat_id=pressed.chat_id,
        rule=pressed.rule,
        since=start,
        until=start + timedelta(days=1),
    )
    approved = await care.approve_many(
        session=session,
        ids=ids,
        actor_id=query.from_user.id,
        actor_name=query.from_user.full_name,
        now=now,
        schedule=care_engine.schedule,
    )
    for m in await care.cards_of(session=session, ids=approved):  # one redraw per card or digest
        await care_engine.refresh(m)
    if query.message is not None:
        await query.message.answer(
            _("✅ {who} approved {n} × {rule} from today.").format(
                who=h(query.from_user.full_name), n=len(approved), rule=h(rule_title(pressed.rule))
            )
        )
    care_engine.kick()


# Edit: the agent's next message is the new text; shown back with Approve this text / Discard.
@router.callback_query(CareCb.filter(F.action == CareAction.EDIT))
async def start_edit(
    query: CallbackQuery,
    callback_data: CareCb,
    session: AsyncSession,
    state: FSMContext,
    bot: Bot,
    care_engine: CareEngine,
) -> None:
    m = await session.get(CareMessage, callback_data.id)
    if m is None or m.state != CareState.QUEUED or query.message is None:
        await query.answer(_already(m, care_engine), show_alert=True)
        return
    await query.answer()
    await release(session)
    await state.set_state(EditFlow.text)
    await state.update_data(care=callback_data.id)
    agent = f'<a href="tg://user?id={query.from_user.id}">{h(query.from_user.full_name)}</a>'
    await bot.send_message(
        query.message.chat.id,
        _("✏️ {agent}, reply with the new text for the customer. /cancel stops.").format(agent=agent),
        reply_markup=ForceReply(selective=True, input_field_placeholder=_("Message text")),
        message_thread_id=m.thread_id,
    )


@router.message(EditFlow.text, F.text, ~F.text.startswith("/"))
async def edit_text(message: Message, state: FSMContext) -> None:
    assert message.text is not None
    text = message.text.strip()
    if len(text) > MAX_TEXT:
        await message.answer(
            _("That is {n} characters; keep it under {limit}.").format(n=len(text), limit=MAX_TEXT)
        )
        return
    data = await state.get_data()
    await state.set_state(EditFlow.confirm)
    await state.update_data(text=text)
    await message.answer(
        _("The customer will get:") + f"\n<blockquote>{h(text)}</blockquote>",
        reply_markup=edit_confirm_keyboard(int(data["care"])),
    )


@router.message(EditFlow.text, ~F.text)
async def edit_needs_text(message: Message) -> None:
    await message.answer(_("Please send the new text as a message, or /cancel."))


@router.callback_query(CareCb.filter(F.action.in_({CareAction.CONFIRM_EDIT, CareAction.DISCARD_EDIT})))
async def confirm_edit(
    query: CallbackQuery,
    callback_data: CareCb,
    session: AsyncSession,
    state: FSMContext,
    care_engine: CareEngine,
) -> None:
    data = await state.get_data()
    if int(data.get("care", 0)) != callback_data.id or "text" not in data:
        await query.answer(_("Only the agent who is editing can confirm this."), show_alert=True)
        return
    await state.clear()
    if callback_data.action == CareAction.DISCARD_EDIT:
        await query.answer(_("Discarded; the message is unchanged."))
        if isinstance(query.message, Message):
            await query.message.edit_text(_("✖️ Edit discarded."))
        return
    decision = await care.approve(
        session=session,
        message_id=callback_data.id,
        actor_id=query.from_user.id,
        actor_name=query.from_user.full_name,
        now=care_engine.clock.now(),
        schedule=care_engine.schedule,
        text=str(data["text"]),
    )
    if not decision.won:
        await query.answer(_already(decision.message, care_engine), show_alert=True)
        return
    await query.answer(_("Approved with your text."))
    if isinstance(query.message, Message) and decision.message is not None:
        await query.message.edit_text(
            _("✏️ Edited and approved:") + f"\n<blockquote>{h(decision.message.text or '')}</blockquote>"
        )
        await care_engine.refresh(decision.message)
    care_engine.kick()


# Commands -------------------------------------------------------------------------------------------
@router.message(Command("queue"))
async def show_queue(message: Message, session: AsyncSession, care_engine: CareEngine) -> None:
    chat_id = message.chat.id
    if message.chat.type == "private":
        chat_id = await care.primary_chat(session=session) or chat_id
    count = await care.count_waiting(session=session, chat_id=chat_id)
    items = await care.waiting(session=session, chat_id=chat_id, limit=care.DIGEST_MAX)
    if not items:
        await message.answer(queue_header(0))
        return
    ctx = care_engine.context()
    rows = [
        (n, i.message.id or 0, i.message.channel == "agent_task")
        for n, i in enumerate(items, 1)
        if i.message.state == CareState.QUEUED
    ]
    await message.answer(
        render_digest(items, ctx, header=queue_header(count)), reply_markup=care_digest_keyboard(rows)
    )


@router.message(Command("optout"))
async def opt_out(
    message: Message, command: CommandObject, session: AsyncSession, care_engine: CareEngine
) -> None:
    try:
        query = parse_query(command.args or "")
    except QueryError:
        await message.answer(_("Usage: /optout &lt;phone | nickname | name | order no.&gt;"))
        return
    found = await find_customers(session=session, query=query)
    if len(found) != 1:
        text = (
            _("No customer matches that.")
            if not found
            else _("{n} customers match; use the phone number or order no.").format(n=len(found))
        )
        await message.answer(text)
        return
    customer = found[0]
    with_cards = await care.opt_out(
        session=session, customer_pk=customer.id or 0, now=care_engine.clock.now()
    )
    for m in with_cards:
        await care_engine.refresh(m)
    await message.answer(
        _("🔕 {name} gets no more care messages; {n} waiting were dropped.").format(
            name=h(display_name(customer)), n=len(with_cards)
        )
    )


@router.message(Command("route"))
async def route(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    care_engine: CareEngine,
    is_admin: bool,
    team_chat: TeamChat | None,
) -> None:
    assert message.from_user is not None
    usage = _(
        "In a group with topics, type in a topic: /route approvals | reminders | alerts — that kind of "
        "message then goes to this topic. /route KIND off sends it back to the general thread."
    )
    args = (command.args or "").split()
    if not args:
        current = await care.routes(session=session, chat_id=message.chat.id)
        lines = [f"{kind}: {current.get(kind, '—')}" for kind in KINDS]
        await message.answer(usage + "\n" + "\n".join(lines))
        return
    if not is_lead(message.from_user, is_admin, team_chat):
        await message.answer(_("Only a team lead can route messages to topics."))
        return
    kind = args[0].lower()
    if kind not in KINDS:
        await message.answer(usage)
        return
    off = len(args) > 1 and args[1].lower() == "off"
    thread = None if off else message.message_thread_id
    if not off and (not message.chat.is_forum or thread is None):
        await message.answer(_("Send /route inside a topic of a group with topics."))
        return
    await care.set_route(
        session=session,
        chat_id=message.chat.id,
        kind=kind,
        thread_id=thread,
        actor_id=message.from_user.id,
        now=care_engine.clock.now(),
    )
    care_engine.routes.forget(message.chat.id)
    await message.answer(
        _("✅ {kind} now go to the general thread.").format(kind=kind)
        if off
        else _("✅ {kind} now go to this topic.").format(kind=kind)
    )


@router.message(Command("care"))
async def care_rules(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    care_engine: CareEngine,
    is_admin: bool,
    team_chat: TeamChat | None,
) -> None:
    """/care lists the rules; /care auto RULE on|off lets a lead send a rule without approval."""
    assert message.from_user is not None
    overrides = await care.automatic_rules(session=session)
    args = (command.args or "").split()
    if not args:
        lines = [_("<b>Care rules</b> (✋ needs approval · ⚡ automatic)")]
        for key in RULE_KEYS:
            rule = care_engine.table.rule(key)
            if not rule.enabled:
                continue
            auto = overrides.get(key, rule.automatic)
            lines.append(f"{'⚡' if auto else '✋'} <code>{key}</code> · {h(rule_title(key))}")
        lines.append(_("A lead changes one with /care auto RULE on|off."))
        await message.answer("\n".join(lines))
        return
    if len(args) != 3 or args[0] != "auto" or args[2] not in ("on", "off") or args[1] not in RULE_KEYS:
        await message.answer(_("Usage: /care auto RULE on|off (see /care for the rule keys)"))
        return
    if not is_lead(message.from_user, is_admin, team_chat):
        await message.answer(_("Only a team lead can make a rule automatic."))
        return
    await care.set_automatic(
        session=session,
        rule=args[1],
        automatic=args[2] == "on",
        actor_id=message.from_user.id,
        actor_name=message.from_user.full_name,
        now=care_engine.clock.now(),
    )
    await message.answer(
        _("⚡ {rule} now goes out without approval (recorded).").format(rule=h(rule_title(args[1])))
        if args[2] == "on"
        else _("✋ {rule} waits for approval again (recorded).").format(rule=h(rule_title(args[1])))
    )
