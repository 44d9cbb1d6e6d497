"""Inline keyboards. Every button's callback data is a typed CallbackData (≤ 64 bytes)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import CardAction, CardCb, TagCb
from bot.views.labels import tag_label
from bot.views.orders import pick_label
from crm.palette import Palette
from storage.models import Customer


def card_keyboard(customer_pk: int) -> InlineKeyboardMarkup:
    # Built directly: the builder deep-copies its buttons, which costs more than the whole card query.
    def button(text: str, action: CardAction) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=CardCb(action=action, customer=customer_pk).pack()
        )

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("📦 Orders"), CardAction.ORDERS), button(_("🏷 Tags"), CardAction.TAGS)],
            [button(_("📝 Note"), CardAction.NOTE), button(_("🔄 Refresh"), CardAction.REFRESH)],
        ]
    )


def back_to_card(kb: InlineKeyboardBuilder, customer_pk: int) -> None:
    kb.button(text=_("« Card"), callback_data=CardCb(action=CardAction.REFRESH, customer=customer_pk))


def orders_keyboard(customer_pk: int, *, page: int, pages: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    row = 0
    if page > 0:
        kb.button(
            text=_("‹ Newer"),
            callback_data=CardCb(action=CardAction.ORDERS, customer=customer_pk, page=page - 1),
        )
        row += 1
    if page + 1 < pages:
        kb.button(
            text=_("Older ›"),
            callback_data=CardCb(action=CardAction.ORDERS, customer=customer_pk, page=page + 1),
        )
        row += 1
    back_to_card(kb, customer_pk)
    kb.adjust(*([row] if row else []), 1)
    return kb.as_markup()


def tags_keyboard(customer_pk: int, palette: Palette, current: set[str], locale: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    sizes: list[int] = []
    for keys in palette.groups.values():
        for key in keys:
            mark = "✅ " if key in current else ""
            kb.button(
                text=mark + tag_label(palette, key, locale),
                callback_data=TagCb(customer=customer_pk, tag=key),
            )
        # Rows of at most three buttons per group keep labels readable on a phone.
        sizes += [3] * (len(keys) // 3) + ([len(keys) % 3] if len(keys) % 3 else [])
    back_to_card(kb, customer_pk)
    kb.adjust(*sizes, 1)
    return kb.as_markup()


def pick_keyboard(customers: list[Customer], *, mask_contacts: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for customer in customers:
        assert customer.id is not None
        kb.button(
            text=pick_label(customer, mask_contacts=mask_contacts),
            callback_data=CardCb(action=CardAction.OPEN, customer=customer.id),
        )
    kb.adjust(1)
    return kb.as_markup()
