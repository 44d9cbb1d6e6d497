"""The customer profile card: HTML that fits a phone screen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiogram.utils.i18n import gettext as _

from crm import figures, lifecycle, profile, rfm
from crm.palette import Palette
from crm.privacy import mask_email, mask_phone
from storage.customers import CardData, OrderLine
from storage.models import Customer, Order
from storage.stats import ShopCuts

from .format import clip, day, h, minute, money
from .labels import BADGES, LEVELS, ORDER_STATUSES, SEGMENTS, SOURCES, STAGES, label, tag_label


@dataclass(frozen=True, slots=True)
class CardContext:
    now: datetime
    zone: ZoneInfo
    thresholds: lifecycle.Thresholds
    cuts: ShopCuts | None
    palette: Palette
    locale: str
    mask_contacts: bool
    scenario_title: Callable[[str], str] = str


def display_name(customer: Customer) -> str:
    return customer.nickname or customer.name or customer.external_id


def _title(c: Customer) -> str:
    name = f"<b>{h(display_name(c))}</b>"
    if c.name and c.nickname and c.name != c.nickname:
        name += f" ({h(c.name)})"
    badges = [label(BADGES, profile.badge_for(c.purchases))]
    level = profile.member_level(c.purchases, c.total_spent_cents)
    if level:
        badges.insert(0, label(LEVELS, level))
    return f"👤 {name} · {' · '.join(badges)}"


def _contact(c: Customer, ctx: CardContext) -> str:
    phone = mask_phone(c.phone) if ctx.mask_contacts else (c.phone or "")
    email = mask_email(c.email) if ctx.mask_contacts else (c.email or "")
    region = " ".join(p for p in (c.province, c.city) if p)
    parts = [
        f"📱 {h(phone)}" if phone else "",
        f"✉️ {h(email)}" if email else "",
        f"📍 {h(region)}" if region else "",
        _local_time(c, ctx),
    ]
    return " · ".join(p for p in parts if p) or _("no contact details")


def _local_time(c: Customer, ctx: CardContext) -> str:
    """The customer's clock when they live in another zone than the team: worth a glance before a call."""
    if not c.zone or c.zone == ctx.zone.key:
        return ""
    try:
        local = ctx.now.astimezone(ZoneInfo(c.zone))
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return f"🕐 {local:%H:%M} {h(c.zone)}"


def _spending(c: Customer, ctx: CardContext) -> list[str]:
    aov = figures.average_order_cents(c.total_spent_cents, c.purchases)
    lines = [
        _("🧾 Orders {orders} · purchases {purchases} · spent {spent} · AOV {aov}").format(
            orders=c.orders_count, purchases=c.purchases, spent=money(c.total_spent_cents), aov=money(aov)
        )
    ]
    if c.purchases:
        lines.append(
            _("First {first} {first_amount} · last {last} {last_amount}").format(
                first=day(c.first_purchase_at, ctx.zone),
                first_amount=money(c.first_purchase_cents),
                last=day(c.last_purchase_at, ctx.zone),
                last_amount=money(c.last_purchase_cents),
            )
        )
    return lines


def _value(c: Customer, ctx: CardContext) -> list[str]:
    days = lifecycle.days_since(c.last_purchase_at, ctx.now)
    stage = lifecycle.stage_for(days, ctx.thresholds)
    if days is None:
        line = _("📈 Stage: {stage}").format(stage=label(STAGES, stage))
    else:
        line = _("📈 Stage: {stage} ({days} days since last purchase)").format(
            stage=label(STAGES, stage), days=days
        )
    lines = [line]
    if days is not None and ctx.cuts and ctx.cuts.rfm:
        score = rfm.score(days, c.purchases, c.total_spent_cents, ctx.cuts.rfm)
        lines.append(
            _("RFM {r}-{f}-{m} · {segment}").format(
                r=score.r, f=score.f, m=score.m, segment=label(SEGMENTS, score.segment)
            )
        )
    rate = profile.response_rate(c.contacted_count, c.responded_count)
    lines.append(
        _("📣 Contacted {contacted} · responded {responded} ({rate}) · last contact {last}").format(
            contacted=c.contacted_count,
            responded=c.responded_count,
            rate=f"{rate:.0%}" if rate is not None else "—",
            last=day(c.last_contact_at, ctx.zone),
        )
    )
    return lines


def order_line(order: Order | OrderLine, zone: ZoneInfo) -> str:
    source = f" · {label(SOURCES, order.source)}" if order.source == "flash_sale" else ""
    return "• {date} {amount} {status}{source} <code>{no}</code>".format(
        date=day(order.created_at, zone),
        amount=money(order.amount_cents),
        status=label(ORDER_STATUSES, order.status),
        source=source,
        no=h(order.order_no),
    )


def render_card(data: CardData, ctx: CardContext) -> str:
    c = data.customer
    lines = [
        _title(c),
        _contact(c, ctx),
        _("🗓 Customer since {since} · ID <code>{id}</code>").format(
            since=day(c.created_at or c.first_purchase_at, ctx.zone), id=h(c.external_id)
        ),
        "",
        *_spending(c, ctx),
        *_value(c, ctx),
    ]
    if data.recent_orders:
        lines += ["", _("<b>Latest orders</b>")]
        lines += [order_line(o, ctx.zone) for o in data.recent_orders]
    if data.top_products:
        products = "、".join(f"{h(clip(name, 24))}×{qty}" for name, qty in data.top_products)
        lines += ["", _("🛍 Most bought: {products}").format(products=products)]
    tags = " · ".join(h(tag_label(ctx.palette, t, ctx.locale)) for t in data.tags)
    lines.append(_("🏷 Tags: {tags}").format(tags=tags or "—"))
    for f in data.follow_ups:
        lines.append(
            _("⏱ Follow-up: {what} · {owner} · {when}").format(
                what=h(ctx.scenario_title(f.scenario)),
                owner=h(f.owner_name),
                when=minute(f.due_at, ctx.zone) if f.due_at else _("when restocked"),
            )
        )
    for note in data.notes:
        lines.append(
            _("📝 {date} {author}: {text}").format(
                date=day(note.created_at, ctx.zone), author=h(note.author_name), text=h(clip(note.text, 120))
            )
        )
    return "\n".join(lines)
