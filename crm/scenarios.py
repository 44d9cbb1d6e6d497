"""The scenario-response table (客户情景应答表): which follow-up each pre-sale situation gets.

A row is a stable key, when to follow up (minutes, "restock", or never), and the shop events that
make the follow-up pointless (an order paid resolves "ordered, not paid"). Texts live in locales
for the built-in keys; a deployment's own rows bring their texts in the YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

SCENARIO_KEY = re.compile(r"[a-z0-9_]{1,24}")
MIN_MINUTES, MAX_MINUTES = 1, 1440
# Event types a follow-up may be resolved by (the event API's order and product events).
RESOLVING_EVENTS = frozenset(
    {"order.created", "order.paid", "order.closed", "order.refunded", "product.restocked"}
)
BUILT_IN_KEYS = (
    "no_reply",
    "price_objection",
    "promo_no_order",
    "unpaid",
    "out_of_stock",
    "product_doubt",
    "hesitating",
)


class ScenarioError(ValueError):
    pass


class Trigger:
    TIMER = "timer"  # after `minutes`
    RESTOCK = "restock"  # when the product is back (a product.restocked event)
    NONE = "none"  # answer only: the table has no follow-up for it


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    trigger: str
    minutes: int | None = None
    resolved_by: frozenset[str] = frozenset()
    # Per-locale texts for keys that are not built in (built-in ones come from locales/).
    titles: dict[str, str] = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)

    @property
    def has_timer(self) -> bool:
        return self.trigger != Trigger.NONE


@dataclass(frozen=True, slots=True)
class ScenarioTable:
    rows: dict[str, Scenario]

    def get(self, key: str) -> Scenario | None:
        return self.rows.get(key)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def resolved_by(self, event_type: str) -> tuple[str, ...]:
        return tuple(k for k, row in self.rows.items() if event_type in row.resolved_by)

    def with_override(
        self, key: str, *, minutes: int | None = None, reply: str | None = None, locale: str | None = None
    ) -> ScenarioTable:
        """The table after a lead's change (stored overrides are applied the same way at load)."""
        row = self.rows[key]
        if minutes is not None:
            row = replace(row, trigger=Trigger.TIMER, minutes=check_minutes(minutes))
        if reply is not None:
            row = replace(row, replies={**row.replies, (locale or "*"): reply})
        return ScenarioTable({**self.rows, key: row})


def check_minutes(value: int) -> int:
    if not MIN_MINUTES <= value <= MAX_MINUTES:
        raise ScenarioError(f"minutes must be between {MIN_MINUTES} and {MAX_MINUTES}")
    return value


def parse_minutes(text: str) -> int:
    """Minutes typed by an agent ("15", "15m", "2h"); raises ScenarioError when out of range."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*(m|min|h)?\s*", text.lower())
    if not match:
        raise ScenarioError("not a number of minutes")
    value = int(match[1]) * (60 if match[2] == "h" else 1)
    return check_minutes(value)


def _texts(key: str, name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise ScenarioError(f"{key}.{name}: expected texts per locale, e.g. {{zh_CN: …, en: …}}")
    return {str(k): v.strip() for k, v in value.items()}


def _row(key: str, spec: Any) -> Scenario:
    if not SCENARIO_KEY.fullmatch(str(key)):
        raise ScenarioError(f"{key!r}: keys are lowercase letters, digits and _ (at most 24)")
    if not isinstance(spec, dict):
        raise ScenarioError(f"{key}: expected a mapping with follow_up")
    unknown = set(spec) - {"follow_up", "resolved_by", "title", "reply"}
    if unknown:
        raise ScenarioError(f"{key}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    follow_up = spec.get("follow_up")
    if isinstance(follow_up, bool):
        raise ScenarioError(f"{key}.follow_up: minutes, 'restock' or 'none'")
    if isinstance(follow_up, int):
        try:
            trigger, minutes = Trigger.TIMER, check_minutes(follow_up)
        except ScenarioError as exc:
            raise ScenarioError(f"{key}.follow_up: {exc}") from None
    elif follow_up in ("restock", "none", None):
        trigger, minutes = (Trigger.RESTOCK if follow_up == "restock" else Trigger.NONE), None
    else:
        raise ScenarioError(f"{key}.follow_up: minutes, 'restock' or 'none'")
    resolved = spec.get("resolved_by") or []
    if not isinstance(resolved, list) or not all(
        isinstance(e, str) and e in RESOLVING_EVENTS for e in resolved
    ):
        raise ScenarioError(f"{key}.resolved_by: a list of {', '.join(sorted(RESOLVING_EVENTS))}")
    titles, replies = _texts(key, "title", spec.get("title")), _texts(key, "reply", spec.get("reply"))
    if key not in BUILT_IN_KEYS and not (titles and replies):
        raise ScenarioError(f"{key}: a scenario of your own needs a title and a reply per locale")
    return Scenario(str(key), trigger, minutes, frozenset(resolved), titles, replies)


def parse_table(data: Any) -> ScenarioTable:
    """Validate the table read from YAML; an error names the row and field."""
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), dict) or not data["scenarios"]:
        raise ScenarioError("expected a top-level 'scenarios:' mapping with at least one row")
    return ScenarioTable({str(k): _row(str(k), v) for k, v in data["scenarios"].items()})
