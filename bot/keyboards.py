"""Inline keyboards. Every button's callback data is a typed CallbackData (≤ 64 bytes)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import CardAction, CardCb, CareAction, CareCb, FollowAction, FollowCb, ScenarioCb, TagCb
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
            [button(_("📝 Note"), CardAction.NOTE), button(_("⏱ Follow up"), CardAction.FOLLOW)],
            [button(_("🔄 Refresh"), CardAction.REFRESH)],
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


def scenarios_keyboard(
    customer_pk: int, rows: list[tuple[str, str]], order_pk: int | None
) -> InlineKeyboardMarkup:
    """One button per scenario row: (key, label). The linked order, if any, rides along."""
    kb = InlineKeyboardBuilder()
    for key, text in rows:
        kb.button(text=text, callback_data=ScenarioCb(customer=customer_pk, key=key, order=order_pk or 0))
    back_to_card(kb, customer_pk)
    kb.adjust(1)
    return kb.as_markup()


def reminder_keyboard(follow_up_id: int) -> InlineKeyboardMarkup:
    def button(text: str, action: FollowAction) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=FollowCb(action=action, id=follow_up_id).pack())

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(_("✅ Done"), FollowAction.DONE),
                button(_("💤 5 min"), FollowAction.SNOOZE_5),
                button(_("💤 15 min"), FollowAction.SNOOZE_15),
            ],
            [button(_("🙋 Reassign to me"), FollowAction.MINE), button(_("✖️ Cancel"), FollowAction.CANCEL)],
        ]
    )


def list_keyboard(items: list[tuple[int, int, str]]) -> InlineKeyboardMarkup | None:
    """A row per open follow-up in a digest or a /timers list: (number, id, customer name)."""
    rows = [
        [
            InlineKeyboardButton(
                text=_("✅ {n}. {name}").format(n=n, name=name[:20]),
                callback_data=FollowCb(action=FollowAction.DONE, id=fid).pack(),
            ),
            InlineKeyboardButton(
                text=_("💤 15"), callback_data=FollowCb(action=FollowAction.SNOOZE_15, id=fid).pack()
            ),
            InlineKeyboardButton(text="✖️", callback_data=FollowCb(action=FollowAction.CANCEL, id=fid).pack()),
        ]
        for n, fid, name in items
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def cancel_keyboard(follow_up_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✖️ Cancel follow-up"),
                    callback_data=FollowCb(action=FollowAction.CANCEL, id=follow_up_id).pack(),
                )
            ]
        ]
    )


def _care(text: str, action: CareAction, message_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=CareCb(action=action, id=message_id).pack())


def approval_keyboard(message_id: int, *, task: bool) -> InlineKeyboardMarkup:
    """Approve · Skip · Edit · Approve all of this rule today; a call task has no text to edit."""
    if task:
        return InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    _care(_("📞 I'll call"), CareAction.APPROVE, message_id),
                    _care(_("⏭ Skip"), CareAction.SKIP, message_id),
                ]
            ]
        )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _care(_("✅ Approve"), CareAction.APPROVE, message_id),
                _care(_("⏭ Skip"), CareAction.SKIP, message_id),
                _care(_("✏️ Edit"), CareAction.EDIT, message_id),
            ],
            [_care(_("✅ Approve all of this rule today"), CareAction.APPROVE_RULE, message_id)],
        ]
    )


def task_keyboard(message_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_care(_("✅ Called"), CareAction.DONE, message_id)]])


def care_digest_keyboard(items: list[tuple[int, int, bool]]) -> InlineKeyboardMarkup | None:
    """A row per waiting message in a digest or /queue: (number, id, is a call task)."""
    rows = []
    for n, mid, task in items:
        if task:
            rows.append(
                [_care(_("📞 {n}").format(n=n), CareAction.APPROVE, mid), _care("⏭", CareAction.SKIP, mid)]
            )
        else:
            rows.append(
                [
                    _care(_("✅ {n}").format(n=n), CareAction.APPROVE, mid),
                    _care("⏭", CareAction.SKIP, mid),
                    _care("✏️", CareAction.EDIT, mid),
                ]
            )
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def alert_keyboard(message_id: int, *, taken: bool) -> InlineKeyboardMarkup:
    if taken:
        return InlineKeyboardMarkup(
            inline_keyboard=[[_care(_("✅ Resolved"), CareAction.RESOLVED, message_id)]]
        )
    return InlineKeyboardMarkup(
        inline_keyboard=[[_care(_("🙋 I'll handle it"), CareAction.TAKE, message_id)]]
    )


def dead_letter_keyboard(message_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_care(_("🔁 Send again"), CareAction.RETRY, message_id)]])


def edit_confirm_keyboard(message_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _care(_("✅ Approve this text"), CareAction.CONFIRM_EDIT, message_id),
                _care(_("✖️ Discard"), CareAction.DISCARD_EDIT, message_id),
            ]
        ]
    )
