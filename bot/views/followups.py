"""Follow-up messages: the reminder, the digest, the confirmation, /timers, the shift summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _

from bot.scenario_book import ScenarioBook
from bot.views.card import display_name
from bot.views.format import clip, day, h, money, short_time
from bot.views.labels import BADGES, label
from crm import profile
from crm.followups import State, Step, shown_step
from crm.scenarios import Scenario, ScenarioTable
from storage.followups import Claimed
from storage.models import Customer, FollowUp

DIGEST_REPLY_CHARS = 60


@dataclass(frozen=True, slots=True)
class FollowUpContext:
    now: datetime
    zone: ZoneInfo
    table: ScenarioTable
    locale: str


def mention(user_id: int, name: str) -> str:
    return f'<a href="tg://user?id={user_id}">{h(name or user_id)}</a>'


def at_time(moment: datetime | None, ctx: FollowUpContext) -> str:
    return short_time(moment, ctx.now, ctx.zone)


def duration(delta: timedelta) -> str:
    minutes = max(1, round(delta.total_seconds() / 60))
    if minutes < 120:
        return _("{n} min").format(n=minutes)
    return _("{h} h {m} min").format(h=minutes // 60, m=minutes % 60)


def _row(key: str, ctx: FollowUpContext) -> Scenario:
    return ctx.table.get(key) or Scenario(key, "none")


def scenario_title(key: str, ctx: FollowUpContext) -> str:
    return ScenarioBook.title(_row(key, ctx), ctx.locale)


def suggested_reply(key: str, ctx: FollowUpContext) -> str:
    return ScenarioBook.reply(_row(key, ctx), ctx.locale)


def key_facts(c: Customer, ctx: FollowUpContext) -> str:
    facts = _("🧾 {badge} · orders {orders} · spent {spent} · last purchase {last}").format(
        badge=label(BADGES, profile.badge_for(c.purchases)),
        orders=c.orders_count,
        spent=money(c.total_spent_cents),
        last=day(c.last_purchase_at, ctx.zone),
    )
    return facts


def _customer(c: Customer) -> str:
    name = f"<b>{h(display_name(c))}</b>"
    if c.name and c.nickname and c.name != c.nickname:
        name += f" ({h(c.name)})"
    return name


def _markers(f: FollowUp, ctx: FollowUpContext, late: timedelta | None) -> list[str]:
    lines = []
    if late is None and f.late_seconds:
        late = timedelta(seconds=f.late_seconds)
    if late is not None:
        lines.append(
            _("⚠️ Late by {late}: the bot was not running at the due time.").format(late=duration(late))
        )
    if f.carried_over and f.due_at is not None:
        lines.append(
            _("↪️ Carried over: it fell due at {due}, outside working hours.").format(
                due=at_time(f.due_at, ctx)
            )
        )
    return lines


def render_reminder(item: Claimed, ctx: FollowUpContext, *, late: timedelta | None = None) -> str:
    """One follow-up, in full: whom, why, what to say, what we know about the customer."""
    f, c = item.follow_up, item.customer
    owner = mention(f.owner_id, f.owner_name)
    step = shown_step(f.state, f.step)
    if step == Step.ESCALATE and item.lead_id:
        head = _("📣 {lead}: {owner}'s follow-up has had no answer since {due}.").format(
            lead=mention(item.lead_id, _("team lead")), owner=owner, due=at_time(f.due_at, ctx)
        )
    elif step == Step.REPOST:
        head = _("⏰ {owner}, a reminder again: this follow-up was due at {due}.").format(
            owner=owner, due=at_time(f.due_at, ctx)
        )
    else:
        head = _("⏰ {owner}, time to follow up ({due}).").format(owner=owner, due=at_time(f.due_at, ctx))
    scenario = h(scenario_title(f.scenario, ctx))
    if item.order_no:
        scenario += " · " + _("order {no}").format(no=f"<code>{h(item.order_no)}</code>")
    if f.product:
        scenario += " · " + h(f.product)
    lines = [
        head,
        "👤 " + _customer(c),
        "📋 " + scenario,
        _("💬 Suggested reply: <i>{reply}</i>").format(reply=h(suggested_reply(f.scenario, ctx))),
        key_facts(c, ctx),
        *_markers(f, ctx, late),
    ]
    return "\n".join(lines)


def render_digest(items: Sequence[Claimed], ctx: FollowUpContext, *, late: dict[int, timedelta]) -> str:
    """Several follow-ups for one agent at once: one message, a numbered line each."""
    first = items[0].follow_up
    lines = [
        _("⏰ {owner}, {n} follow-ups are due:").format(
            owner=mention(first.owner_id, first.owner_name), n=len(items)
        )
    ]
    leads = {i.lead_id for i in items if i.follow_up.step == Step.ESCALATE and i.lead_id}
    for n, item in enumerate(items, 1):
        lines.append(digest_line(n, item, ctx))
        if item.follow_up.id in late:
            lines.append("   " + _("⚠️ late by {late}").format(late=duration(late[item.follow_up.id])))
    for lead in sorted(leads):
        lines.append(
            _("📣 {lead}: some of these have had no answer for a while.").format(
                lead=mention(lead, _("team lead"))
            )
        )
    return "\n".join(lines)


def digest_line(n: int, item: Claimed, ctx: FollowUpContext) -> str:
    f = item.follow_up
    parts = [f"{n}. {_customer(item.customer)}", h(scenario_title(f.scenario, ctx)), at_time(f.due_at, ctx)]
    if item.order_no:
        parts.append(f"<code>{h(item.order_no)}</code>")
    if f.carried_over:
        parts.append(_("carried over"))
    if f.step == Step.REPOST and f.state == State.FIRING:
        parts.append(_("🔁 again"))
    elif f.step == Step.ESCALATE and f.state == State.FIRING:
        parts.append(_("📣 no answer yet"))
    line = " · ".join(parts)
    reply = clip(suggested_reply(f.scenario, ctx), DIGEST_REPLY_CHARS)
    return line + f"\n   💬 <i>{h(reply)}</i>"


def outcome(f: FollowUp, ctx: FollowUpContext) -> str:
    """What happened to a follow-up, for the line under a reminder or in a list."""
    who = h(f.closed_by_name or "")
    when = at_time(f.closed_at, ctx)
    if f.state == State.DONE:
        return _("✅ Done by {who} at {when}").format(who=who, when=when)
    if f.state == State.CANCELLED and f.closed_by is None:
        return _("☑️ Closed automatically at {when}: {reason}").format(when=when, reason=reason_text(f))
    if f.state == State.CANCELLED:
        return _("✖️ Cancelled by {who} at {when}").format(who=who, when=when)
    if f.state == State.UNDELIVERABLE:
        return _("⚠️ Could not be delivered to this chat")
    if f.state == State.PENDING and f.step == Step.REMIND:
        return _("💤 Next reminder at {when} ({owner})").format(
            when=at_time(f.fire_at or f.due_at, ctx), owner=h(f.owner_name)
        )
    return _("👤 {owner} is on it").format(owner=h(f.owner_name))


def reason_text(f: FollowUp) -> str:
    reasons = {
        "order.paid": _("the order was paid"),
        "order.created": _("the customer placed an order"),
        "order.closed": _("the order was closed"),
        "order.refunded": _("the order was refunded"),
    }
    return reasons.get(f.close_reason or "", f.close_reason or "")


def render_acted(item: Claimed, ctx: FollowUpContext) -> str:
    """A single reminder after someone pressed a button: the reminder, then what was done."""
    return render_reminder(item, ctx) + "\n\n" + outcome(item.follow_up, ctx)


def render_list(items: Sequence[Claimed], ctx: FollowUpContext, *, header: str) -> str:
    """A digest or a /timers list after presses: open ones as lines, closed ones with their outcome."""
    lines = [header]
    for n, item in enumerate(items, 1):
        f = item.follow_up
        line = digest_line(n, item, ctx)
        if f.state not in (State.PENDING, State.FIRING, State.WAITING) or f.step != Step.REMIND or f.fired_at:
            line += "\n   " + outcome(f, ctx)
        lines.append(line)
    return "\n".join(lines)


def timers_header(total: int, shown: int, *, mine: bool, overdue: int) -> str:
    if total == 0:
        return (
            _("No open follow-ups. Start one from a card: ⏱ Follow up.")
            if mine
            else _("The team has no open follow-ups.")
        )
    head = (
        _("⏱ Your open follow-ups: {total} ({overdue} overdue)")
        if mine
        else _("⏱ The team's open follow-ups: {total} ({overdue} overdue)")
    ).format(total=total, overdue=overdue)
    if shown < total:
        head += "\n" + _("Showing the first {shown}, overdue first.").format(shown=shown)
    return head


def confirmation(f: FollowUp, customer: Customer, ctx: FollowUpContext, *, order_no: str | None) -> str:
    """What the agent sees after starting a follow-up; edited later if an event closes it."""
    what = h(scenario_title(f.scenario, ctx))
    if order_no:
        what += " · " + _("order {no}").format(no=f"<code>{h(order_no)}</code>")
    when = _("when the item is back in stock") if f.due_at is None else at_time(f.fire_at or f.due_at, ctx)
    text = _("⏱ {owner} will follow up with {customer}: {what}. Reminder: {when}.").format(
        owner=h(f.owner_name), customer=_customer(customer), what=what, when=when
    )
    if f.carried_over:
        text += "\n" + _("↪️ Due at {due}, outside working hours: reminded when the shift starts.").format(
            due=at_time(f.due_at, ctx)
        )
    return text


def render_summary(groups: dict[int, list[FollowUp]], ctx: FollowUpContext) -> str:
    """The start-of-shift summary: each agent's open follow-ups, overdue counted."""
    lines = [_("☀️ Start of shift: open follow-ups")]
    for owner_id, rows in groups.items():
        overdue = sum(1 for f in rows if f.due_at is not None and f.due_at <= ctx.now)
        lines.append(
            _("• {owner}: {total} open, {overdue} overdue · /timers").format(
                owner=mention(owner_id, rows[0].owner_name), total=len(rows), overdue=overdue
            )
        )
    return "\n".join(lines)


def render_table(table: ScenarioTable, ctx: FollowUpContext) -> str:
    lines = [_("<b>Scenario-response table</b>")]
    for row in table.rows.values():
        lines.append(
            "• <code>{key}</code> {title} · {when}\n   💬 <i>{reply}</i>".format(
                key=row.key,
                title=h(ScenarioBook.title(row, ctx.locale)),
                when=h(ScenarioBook.when(row)),
                reply=h(clip(ScenarioBook.reply(row, ctx.locale), 120)),
            )
        )
    lines.append(_("Leads change a row with /scenario set KEY minutes N or /scenario set KEY reply TEXT."))
    return "\n".join(lines)
