"""Display names for the stable keys the domain uses. Translated via locales/ at render time."""

from __future__ import annotations

from aiogram.utils.i18n import lazy_gettext as __

from crm.palette import Palette

STAGES = {
    "active": __("active"),
    "silent": __("silent"),
    "sleeping": __("sleeping"),
    "lost": __("lost"),
    "prospect": __("no purchase yet"),
}

SEGMENTS = {
    "important_value": __("important value"),
    "important_develop": __("important to develop"),
    "important_keep": __("important to keep"),
    "important_retain": __("important to win back"),
    "general_value": __("general value"),
    "general_develop": __("general to develop"),
    "general_keep": __("general to keep"),
    "general_retain": __("general to win back"),
}

BADGES = {
    "prospect": __("prospect"),
    "new": __("new customer"),
    "returning": __("returning customer"),
    "repeat": __("repeat buyer"),
}

LEVELS = {
    "regular": __("member"),
    "silver": __("silver member"),
    "gold": __("gold member"),
    "diamond": __("diamond member"),
}

ORDER_STATUSES = {
    "created": __("awaiting payment"),
    "paid": __("paid"),
    "shipped": __("shipped"),
    "signed": __("signed"),
    "refunded": __("refunded"),
    "closed": __("closed"),
}

TAGS = {
    "stingy": __("stingy"),
    "generous": __("generous"),
    "talkative": __("talkative"),
    "bargainer": __("bargain hunter"),
    "decisive": __("decisive"),
    "high_power": __("high spending power"),
    "white_collar": __("white-collar"),
    "ordinary": __("ordinary budget"),
    "pref_simple": __("likes simple style"),
    "pref_loose": __("likes loose fit"),
    "pref_cotton": __("prefers cotton"),
    "pref_petite": __("petite sizes"),
    "expert": __("expert"),
    "amateur": __("amateur"),
    "informed": __("well informed"),
}

SOURCES = {"flash_sale": __("flash sale")}


def label(table: dict[str, object], key: str | None) -> str:
    if key is None:
        return ""
    value = table.get(key)
    return str(value) if value is not None else key


def tag_label(palette: Palette, key: str, locale: str) -> str:
    custom = palette.custom_labels.get(key)
    if custom:
        return custom.get(locale) or next(iter(custom.values()))
    return label(TAGS, key)
