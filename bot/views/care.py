"""Care-queue messages in the group: the approval card, the digest, the alert, /queue, outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _

from bot.views.card import display_name
from bot.views.format import clip, h, money, short_time
from crm.care_queue import AGENT_TASK, CareState
from crm.sending import sms_segments
from storage.care import CareItem
from storage.models import CareMessage

DIGEST_TEXT_CHARS = 70


@dataclass(frozen=True, slots=True)
class CareContext:
    now: datetime
    zone: ZoneInfo


def rule_title(rule: str) -> str:
    titles = {
        "payment_reminder": _("Payment reminder"),
        "payment_reminder_second": _("Second payment reminder"),
        "payment_reminder_preclose": _("Order closes soon"),
        "order_closed": _("Order closed unpaid"),
        "shipped": _("Shipped"),
        "shipping_delayed": _("Shipping delayed"),
        "arrived": _("Arrived in the city"),
        "signed": _("Signed for: review invitation"),
        "refunded": _("Refund completed"),
        "birthday": _("Birthday"),
        "after_purchase": _("Days after purchase"),
        "replenishment": _("Replenishment"),
        "logistics_abnormal": _("Abnormal logistics"),
        "bad_review_alert": _("Bad review"),
    }
    return titles.get(rule, rule)


def channel_label(channel: str) -> str:
    labels = {"webhook": _("SMS / shop message"), "email": _("e-mail"), AGENT_TASK: _("phone call (agent)")}
    return labels.get(channel, channel)


def _when(moment: datetime | None, ctx: CareContext) -> str:
    return short_time(moment, ctx.now, ctx.zone)


def delay_reasons(m: CareMessage) -> str:
    labels = {
        "quiet_hours": _("quiet hours"),
        "daily_cap": _("already messaged today"),
        "weekly_cap": _("weekly limit reached"),
    }
    return ", ".join(labels.get(r, r) for r in (m.delay_reasons or "").split(",") if r)


def drop_reason(reason: str | None) -> str:
    labels = {
        "no_longer_applies": _("no longer applies (the order moved on)"),
        "opted_out": _("the customer opted out"),
        "unreachable": _("the customer is unreachable"),
        "open_complaint": _("open complaint: no marketing"),
        "bad_reviewer": _("left a bad review: no marketing"),
        "no_team_chat": _("no team group is bound"),
    }
    return labels.get(reason or "", reason or "")


def _customer_line(item: CareItem) -> str:
    c = item.customer
    line = f"👤 <b>{h(display_name(c))}</b>"
    if item.order is not None:
        line += " · " + _("order {no} · {amount}").format(
            no=h(item.order.order_no), amount=money(item.order.amount_cents)
        )
    return line


def outcome(m: CareMessage, ctx: CareContext) -> str:
    """What happened to it, by whom and when — the line that replaces the buttons."""
    who, at = h(m.decided_by_name or ""), _when(m.decided_at, ctx)
    if m.state == CareState.APPROVED or m.state == CareState.SENDING:
        line = _("✅ Approved by {who} · goes {at}").format(who=who, at=_when(m.send_at, ctx))
        if m.delay_reasons:
            line += " (" + h(delay_reasons(m)) + ")"
        if m.attempts and m.last_error:
            line += "\n" + _("⏳ retrying after: {error}").format(error=h(m.last_error))
        return line
    if m.state == CareState.DELIVERED:
        return _("📨 Sent {at} · approved by {who}").format(at=_when(m.delivered_at, ctx), who=who or "—")
    if m.state == CareState.TASK:
        return _("📞 {who} is calling").format(who=who)
    if m.state == CareState.DONE:
        return _("✅ Called by {who} · {at}").format(who=who, at=at)
    if m.state == CareState.SKIPPED:
        return _("⏭ Skipped by {who} · {at}").format(who=who, at=at)
    if m.state == CareState.DROPPED:
        return _("🚫 Not sent: {reason}").format(reason=h(drop_reason(m.drop_reason)))
    if m.state == CareState.FAILED:
        return _("⚠️ Not delivered after {n} attempts: {error}").format(
            n=m.attempts, error=h(m.last_error or "")
        )
    if m.state == CareState.HANDLING:
        return _("🙋 {who} is handling it").format(who=who)
    if m.state == CareState.HANDLED:
        return _("✅ Resolved by {who} · {at}").format(who=who, at=at)
    return ""


def render_approval(item: CareItem, ctx: CareContext) -> str:
    m = item.message
    lines = [
        _("📝 <b>{rule}</b> · {channel}").format(
            rule=h(rule_title(m.rule)), channel=h(channel_label(m.channel))
        ),
        _customer_line(item),
        f"<blockquote>{h(m.text or '')}</blockquote>",
    ]
    facts = []
    if m.channel == "webhook":
        facts.append(_("{n} SMS").format(n=sms_segments(m.text or "")))
    if m.edited_by_name:
        facts.append(_("edited by {who}").format(who=h(m.edited_by_name)))
    if m.state == CareState.QUEUED:
        facts.append(_("goes {at} once approved").format(at=_when(max(m.due_at, ctx.now), ctx)))
    if facts:
        lines.append(" · ".join(facts))
    done = outcome(m, ctx)
    if done:
        lines.append(done)
    return "\n".join(lines)


def render_alert(item: CareItem, ctx: CareContext, review: str, rating: str) -> str:
    c = item.customer
    lines = [
        _("🚨 <b>Bad review</b> · {stars}").format(
            stars="★" * int(rating or 0) + "☆" * (5 - int(rating or 0))
        ),
        _customer_line(item),
    ]
    if review:
        lines.append(f"<blockquote>{h(clip(review, 500))}</blockquote>")
    lines.append(
        _("{orders} orders · {spent} spent · /card {query}").format(
            orders=c.orders_count, spent=money(c.total_spent_cents), query=h(c.external_id)
        )
    )
    done = outcome(item.message, ctx)
    lines.append(done or _("Nobody has taken it yet."))
    return "\n".join(lines)


def render_digest(items: Sequence[CareItem], ctx: CareContext, *, header: str) -> str:
    lines = [header]
    for n, item in enumerate(items, 1):
        m = item.message
        line = _("{n}. <b>{rule}</b> · {name}").format(
            n=n, rule=h(rule_title(m.rule)), name=h(display_name(item.customer))
        )
        line += f"\n    {h(clip(m.text or '', DIGEST_TEXT_CHARS))}"
        done = outcome(m, ctx)
        if done:
            line += "\n    " + done
        lines.append(line)
    return "\n".join(lines)


def digest_header(count: int) -> str:
    return _("📝 <b>{n} care messages wait for approval</b>").format(n=count)


def queue_header(count: int) -> str:
    if count == 0:
        return _("Nothing waits for approval.")
    return _("📝 <b>Waiting: {n}</b>").format(n=count)


def dead_letter(item: CareItem) -> str:
    m = item.message
    return _(
        "⚠️ <b>Not delivered</b> · {rule} · {name}\n{error}\n"
        "Fix the customer's address if it is wrong, then send it again; or reach them another way."
    ).format(rule=h(rule_title(m.rule)), name=h(display_name(item.customer)), error=h(m.last_error or ""))


def sent_again(who: str, moment: datetime, ctx: CareContext) -> str:
    """The line under a dead letter once someone sent it again (the card shows how it goes on)."""
    return _("🔁 Sent again by {who} · {at}").format(who=h(who), at=_when(moment, ctx))
