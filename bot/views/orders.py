"""A customer's orders, one page at a time, and the pick list for ambiguous look-ups."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _

from crm.privacy import mask_phone
from storage.models import Customer, Order

from .card import display_name, order_line
from .format import clip, h, money


def render_orders_page(
    customer: Customer, orders: list[Order], *, page: int, pages: int, total: int, zone: ZoneInfo
) -> str:
    head = _("📦 <b>{name}</b>: {total} orders · page {page}/{pages}").format(
        name=h(display_name(customer)), total=total, page=page + 1, pages=max(pages, 1)
    )
    if not orders:
        return head + "\n" + _("No orders yet.")
    lines = [head]
    for order in orders:
        lines.append(order_line(order, zone))
        if order.carrier or order.tracking_no:
            lines.append(
                "   🚚 {carrier} {tracking}".format(
                    carrier=h(order.carrier or ""), tracking=h(order.tracking_no or "")
                )
            )
    return "\n".join(lines)


def pick_label(customer: Customer, *, mask_contacts: bool) -> str:
    phone = mask_phone(customer.phone) if mask_contacts else (customer.phone or "")
    parts = [clip(display_name(customer), 20), phone, customer.city or "", money(customer.total_spent_cents)]
    return " · ".join(p for p in parts if p)


def render_pick_list(query: str, count: int, *, more: bool) -> str:
    """`more`: the list was cut at `count`, so there may be others; say so and suggest refining."""
    shown = h(clip(" ".join(query.split()), 40))
    if more:
        return _(
            "🔎 Many customers match “{query}”; here are the first {count}. Pick one or refine the search:"
        ).format(count=count, query=shown)
    return _("🔎 {count} customers match “{query}”. Pick one:").format(count=count, query=shown)
