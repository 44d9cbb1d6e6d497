"""Care rules (催付, 售中 / 售后关怀): which message a shop event or the daily job plans, and when.

Pure decisions over small facts. The bot stores each PlannedCare as a queue row (its `key` makes a
replayed event or a second daily run harmless), re-checks it with `still_applies` when it is queued,
approved and about to go, and renders it with crm.templates using `segments` (most specific first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from crm.profile import badge_for

DAILY = "daily"  # the rule is checked by the daily job, not by an event
RULE_KEYS = (
    "payment_reminder",
    "payment_reminder_second",
    "payment_reminder_preclose",
    "order_closed",
    "shipped",
    "shipping_delayed",
    "arrived",
    "signed",
    "refunded",
    "birthday",
    "after_purchase",
    "replenishment",
    "logistics_abnormal",
    "bad_review_alert",
)
PAYMENT_RULES = ("payment_reminder", "payment_reminder_second", "payment_reminder_preclose")
# What wakes each rule. Fixed: each rule's logic is written for its event (`trigger:` in YAML documents it).
TRIGGERS: dict[str, str] = {
    "payment_reminder": "order.created",
    "payment_reminder_second": "order.created",
    "payment_reminder_preclose": "order.created",
    "order_closed": "order.closed",
    "shipped": "order.shipped",
    "shipping_delayed": "order.paid",
    "arrived": "order.arrived",
    "signed": "order.signed",
    "refunded": "order.refunded",
    "birthday": DAILY,
    "after_purchase": DAILY,
    "replenishment": DAILY,
    "logistics_abnormal": DAILY,
    "bad_review_alert": "review.posted",
}
# Selling rather than serving: held back from buyers with an open complaint or a bad review.
MARKETING_RULES = frozenset({*PAYMENT_RULES, "order_closed", "birthday", "after_purchase", "replenishment"})
CHANNELS = ("webhook", "email", "agent_task")
# Rules whose timing is not a delay after their event.
NO_DELAY = {
    "payment_reminder_preclose": "timed by before_close_minutes",
    "birthday": "runs with the daily job",
    "after_purchase": "runs with the daily job; set days",
    "replenishment": "runs with the daily job; set lead_days",
    "logistics_abnormal": "runs with the daily job",
    "bad_review_alert": "an alert goes to the group at once",
}
WEEK_MINUTES = 7 * 1440
# Delay bounds in minutes; the payment reminder's are those an established Taobao CRM (Shuyun) allows.
DELAY_RANGE: dict[str, tuple[int, int]] = {
    "payment_reminder": (10, 2880),
    "payment_reminder_second": (10, 4320),
}
# Rule-specific whole numbers: field → (low, high, default from DOMAIN.md).
PARAMS: dict[str, dict[str, tuple[int, int, int]]] = {
    "payment_reminder": {"flash_sale_delay_minutes": (10, 25, 15)},
    "payment_reminder_preclose": {"before_close_minutes": (30, 1440, 120)},
    "after_purchase": {"days": (1, 365, 7)},
    "replenishment": {"lead_days": (0, 60, 7)},
    "logistics_abnormal": {"no_update_days": (1, 30, 3)},
    "bad_review_alert": {"max_rating": (1, 4, 3)},
}
TABLE_FIELDS = {  # rule-specific mappings
    "logistics_abnormal": "normal_days",
    "replenishment": "cycle_days",
}
ANY = "*"  # any carrier / any province in normal_days
COMMON_DEFAULTS: dict[str, Any] = {
    "high_value_yuan": 1000,
    "remote_provinces": ["新疆", "西藏", "青海", "内蒙古", "甘肃", "宁夏", "海南"],
    "flash_sale_sources": ["flash_sale"],
    "unpaid_close_hours": 72,
    "flash_sale_close_minutes": 30,
    "late_limit_hours": 12,
}


class CareRuleError(ValueError):
    pass


class Segment(StrEnum):
    """Wording variants a template may have; the rule's `default` text covers the rest."""

    NEW = "new"
    RETURNING = "returning"
    REPEAT = "repeat"
    REMOTE = "remote"
    HIGH_AMOUNT = "high_amount"


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_no: str
    customer_id: str
    status: str  # crm.events statuses: created, paid, shipped, signed, closed, refunded
    created_at: datetime
    amount_cents: int | None = None
    source: str | None = None
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    signed_at: datetime | None = None
    carrier: str | None = None
    province: str | None = None
    tracking_no: str | None = None
    closes_at: datetime | None = None  # when the platform closes it unpaid, if the event says
    last_tracking_at: datetime | None = None  # latest tracking update, if the shop reports them


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    customer_id: str
    purchases: int = 0  # paid purchases so far; an order still unpaid is not counted
    birthday: date | None = None
    last_purchase_at: datetime | None = None
    province: str | None = None


@dataclass(frozen=True, slots=True)
class PurchaseFacts:
    """A consumable bought (a line of an order), for replenishment."""

    customer_id: str
    order_no: str
    product: str
    quantity: int
    purchased_at: datetime
    cycle_days: int | None = None  # days one unit lasts; else the table's cycle_days for the product


@dataclass(frozen=True, slots=True)
class PlannedCare:
    rule: str
    customer_id: str
    order_no: str | None
    due_at: datetime
    channel: str
    segments: tuple[str, ...]  # most specific first
    marketing: bool
    automatic: bool
    key: str  # the same plan made twice (a replayed event, a second daily run) has the same key
    immediate: bool = False  # an alert for the group now, never queued
    values: Mapping[str, str] = field(default_factory=dict)  # rule-specific placeholders


@dataclass(frozen=True, slots=True)
class CareRule:
    key: str
    on: str
    delay: timedelta
    channel: str
    enabled: bool
    automatic: bool
    marketing: bool
    params: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CareTable:
    rules: Mapping[str, CareRule]
    high_value_cents: int | None
    remote_provinces: tuple[str, ...]
    flash_sale_sources: frozenset[str]
    unpaid_close: timedelta
    flash_sale_close: timedelta
    late_limit: timedelta
    normal_days: Mapping[str, Mapping[str, int]]
    cycle_days: Mapping[str, int]

    def rule(self, key: str) -> CareRule:
        return self.rules[key]

    def is_flash_sale(self, order: OrderFacts) -> bool:
        return order.source in self.flash_sale_sources

    def is_high_value(self, order: OrderFacts) -> bool:
        return (
            self.high_value_cents is not None
            and order.amount_cents is not None
            and order.amount_cents >= self.high_value_cents
        )

    def is_remote(self, province: str | None) -> bool:
        return _province_key(province, self.remote_provinces) is not None

    def closes_at(self, order: OrderFacts) -> datetime:
        """When the platform closes the order unpaid: the event's time, else the table's default."""
        if order.closes_at is not None:
            return order.closes_at
        return order.created_at + (self.flash_sale_close if self.is_flash_sale(order) else self.unpaid_close)

    def normal_days_for(self, carrier: str | None, province: str | None) -> int:
        """Most specific first: carrier × province, any carrier × province, carrier's default, default."""
        by_carrier = self.normal_days.get(carrier or "", {})
        anyone = self.normal_days[ANY]
        for row in (by_carrier, anyone):
            found = _province_key(province, tuple(p for p in row if p != ANY))
            if found is not None:
                return row[found]
        return by_carrier.get(ANY, anyone[ANY])


def _province_key(province: str | None, keys: Iterable[str]) -> str | None:
    # "新疆维吾尔自治区" and "新疆" are the same destination: the short name is the key.
    if not province:
        return None
    return _matching_key(province, tuple(keys))


@lru_cache(maxsize=4096)  # a few dozen provinces × a few key lists: every event asks again
def _matching_key(province: str, keys: tuple[str, ...]) -> str | None:
    text = province.strip()
    for k in keys:
        if text.startswith(k):
            return k
    return None


# Parsing


def _int(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CareRuleError(f"{where}: a whole number between {low} and {high}")
    if not low <= value <= high:
        raise CareRuleError(f"{where}: must be between {low} and {high}")
    return value


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise CareRuleError(f"{where}: true or false")
    return value


def _names(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CareRuleError(f"{where}: a list of names")
    return tuple(v.strip() for v in value)


def _delay(key: str, spec: dict[str, Any]) -> timedelta:
    given = [f for f in ("delay_minutes", "delay_hours") if f in spec]
    if key in NO_DELAY:
        if given:
            raise CareRuleError(f"{key}.{given[0]}: this rule has no delay ({NO_DELAY[key]})")
        return timedelta(0)
    if len(given) != 1:
        raise CareRuleError(f"{key}: give exactly one of delay_minutes or delay_hours")
    low, high = DELAY_RANGE.get(key, (0, WEEK_MINUTES))
    per = 60 if given[0] == "delay_hours" else 1
    value = spec[given[0]]
    _int(f"{key}.{given[0]}", value, 0, high)
    if not low <= value * per <= high:
        raise CareRuleError(f"{key}.{given[0]}: must be between {low} and {high} minutes")
    return timedelta(minutes=value * per)


def _days_table(where: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise CareRuleError(f"{where}: a mapping of name → days")
    return {str(k): _int(f"{where}.{k}", v, 1, 730) for k, v in value.items()}


def _normal_days(key: str, value: Any) -> dict[str, dict[str, int]]:
    where = f"{key}.normal_days"
    if not isinstance(value, dict) or not isinstance(value.get(ANY), dict) or ANY not in value[ANY]:
        raise CareRuleError(f"{where}: carrier → province → days, with a '*' carrier holding a '*' default")
    return {str(carrier): _days_table(f"{where}.{carrier}", row) for carrier, row in value.items()}


def _rule(key: str, spec: Any) -> tuple[CareRule, Any]:
    if not isinstance(spec, dict):
        raise CareRuleError(f"{key}: expected a mapping with enabled, channel and a delay")
    params = PARAMS.get(key, {})
    table_field = TABLE_FIELDS.get(key)
    allowed = {"trigger", "enabled", "automatic", "channel", "marketing", "delay_minutes", "delay_hours"}
    unknown = set(spec) - allowed - set(params) - {table_field}
    if unknown:
        raise CareRuleError(f"{key}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    if spec.get("trigger", TRIGGERS[key]) != TRIGGERS[key]:
        raise CareRuleError(f"{key}.trigger: this rule is triggered by {TRIGGERS[key]}")
    channel = spec.get("channel", "webhook")
    if channel not in CHANNELS:
        raise CareRuleError(f"{key}.channel: one of {', '.join(CHANNELS)}")
    rule = CareRule(
        key=key,
        on=TRIGGERS[key],
        delay=_delay(key, spec),
        channel=channel,
        enabled=_bool(f"{key}.enabled", spec.get("enabled", True)),
        automatic=_bool(f"{key}.automatic", spec.get("automatic", False)),
        marketing=_bool(f"{key}.marketing", spec.get("marketing", key in MARKETING_RULES)),
        params={n: _int(f"{key}.{n}", spec.get(n, d), lo, hi) for n, (lo, hi, d) in params.items()},
    )
    return rule, spec.get(table_field) if table_field else None


def _common(data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CareRuleError("common: expected a mapping")
    unknown = set(data) - set(COMMON_DEFAULTS)
    if unknown:
        raise CareRuleError(f"common: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    merged = {**COMMON_DEFAULTS, **data}
    high = merged["high_value_yuan"]
    return {
        "high_value_cents": None if high is None else _int("common.high_value_yuan", high, 1, 10**7) * 100,
        "remote_provinces": _names("common.remote_provinces", merged["remote_provinces"]),
        "flash_sale_sources": frozenset(_names("common.flash_sale_sources", merged["flash_sale_sources"])),
        "unpaid_close": timedelta(
            hours=_int("common.unpaid_close_hours", merged["unpaid_close_hours"], 1, 720)
        ),
        "flash_sale_close": timedelta(
            minutes=_int("common.flash_sale_close_minutes", merged["flash_sale_close_minutes"], 10, 1440)
        ),
        "late_limit": timedelta(hours=_int("common.late_limit_hours", merged["late_limit_hours"], 1, 168)),
    }


def parse_care_rules(data: Any) -> CareTable:
    """Validate the table read from YAML; an error names the row and field. Every rule is listed."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        raise CareRuleError("expected a top-level 'rules:' mapping (and optionally 'common:')")
    unknown_top = set(data) - {"rules", "common"}
    if unknown_top:
        raise CareRuleError(f"unknown top-level field(s) {', '.join(sorted(map(str, unknown_top)))}")
    rows = data["rules"]
    unknown = [str(k) for k in rows if k not in TRIGGERS]
    if unknown:
        raise CareRuleError(f"{unknown[0]}: not a care rule (rules are {', '.join(RULE_KEYS)})")
    missing = [k for k in RULE_KEYS if k not in rows]
    if missing:
        raise CareRuleError(
            f"missing rule(s) {', '.join(missing)}: list each one (enabled: false turns it off)"
        )
    parsed = {k: _rule(k, rows[k]) for k in RULE_KEYS}
    normal_days = parsed["logistics_abnormal"][1]
    cycles = parsed["replenishment"][1]
    return CareTable(
        rules={k: rule for k, (rule, _) in parsed.items()},
        normal_days=_normal_days(
            "logistics_abnormal", normal_days if normal_days is not None else {ANY: {ANY: 4}}
        ),
        cycle_days={} if not cycles else _days_table("replenishment.cycle_days", cycles),
        **_common(data.get("common")),
    )


# Deciding


def _aware(at: datetime, name: str = "now") -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime (UTC)")
    return at


def _badge(purchases: int) -> str:
    # PROSPECT never reaches the wording: the order in hand makes them at least a new buyer.
    return str(badge_for(max(purchases, 1)))


def _segments(
    table: CareTable, order: OrderFacts | None, customer: CustomerFacts | None, purchases: int
) -> tuple[str, ...]:
    found: list[str] = []
    if order is not None and table.is_high_value(order):
        found.append(Segment.HIGH_AMOUNT)
    province = (order.province if order is not None else None) or (customer.province if customer else None)
    if table.is_remote(province):
        found.append(Segment.REMOTE)
    found.append(_badge(purchases))
    return tuple(str(s) for s in found)


def _plan(
    rule: CareRule,
    customer_id: str,
    order_no: str | None,
    due: datetime,
    segments: tuple[str, ...],
    key_suffix: str,
    *,
    channel: str | None = None,
    values: Mapping[str, str] | None = None,
) -> PlannedCare:
    return PlannedCare(
        rule=rule.key,
        customer_id=customer_id,
        order_no=order_no,
        due_at=due,
        channel=channel or rule.channel,
        segments=segments,
        marketing=rule.marketing,
        automatic=rule.automatic,
        key=f"{rule.key}:{key_suffix}",
        immediate=rule.key == "bad_review_alert",
        values=dict(values or {}),
    )


def _payment_reminders(order: OrderFacts, customer: CustomerFacts, table: CareTable) -> list[PlannedCare]:
    if not still_applies("payment_reminder", order):
        return []
    closes = table.closes_at(order)
    first = table.rule("payment_reminder")
    flash = table.is_flash_sale(order)
    first_due = order.created_at + (
        timedelta(minutes=first.params["flash_sale_delay_minutes"]) if flash else first.delay
    )
    preclose = table.rule("payment_reminder_preclose")
    dues = {
        "payment_reminder": first_due,
        "payment_reminder_second": order.created_at + table.rule("payment_reminder_second").delay,
        "payment_reminder_preclose": closes - timedelta(minutes=preclose.params["before_close_minutes"]),
    }
    # The unpaid order is the purchase being reminded: a buyer with one earlier purchase is returning.
    segments = _segments(table, order, customer, customer.purchases + 1)
    channel = "agent_task" if table.is_high_value(order) else None  # a big order gets a phone call
    planned = []
    for key, due in dues.items():
        rule = table.rule(key)
        # A later reminder must come after the first and before the order is gone (a flash-sale
        # order closes in 30 minutes: its 15-minute reminder is the only one).
        if not rule.enabled or due >= closes or (key != "payment_reminder" and due <= first_due):
            continue
        planned.append(
            _plan(rule, order.customer_id, order.order_no, due, segments, order.order_no, channel=channel)
        )
    return planned


# Event → (rule, the order's time the delay counts from).
_EVENT_RULES: dict[str, tuple[str, Callable[[OrderFacts], datetime | None]]] = {
    "order.closed": ("order_closed", lambda o: None),
    "order.shipped": ("shipped", lambda o: o.shipped_at),
    "order.paid": ("shipping_delayed", lambda o: o.paid_at),
    "order.arrived": ("arrived", lambda o: None),
    "order.signed": ("signed", lambda o: o.signed_at),
    "order.refunded": ("refunded", lambda o: None),
}


def _order_values(order: OrderFacts) -> dict[str, str]:
    values = {"order_no": order.order_no}
    if order.amount_cents is not None:
        values["amount"] = f"{order.amount_cents // 100}.{order.amount_cents % 100:02d}"  # yuan
    for name in ("carrier", "tracking_no", "province"):
        if getattr(order, name):
            values[name] = getattr(order, name)
    return values


def on_event(
    event_type: str,
    order: OrderFacts,
    customer: CustomerFacts,
    now: datetime,
    table: CareTable,
    *,
    rating: int | None = None,
) -> list[PlannedCare]:
    """The care messages a shop event plans, given the order as it stands after the event.

    A plan due more than the table's late_limit ago is dropped: a replayed or delayed event must not
    send yesterday's news. One due a little in the past goes now.
    """
    _aware(now)
    if event_type == "review.posted":
        return _bad_review(order, customer, now, table, rating)
    if event_type == "order.created":
        planned = _payment_reminders(order, customer, table)
    elif event_type in _EVENT_RULES:
        key, since = _EVENT_RULES[event_type]
        rule = table.rule(key)
        if not rule.enabled or not still_applies(key, order):
            return []
        due = (since(order) or now) + rule.delay
        segments = _segments(table, order, customer, customer.purchases)
        planned = [_plan(rule, order.customer_id, order.order_no, due, segments, order.order_no)]
    else:
        return []
    fresh = [p for p in planned if now - p.due_at <= table.late_limit]
    values = _order_values(order)
    return [_finished(p, max(p.due_at, now), {**values, **p.values}) for p in fresh]


def _finished(p: PlannedCare, due_at: datetime, values: Mapping[str, str]) -> PlannedCare:
    # What dataclasses.replace does, without re-reading the fields on every call: it was a sixth
    # of the event path's care planning.
    return PlannedCare(
        rule=p.rule,
        customer_id=p.customer_id,
        order_no=p.order_no,
        due_at=due_at,
        channel=p.channel,
        segments=p.segments,
        marketing=p.marketing,
        automatic=p.automatic,
        key=p.key,
        immediate=p.immediate,
        values=values,
    )


def _bad_review(
    order: OrderFacts, customer: CustomerFacts, now: datetime, table: CareTable, rating: int | None
) -> list[PlannedCare]:
    if rating is None:
        raise ValueError("review.posted needs the rating")
    rule = table.rule("bad_review_alert")
    if not rule.enabled or rating > rule.params["max_rating"]:
        return []
    segments = _segments(table, order, customer, customer.purchases)
    values = {**_order_values(order), "rating": str(rating)}
    return [_plan(rule, order.customer_id, order.order_no, now, segments, order.order_no, values=values)]


# Whether a planned message still makes sense, given the order as it stands now.
_STILL: dict[str, Callable[[OrderFacts], bool]] = {
    **{k: (lambda o: o.status == "created" and o.paid_at is None) for k in PAYMENT_RULES},
    "order_closed": lambda o: o.status == "closed" and o.paid_at is None,
    "shipped": lambda o: o.status == "shipped",  # signed or refunded meanwhile: old news
    "shipping_delayed": lambda o: o.status == "paid" and o.shipped_at is None,
    "arrived": lambda o: o.status == "shipped",
    "signed": lambda o: o.status == "signed",
    "refunded": lambda o: o.status == "refunded",
    "logistics_abnormal": lambda o: o.status == "shipped" and o.signed_at is None,
}


def still_applies(rule: str, order: OrderFacts | None, *, now: datetime | None = None) -> bool:
    """Re-check a planned message against the order now: an order paid meanwhile drops a payment
    reminder, a shipped one drops shipping_delayed. Rules about the customer (birthday, …) have no
    order and always apply; so does the bad review alert."""
    if rule not in TRIGGERS:
        raise KeyError(rule)
    check = _STILL.get(rule)
    if check is None or order is None:
        return True
    if not check(order):
        return False
    # An unpaid order past the platform's close time is gone even before its closed event arrives.
    return not (
        rule in PAYMENT_RULES and now is not None and order.closes_at is not None and now >= order.closes_at
    )


def one_reminder_a_day(
    candidates: Sequence[PlannedCare], booked: Mapping[str, Iterable[datetime]], zone: ZoneInfo
) -> list[PlannedCare]:
    """Payment reminders kept to one per customer per calendar day (in `zone`), however many orders.

    `booked`: per customer, the due times of payment reminders already queued or sent. Earlier-due
    candidates win; other rules pass through untouched; the order of `candidates` is kept.
    """
    taken = {(cid, at.astimezone(zone).date()) for cid, times in booked.items() for at in times}
    dropped: set[int] = set()
    payment = sorted(
        (i for i, p in enumerate(candidates) if p.rule in PAYMENT_RULES), key=lambda i: candidates[i].due_at
    )
    for i in payment:
        day = (candidates[i].customer_id, candidates[i].due_at.astimezone(zone).date())
        if day in taken:
            dropped.add(i)
        taken.add(day)
    return [p for i, p in enumerate(candidates) if i not in dropped]


# The daily job


def _is_birthday(birthday: date, today: date) -> bool:
    # 29 February is celebrated on the 28th in other years.
    if (birthday.month, birthday.day) == (2, 29) and not _leap(today.year):
        return (today.month, today.day) == (2, 28)
    return (birthday.month, birthday.day) == (today.month, today.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthdays(
    customers: Iterable[CustomerFacts], now: datetime, today: date, table: CareTable
) -> list[PlannedCare]:
    rule = table.rule("birthday")
    return [
        _plan(
            rule, c.customer_id, None, now, _segments(table, None, c, c.purchases), f"{c.customer_id}:{today}"
        )
        for c in customers
        # A greeting from a shop they never bought from reads like spam.
        if rule.enabled and c.birthday is not None and c.purchases >= 1 and _is_birthday(c.birthday, today)
    ]


def _after_purchase(
    customers: Iterable[CustomerFacts], now: datetime, today: date, zone: ZoneInfo, table: CareTable
) -> list[PlannedCare]:
    rule = table.rule("after_purchase")
    days = rule.params["days"]
    return [
        _plan(
            rule,
            c.customer_id,
            None,
            now,
            _segments(table, None, c, c.purchases),
            f"{c.customer_id}:{today}",
            values={"days": str(days)},
        )
        for c in customers
        if rule.enabled
        and c.last_purchase_at is not None
        and (today - c.last_purchase_at.astimezone(zone).date()).days == days
    ]


def replenishment_day(purchase: PurchaseFacts, table: CareTable, zone: ZoneInfo) -> date | None:
    """The day to contact the buyer: cycle × quantity days after the purchase, less lead_days; None
    without a cycle, or when that day would not come after the purchase day."""
    cycle = purchase.cycle_days or table.cycle_days.get(purchase.product)
    if not cycle or purchase.quantity < 1:
        return None
    bought = purchase.purchased_at.astimezone(zone).date()
    lead = table.rule("replenishment").params["lead_days"]
    day = bought + timedelta(days=cycle * purchase.quantity - lead)
    return day if day > bought else None


def _replenishment(
    purchases: Iterable[PurchaseFacts],
    customers: Mapping[str, CustomerFacts],
    now: datetime,
    today: date,
    zone: ZoneInfo,
    table: CareTable,
) -> list[PlannedCare]:
    rule = table.rule("replenishment")
    if not rule.enabled:
        return []
    latest: dict[tuple[str, str], PurchaseFacts] = {}
    for p in purchases:  # a later purchase of the same product restarts the clock
        known = latest.get((p.customer_id, p.product))
        if known is None or p.purchased_at > known.purchased_at:
            latest[(p.customer_id, p.product)] = p
    planned = []
    for p in latest.values():
        day = replenishment_day(p, table, zone)
        # Any day from the contact day until it runs out (at least the day itself): a missed daily
        # run still catches it; the key (per purchase) keeps it to one message.
        window = timedelta(days=max(rule.params["lead_days"], 1))
        if day is None or not day <= today < day + window:
            continue
        customer = customers.get(p.customer_id)
        segments = _segments(table, None, customer, customer.purchases if customer else 1)
        key = f"{p.customer_id}:{p.product}:{p.order_no}"
        planned.append(
            _plan(rule, p.customer_id, p.order_no, now, segments, key, values={"product": p.product})
        )
    return planned


def _logistics(
    orders: Iterable[OrderFacts], customers: Mapping[str, CustomerFacts], now: datetime, table: CareTable
) -> list[PlannedCare]:
    rule = table.rule("logistics_abnormal")
    if not rule.enabled:
        return []
    stale_after = timedelta(days=rule.params["no_update_days"])
    planned = []
    for o in orders:
        if o.shipped_at is None or not still_applies(rule.key, o):
            continue
        normal = table.normal_days_for(o.carrier, o.province)
        late = now - o.shipped_at > timedelta(days=normal)
        silent = o.last_tracking_at is not None and now - o.last_tracking_at > stale_after
        if not (late or silent):
            continue
        customer = customers.get(o.customer_id)
        segments = _segments(table, o, customer, customer.purchases if customer else 1)
        values = {**_order_values(o), "days": str(normal)}
        planned.append(_plan(rule, o.customer_id, o.order_no, now, segments, o.order_no, values=values))
    return planned


def daily(
    now: datetime,
    table: CareTable,
    zone: ZoneInfo,
    *,
    customers: Iterable[CustomerFacts] = (),
    orders: Iterable[OrderFacts] = (),
    purchases: Iterable[PurchaseFacts] = (),
) -> list[PlannedCare]:
    """The daily job's plans on the team's calendar day of `now`: birthdays, N days after the latest
    purchase, replenishment, and shipped parcels over their normal days (or with silent tracking)."""
    today = _aware(now).astimezone(zone).date()
    customers = list(customers)
    by_id = {c.customer_id: c for c in customers}
    return [
        *_birthdays(customers, now, today, table),
        *_after_purchase(customers, now, today, zone, table),
        *_replenishment(purchases, by_id, now, today, zone, table),
        *_logistics(orders, by_id, now, table),
    ]
