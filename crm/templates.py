"""Care message templates: a text per rule, segment and locale, checked when the file is loaded.

A template is plain text with `{placeholder}`s from a fixed list; anything else (an unknown name,
`{}`, `{nickname.upper}`, an unclosed brace) is a TemplateError naming the template, so a typo fails
at start rather than in front of a buyer. Selection walks the planned segments, most specific first,
and falls back to the rule's `default`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Formatter
from typing import Any

from crm.care_rules import RULE_KEYS, Segment

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
DEFAULT_SEGMENT = "default"
SEGMENTS = (DEFAULT_SEGMENT, *(str(s) for s in Segment))
PLACEHOLDERS = frozenset(
    {
        "nickname",
        "order_no",
        "carrier",
        "tracking_no",
        "shop_name",
        "amount",
        "product",
        "days",
        "province",
        "rating",
    }
)
# What a missing value becomes: a greeting still reads naturally; other gaps stay empty and
# `missing` lists them, so the approval card can say what is absent before anyone approves.
FALLBACKS: dict[str, dict[str, str]] = {
    "zh_CN": {"nickname": "亲", "shop_name": "本店"},
    "en": {"nickname": "there", "shop_name": "our shop"},
}


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Template:
    rule: str
    segment: str
    locale: str
    text: str
    fields: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.rule}.{self.segment}.{self.locale}"


def placeholders(text: str, name: str = "text") -> frozenset[str]:
    """The placeholders `text` uses; raises TemplateError (prefixed with `name`) for anything else."""
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:  # an unclosed or stray brace
        raise TemplateError(
            f"{name}: malformed template ({exc}); write a literal brace as {{{{ or }}}}"
        ) from None
    found: set[str] = set()
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in PLACEHOLDERS:
            shown = "{" + field_name + "}" if field_name else "{}"
            raise TemplateError(f"{name}: unknown placeholder {shown}; use {', '.join(sorted(PLACEHOLDERS))}")
        if spec or conversion:
            raise TemplateError(f"{name}: write {{{field_name}}} plainly, without a format or conversion")
        found.add(field_name)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class TemplateBook:
    templates: Mapping[tuple[str, str, str], Template]

    def select(self, rule: str, segments: Iterable[str] = (), locale: str = DEFAULT_LOCALE) -> Template:
        """The first of `segments` the rule has a text for, else its default; an unknown locale
        reads zh_CN. Raises KeyError for a rule the book does not cover."""
        if locale not in LOCALES:
            locale = DEFAULT_LOCALE
        for segment in (*segments, DEFAULT_SEGMENT):
            found = self.templates.get((rule, segment, locale))
            if found is not None:
                return found
        raise KeyError(rule)

    def segments_of(self, rule: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for r, s, _ in self.templates if r == rule))


def _value(value: Any) -> str:
    return "" if value is None else str(value).strip()


def render(template: Template, values: Mapping[str, Any]) -> str:
    """The text with `values` filled in. A missing or empty value never raises: nickname and shop
    name fall back to a friendly word, the rest to nothing (see `missing`)."""
    fallbacks = FALLBACKS.get(template.locale, {})
    filled = {name: _value(values.get(name)) or fallbacks.get(name, "") for name in template.fields}
    return template.text.format_map(filled)


def missing(template: Template, values: Mapping[str, Any]) -> tuple[str, ...]:
    """The template's placeholders that `values` leaves empty, sorted."""
    return tuple(sorted(name for name in template.fields if not _value(values.get(name))))


def _texts(rule: str, segment: str, spec: Any) -> dict[str, Template]:
    where = f"{rule}.{segment}"
    if not isinstance(spec, dict):
        raise TemplateError(f"{where}: expected texts per locale, e.g. {{zh_CN: …, en: …}}")
    unknown = [str(k) for k in spec if k not in LOCALES]
    if unknown:
        raise TemplateError(f"{where}.{unknown[0]}: unknown locale; use {', '.join(LOCALES)}")
    absent = [loc for loc in LOCALES if loc not in spec]
    if absent:
        raise TemplateError(f"{where}: missing the {', '.join(absent)} text (every template has each locale)")
    found = {}
    for locale in LOCALES:
        name, text = f"{where}.{locale}", spec[locale]
        if not isinstance(text, str) or not text.strip():
            raise TemplateError(f"{name}: expected a non-empty text")
        found[locale] = Template(rule, segment, locale, text.strip(), placeholders(text, name))
    return found


def _rule(rule: str, spec: Any) -> list[Template]:
    if not isinstance(spec, dict):
        raise TemplateError(f"{rule}: expected texts per segment, at least `default`")
    unknown = [str(s) for s in spec if s not in SEGMENTS]
    if unknown:
        raise TemplateError(f"{rule}.{unknown[0]}: unknown segment; use {', '.join(SEGMENTS)}")
    if DEFAULT_SEGMENT not in spec:
        raise TemplateError(f"{rule}.{DEFAULT_SEGMENT}: missing (the text when no segment has its own)")
    return [t for segment, texts in spec.items() for t in _texts(rule, str(segment), texts).values()]


def parse_templates(data: Any, rules: Iterable[str] = RULE_KEYS) -> TemplateBook:
    """Validate templates read from YAML (`templates: {rule: {segment: {locale: text}}}`); every rule
    in `rules` needs a default. An error names the template as rule.segment.locale."""
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise TemplateError("expected a top-level 'templates:' mapping")
    known = tuple(rules)
    rows = data["templates"]
    unknown = [str(r) for r in rows if r not in known]
    if unknown:
        raise TemplateError(f"{unknown[0]}: not a care rule")
    absent = [r for r in known if r not in rows]
    if absent:
        raise TemplateError(f"{absent[0]}: no templates (each rule needs at least a default)")
    book = {(t.rule, t.segment, t.locale): t for r, spec in rows.items() for t in _rule(str(r), spec)}
    return TemplateBook(book)


def format_amount(cents: int | None) -> str | None:
    """An amount in cents as yuan for {amount}: 12800 → '128.00'."""
    return None if cents is None else f"{cents // 100}.{cents % 100:02d}"
