"""Import rows parsed into the tuples the importer writes: plain Python on strings.

No SQLAlchemy here: this is all the parser process (storage.import_batches) imports, so it starts
in a fraction of a second and small. A bad value raises RowError with the reason for the error file.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from crm.lookup import normalize_phone
from crm.sending import zone_name
from storage import lengths
from storage.columns import resolve_header
from storage.import_batches import BatchParser, serve_batches
from storage.import_files import ErrorFile, RowSource, open_table
from storage.import_values import (
    FLASH_SALE,
    FLASH_SALE_NAMES,
    RowError,
    TimeParser,
    bounded_text,
    derive_status,
    identifier,
    parse_amount,
    parse_gender,
    parse_items,
    parse_status,
)

# ---------------------------------------------------------------------------------------------
# Customers.

CUSTOMER_FIELDS = (
    "nickname",
    "name",
    "phone",
    "email",
    "gender",
    "province",
    "city",
    "birthday",
    "created_at",
)


class CustomerRows:
    """Parses customer rows (in the importing process or in the parser process)."""

    def __init__(self, fields: dict[str, int], width: int, parse_time: TimeParser) -> None:
        self.time = parse_time
        # Every row gets one extra "" cell at index `width`: absent columns read that.
        self.pick = itemgetter(
            *(fields.get(name, width) for name in ("customer_id", *CUSTOMER_FIELDS, "zone"))
        )

    def parse(self, row: list[str], line: int) -> tuple[Any, ...]:
        ext, nickname, name, phone, email, gender, province, city, birthday, created, zone = self.pick(row)
        phone, gender = phone.strip(), gender.strip()
        normal_phone = None
        if phone:
            normal_phone = normalize_phone(phone)
            if normal_phone is None:
                raise RowError(f"implausible phone: {phone!r}")
        try:
            created_at = self.time(created.strip())
        except RowError as exc:
            raise RowError(f"created_at: {exc.reason}") from None
        try:
            zone_text = zone_name(zone) if zone else None
        except ValueError as exc:
            raise RowError(f"zone: {exc}") from None
        return (
            identifier(ext, "customer_id", lengths.EXTERNAL_ID),
            bounded_text(nickname, "nickname", lengths.NICKNAME),
            bounded_text(name, "name", lengths.PERSON_NAME),
            normal_phone,
            bounded_text(email, "email", lengths.EMAIL),
            parse_gender(gender) if gender else None,
            bounded_text(province, "province", lengths.PROVINCE),
            bounded_text(city, "city", lengths.CITY),
            self.time.date(birthday.strip()),
            created_at,
            zone_text,
        )


# ---------------------------------------------------------------------------------------------
# Orders.

ORDER_TIMES = ("created_at", "paid_at", "shipped_at", "signed_at", "closed_at", "refunded_at")
# A parsed order starts like ORDER_ROW (order_no … province, status given or derived, refunded_at
# given or inferred), then: customer external id, flags (status given, refunded_at inferred),
# items (None: cell empty), line.
P_EXT, P_STATUS_GIVEN, P_REFUND_INFERRED, P_ITEMS, P_LINE = 13, 14, 15, 16, 17
_WORDS_LIMIT = 10_000
_STATUS_AS_IS = {status: status for status in ("created", "paid", "shipped", "signed", "closed", "refunded")}


def settle_status(status: str | None, times: list[Any]) -> str:
    """The given status, or the one the timestamps reach; a refund with no time gets one (in place)."""
    status = status or derive_status(*times[1:])
    if status == "refunded" and times[5] is None:
        # Refunded with no refund time: the closing time, else the latest step the order reached.
        times[5] = times[4] or max(t for t in times[:4] if t is not None)
    return status


class OrderRows:
    """Parses order rows (in the importing process or in the parser process)."""

    def __init__(self, fields: dict[str, int], width: int, parse_time: TimeParser) -> None:
        self.time = parse_time
        names = ("order_id", "customer_id", *ORDER_TIMES, "status", "amount", "source", "carrier",
                 "tracking_no", "province", "items")  # fmt: skip
        self.pick = itemgetter(*(fields.get(name, width) for name in names))
        # One object per distinct source / carrier / province: a batch sent from the parser process
        # then carries each once (pickle refers back to it), and the importing process builds less.
        self.words: dict[str | None, str | None] = {}

    # -- parsing: the hot loop; the common case inline, the rest in helpers ------------------

    def parse(self, row: list[str], line: int) -> tuple[Any, ...]:
        (order_no, ext, created, paid, shipped, signed, closed, refunded, status, amount, source, carrier,
         tracking, province, items) = self.pick(row)  # fmt: skip
        when = self.time
        try:
            times = [
                when(created),
                when(paid) if paid else None,
                when(shipped) if shipped else None,
                when(signed) if signed else None,
                when(closed) if closed else None,
                when(refunded) if refunded else None,
            ]
        except RowError:
            raise self._time_error(row) from None
        created_at = times[0]
        if created_at is None:
            raise RowError("missing created_at")
        for value in times:
            if value is not None and value < created_at:
                raise before_created(times)
        given = _STATUS_AS_IS.get(status) or (parse_status(status) if status.strip() else None)
        refund_inferred = times[5] is None
        settled = settle_status(given, times)
        refund_inferred = refund_inferred and times[5] is not None

        order_no, ext, tracking = order_no.strip(), ext.strip(), tracking.strip()
        if not order_no or order_no[0] in "='" or len(order_no) > lengths.ORDER_NO:
            order_no = identifier(order_no, "order_id", lengths.ORDER_NO)
        if not ext or ext[0] in "='" or len(ext) > lengths.EXTERNAL_ID:
            ext = identifier(ext, "customer_id", lengths.EXTERNAL_ID)
        if tracking and (tracking[0] in "='" or len(tracking) > lengths.TRACKING_NO):
            tracking = identifier(tracking, "tracking_no", lengths.TRACKING_NO)
        source = source.strip()
        if source in FLASH_SALE_NAMES or source.casefold() in FLASH_SALE_NAMES:
            source = FLASH_SALE
        source = bounded_text(source, "source", lengths.SOURCE)
        carrier = bounded_text(carrier, "carrier", lengths.CARRIER)
        province = bounded_text(province, "province", lengths.PROVINCE)
        words = self.words
        if len(words) > _WORDS_LIMIT:
            words.clear()
        return (
            order_no,
            *times,
            settled,
            parse_amount(amount),
            words.setdefault(source, source),
            words.setdefault(carrier, carrier),
            tracking or None,
            words.setdefault(province, province),
            ext,
            given is not None,
            refund_inferred,
            parse_items(items) if items else None,
            line,
        )

    def _time_error(self, row: list[str]) -> RowError:
        """Which time cell is broken, and how (the slow path of parse)."""
        cells = self.pick(row)[2:8]
        for field, text in zip(ORDER_TIMES, cells, strict=True):
            try:
                self.time(text)
            except RowError as exc:
                return RowError(f"{field}: {exc.reason}")
        return RowError("bad date")  # not reached: parse saw one fail


def before_created(times: Sequence[Any]) -> RowError:
    for field, value in zip(ORDER_TIMES[1:], times[1:], strict=True):
        if value is not None and value < times[0]:
            return RowError(f"{field} is before created_at")
    return RowError("a time is before created_at")


# ---------------------------------------------------------------------------------------------
# One file's parsing, in this process or in the parser process.

ROWS: dict[str, type[CustomerRows | OrderRows]] = {"customers": CustomerRows, "orders": OrderRows}


@dataclass(frozen=True, slots=True)
class ParseJob:
    """What a parser needs, in a form the parser process can be handed."""

    kind: Literal["customers", "orders"]
    path: Path
    errors_path: Path
    batch_size: int
    zone: ZoneInfo

    def parser(self, table: RowSource, parse: Callable[[list[str], int], tuple[Any, ...]]) -> BatchParser:
        errors = ErrorFile(self.errors_path, self.path, table.header)
        # Only order rows can fail while being written (merged times), so only they keep their cells.
        return BatchParser(table, parse, errors, self.batch_size, keep_cells=self.kind == "orders")


def serve_parser(job: ParseJob, conn: Connection) -> None:
    """The parser process: parses job's file into batches for the importing process."""
    gc.disable()  # as in the importing process (_young_garbage_only); BatchParser collects
    with open_table(job.path) as table:
        fields = resolve_header(job.kind, table.header)
        rows = ROWS[job.kind](fields, len(table.header), TimeParser(job.zone))
        serve_batches(job.parser(table, rows.parse), conn)
