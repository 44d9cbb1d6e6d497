"""Every label the sandbox page shows, as gettext msgids (locales/), served to the page as JSON.

The page is plain JavaScript: it asks for its texts once per language and fills ``{placeholders}``
itself, so the catalogues stay the one place user-facing text lives.
"""

from __future__ import annotations

from aiogram.utils.i18n import I18n

from bot.config import SUPPORTED_LOCALES


def _(text: str) -> str:
    """Marks a msgid for `scripts/i18n`; translated per request by :func:`texts_for`."""
    return text


TEXTS: dict[str, str] = {
    "title": _("Touchpoint sandbox"),
    "you_are": _("You are"),
    "role_lead": _("Team lead"),
    "role_agent": _("Agent"),
    "role_agent2": _("Second agent"),
    "role_stranger": _("Stranger (not in the team)"),
    "chats": _("Chats"),
    "private_chat": _("Private chat with the bot"),
    "members": _("{n} members"),
    "bot": _("bot"),
    "language": _("Language"),
    "language_name": _("English"),  # each catalogue names its own language: 中文, English
    "composer": _("Write a message…"),
    "send": _("Send"),
    "replying_to": _("Replying to {name}"),
    "cancel_reply": _("Cancel the reply"),
    "reply_hint": _("Double-click a message to reply to it."),
    "edited": _("edited"),
    "photo": _("Photo"),
    "empty_chat": _("No messages here yet. Type / to see the bot's commands."),
    "not_member": _(
        "{name} is not a member of this group: buttons they press are refused. "
        "Try the private chat with the bot."
    ),
    "alert_ok": _("OK"),
    "no_answer": _("The bot did not answer the press."),
    "shop_events": _("Shop events"),
    "customer": _("Customer"),
    "search": _("Search: phone, nickname, name, ID"),
    "no_customer": _("No customer matches."),
    "pick_customer": _("Pick a customer first."),
    "event_created": _("Order created (unpaid)"),
    "event_paid": _("Order paid"),
    "event_shipped": _("Order shipped"),
    "event_signed": _("Order signed"),
    "event_review": _("Bad review (2 stars)"),
    "event_sent": _("{event}: order {order} of {customer}."),
    "clock": _("Sandbox clock"),
    "advance": _("+{n} min"),
    "clock_real": _("real time"),
    "clock_ahead": _("{n} min ahead of real time"),
    "clock_moved": _("Clock moved forward {n} minutes."),
    "outbox": _("Sent to customers (SMS outbox)"),
    "outbox_empty": _("Nothing sent yet."),
    "error_not_ready": _("The bot is still starting; try again in a moment."),
    "error_no_order": _("This customer has no order yet: send “Order created” first."),
    "error_not_member": _("Only members of the group can write in it."),
    "error_generic": _("The sandbox refused this request: {error}"),
    "offline": _("Connection to the sandbox lost; retrying…"),
}


def locale_names(i18n: I18n) -> list[dict[str, str]]:
    """Each supported language by its own name, for the language menu."""
    name = TEXTS["language_name"]
    return [{"code": code, "name": i18n.gettext(name, locale=code)} for code in SUPPORTED_LOCALES]


def texts_for(i18n: I18n, locale: str) -> dict[str, str]:
    """The page's texts in ``locale`` (one of SUPPORTED_LOCALES)."""
    if locale not in SUPPORTED_LOCALES:
        locale = i18n.default_locale
    return {key: i18n.gettext(msgid, locale=locale) for key, msgid in TEXTS.items()}
