"""Bulk import of customers and orders from shop exports (CSV in UTF-8 / GBK, or .xlsx).

How it behaves:
- Streaming: rows are read, parsed and written in batches; memory stays flat whatever the size.
- Each batch is one transaction: its customers / orders, order items, products and the touched
  customers' running figures land together or not at all.
- Bad rows go to an error file (`<name>.errors.csv` next to the input unless told otherwise) with the
  physical line number (1 = header) and the reason; the good rows land.
- Idempotent: rows are keyed by customer.external_id / orders.order_no and upserted
  (INSERT … ON CONFLICT DO UPDATE … WHERE something differs). Importing a file twice changes nothing.
- Partial files: an empty cell, or a column the file does not have, leaves the stored value as it
  is; it never erases it. A later export can add a paid_at or an e-mail but not remove one. An order's
  items cell, when not empty, replaces that order's items.
- Times without an offset are in the team's zone (`zone`) and are stored as UTC.

Speed: per-row work is plain Python on strings (cached zone conversion, integer cents, prebuilt
column getters); a large file is parsed in a parser process (storage.import_batches) while this one
writes. Writes are driver-level executemany through the SQLAlchemy connection (SQL built with the
dialect's insert().on_conflict_do_update()), so the same code runs on SQLite and PostgreSQL.
Row ids are allocated up front (SQLite: under BEGIN IMMEDIATE; PostgreSQL: nextval), so order items
need no read-back of the orders just written. A customer's figures move by parameters computed from
the batch's new orders (one UPDATE per customer), and are recomputed from the orders
(storage.figures) when a stored order changed. On SQLite the importing connection runs without
per-row foreign key checks (see _bulk_mode), and a bulk orders import without the figure indexes
(FIGURE_INDEXES).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, event, literal_column, or_
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, Connection, Dialect, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from storage.columns import COLUMNS, FileRejected, MissingColumnsError, resolve_header
from storage.db import insert_for, sqlite_pragmas
from storage.figures import FIGURE_INDEXES, refresh_figures, restore_figure_indexes
from storage.import_batches import (
    Batch,
    Batches,
    ParserProcess,
    WriteFailure,
    collect_young_garbage,
)
from storage.import_files import open_table, sniff_encoding
from storage.import_rows import (
    CUSTOMER_FIELDS,
    ORDER_TIMES,
    P_EXT,
    P_ITEMS,
    P_LINE,
    P_REFUND_INFERRED,
    P_STATUS_GIVEN,
    CustomerRows,
    OrderRows,
    ParseJob,
    before_created,
    serve_parser,
    settle_status,
)
from storage.import_values import (
    RowError,
    TimeParser,
    derive_status,
    parse_amount,
    parse_items,
    utc_text,
)
from storage.models import Customer, Order, Product

__all__ = [
    "FileRejected",
    "ImportSummary",
    "MissingColumnsError",
    "RowError",
    "TimeParser",
    "import_file",
    "open_table",
    "parse_amount",
    "parse_items",
    "sniff_encoding",
]

TEAM_ZONE = ZoneInfo("Asia/Shanghai")
# Rows per transaction. Larger batches write each touched index page once for more rows: at 1 M
# orders 20 000 imports ~1.5x as fast as 5 000, for ~45 MB more peak memory (bench/import_rate.py).
DEFAULT_BATCH_SIZE = 20_000
# SQLite page cache of the importing connection: 16 MiB while it imports, then SQLite's default.
# (64 MiB imported 1 M orders no faster: the OS page cache serves the rest.)
BULK_CACHE_KIB = -16384
DEFAULT_CACHE_KIB = -2000

T = TypeVar("T")

_customer: Table = Customer.__table__  # type: ignore[attr-defined]
_orders: Table = Order.__table__  # type: ignore[attr-defined]
_product: Table = Product.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class ImportSummary:
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors_path: Path | None = None  # set when at least one row failed
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# SQL: built once per dialect; executed as driver SQL (executemany) through the SQLAlchemy connection.


def _utc_now_text() -> str:
    return utc_text(datetime.now(UTC))


def _pg_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _pg_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


class _Sql:
    """Dialect-specific SQL text and value conversions; everything else is shared."""

    def __init__(self, dialect: Dialect) -> None:
        if dialect.name not in ("sqlite", "postgresql"):
            raise NotImplementedError(f"import into {dialect.name} is not supported")
        self.dialect = dialect
        self.pg = dialect.name == "postgresql"
        self.for_update = " FOR UPDATE" if self.pg else ""

    def numbered(self, sql: str) -> str:
        """'?' placeholders -> '$1, $2, …' on PostgreSQL (asyncpg)."""
        if not self.pg:
            return sql
        parts = sql.split("?")
        return "".join(f"{part}${i}" if i < len(parts) else part for i, part in enumerate(parts, start=1))

    def where_in(self, column: str) -> str:
        """`column IN keys` with the keys as one parameter: the SQL text never changes, so one
        prepared statement serves every batch (IN lists of varying length would each be a new one)."""
        if self.pg:
            return f"{column} = ANY($1)"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def in_params(self, keys: Sequence[Any]) -> tuple[Any, ...]:
        return (list(keys),) if self.pg else (json.dumps(keys, ensure_ascii=False),)

    def time(self, value: str | None) -> Any:
        return _pg_time(value) if self.pg else value

    def insert(
        self,
        table: Table,
        columns: Sequence[str],
        key: str,
        *,
        update: Sequence[str] = (),
        constants: dict[str, str] | None = None,
    ) -> str:
        """INSERT … ON CONFLICT (key) DO UPDATE SET update = excluded … WHERE any of them differs
        (DO NOTHING without `update`). Row tuples follow `columns`, which must be in table order."""
        values: dict[str, Any] = {name: bindparam(name) for name in columns}
        values.update({name: literal_column(sql) for name, sql in (constants or {}).items()})
        stmt = insert_for(self.dialect)(table).values(values)
        if update:
            changed = [name for name in update if name != "updated_at"]
            stmt = stmt.on_conflict_do_update(
                index_elements=[key],
                set_={name: stmt.excluded[name] for name in update},
                where=or_(*(table.c[name].is_distinct_from(stmt.excluded[name]) for name in changed)),
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=[key])
        compiled = stmt.compile(dialect=self.dialect)
        if tuple(compiled.positiontup or ()) != tuple(columns):
            raise AssertionError(f"parameters come as {compiled.positiontup}, not {columns}")
        return compiled.string


class _Db:
    """One batch's connection: fetches and executemany with the dialect's SQL."""

    sql: _Sql

    async def rows(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        """The rows one statement returns (none for a statement returning nothing)."""
        raise NotImplementedError

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each parameter row (executemany)."""
        raise NotImplementedError

    async def refresh_figures(self, customer_pks: set[int]) -> None:
        raise NotImplementedError

    async def begin(self) -> None:
        if not self.sql.pg:
            # Take SQLite's write lock now: the ids allocated below stay ours until commit.
            await self.rows("BEGIN IMMEDIATE", ())

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.rows(self.sql.numbered(sql), tuple(params))

    async def fetch_in(self, template: str, column: str, keys: Sequence[Any]) -> list[Any]:
        """Rows of `template` (with a `{where}` slot) WHERE column IN keys."""
        if not keys:
            return []
        return await self.rows(template.format(where=self.sql.where_in(column)), self.sql.in_params(keys))

    async def allocate_ids(self, table: str, count: int) -> list[int]:
        """`count` fresh primary keys for explicit inserts."""
        if count == 0:
            return []
        if self.sql.pg:
            rows = await self.fetch(
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                "FROM generate_series(1, CAST(? AS INTEGER))",
                (count,),
            )
            return [row[0] for row in rows]
        (top,) = (await self.fetch(f"SELECT coalesce(max(id), 0) FROM {table}"))[0]
        return list(range(top + 1, top + 1 + count))


class _AsyncDb(_Db):
    """Through the async driver: PostgreSQL (and SQLite without a database file)."""

    def __init__(self, conn: AsyncConnection, sql: _Sql) -> None:
        self.conn, self.sql = conn, sql

    async def rows(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        result = await self.conn.exec_driver_sql(sql, tuple(params))
        return list(result.all()) if result.returns_rows else []

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.conn.exec_driver_sql(sql, list(rows))

    async def refresh_figures(self, customer_pks: set[int]) -> None:
        await refresh_figures(self.conn, customer_pks)


class _ThreadDb(_Db):
    """Through a synchronous connection, for a batch written by one call in a worker thread.

    Its awaitables complete at once, so the (shared, async) batch code runs to its end in one
    `_finish` call, without an event loop and without a thread hop per statement."""

    def __init__(self, conn: Connection, sql: _Sql) -> None:
        self.conn, self.sql = conn, sql
        # The sqlite3 connection itself, inside the transaction the SQLAlchemy connection began:
        # plain tuples back, and no per-statement overhead (a batch runs ~10 statements over
        # 20 000 rows, and SQLAlchemy's rows cost ~5 % of the import).
        self.raw = conn.connection.driver_connection

    async def rows(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self.raw.execute(sql, params).fetchall()

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(sql, rows)

    async def refresh_figures(self, customer_pks: set[int]) -> None:
        await refresh_figures(cast(AsyncConnection, _AwaitableConnection(self.conn)), customer_pks)


class _AwaitableConnection:
    """A synchronous connection behind AsyncConnection.execute, for storage.figures' async code."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def execute(self, stmt: Any, params: Any = None) -> Result[Any]:
        return self.conn.execute(stmt, params)


def _finish(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine whose awaits all complete at once (a _ThreadDb's) to its end, synchronously."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a batch write awaited something other than its synchronous connection")


def _zeros(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, "0")


# The customer row's NOT NULL counters, for inserts that do not set them.
_COUNTER_ZEROS = _zeros(
    "orders_count", "purchases", "total_spent_cents", "max_payment_cents", "contacted_count",
    "responded_count",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Customers.

# A customer write, in the model's column order: external_id, the fields, id, zone, updated_at. A parsed
# row ends with the zone, the field added last.
_CUSTOMER_WRITE = ("external_id", *CUSTOMER_FIELDS, "id", "zone", "updated_at")


class _Customers(CustomerRows):
    """Customer rows, and the writing of batches of them."""

    def __init__(self, fields: dict[str, int], width: int, parse_time: TimeParser, sql: _Sql) -> None:
        super().__init__(fields, width, parse_time)
        self.sql = sql
        self.upsert_sql = sql.insert(
            _customer, _CUSTOMER_WRITE, "external_id", update=(*CUSTOMER_FIELDS, "updated_at", "zone"),
            constants=_COUNTER_ZEROS,
        )  # fmt: skip
        self.select_sql = (
            "SELECT id, external_id, "
            + ", ".join((*CUSTOMER_FIELDS, "zone"))
            + " FROM customer WHERE {where}"
            + sql.for_update
        )

    async def write(
        self, db: _Db, batch: list[tuple[Any, ...]], summary: ImportSummary, failures: list[WriteFailure]
    ) -> None:
        converted = [self._to_db(rec) for rec in batch]
        stored = await db.fetch_in(self.select_sql, "external_id", [rec[0] for rec in converted])
        existing = {row[1]: tuple(row) for row in stored}
        ids = iter(await db.allocate_ids("customer", sum(1 for rec in converted if rec[0] not in existing)))
        now = self.sql.time(_utc_now_text())
        writes: list[tuple[Any, ...]] = []
        for rec in converted:
            old = existing.get(rec[0])
            if old is None:
                writes.append((*rec[:-1], next(ids), rec[-1], now))
                summary.inserted += 1
                continue
            merged = tuple(n if n is not None else o for n, o in zip(rec[1:], old[2:], strict=True))
            if merged == old[2:]:
                summary.unchanged += 1
            else:
                writes.append((rec[0], *merged[:-1], old[0], merged[-1], now))
                summary.updated += 1
        await db.many(self.upsert_sql, writes)

    def _to_db(self, rec: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self.sql.pg:
            return rec
        return (*rec[:8], _pg_date(rec[8]), _pg_time(rec[9]), rec[10])


# ---------------------------------------------------------------------------------------------
# Orders.

# A stored order row, in table order (the upsert's parameters and the SELECT of stored orders).
ORDER_ROW = (
    "order_no", *ORDER_TIMES, "status", "amount_cents", "source", "carrier", "tracking_no", "province", "id",
    "customer_pk",
)  # fmt: skip
_O_CREATED, _O_PAID, _O_REFUNDED, _O_STATUS, _O_AMOUNT, _O_ID, _O_CUSTOMER = (
    ORDER_ROW.index(name)
    for name in ("created_at", "paid_at", "refunded_at", "status", "amount_cents", "id", "customer_pk")
)
# Fields whose change moves a customer's figures.
_FIGURE_INPUTS = (_O_CUSTOMER, _O_CREATED, _O_PAID, _O_REFUNDED, _O_AMOUNT)


class _Orders(OrderRows):
    """Order rows, and the writing of batches: customers, orders, products, items, figures."""

    def __init__(self, fields: dict[str, int], width: int, parse_time: TimeParser, sql: _Sql) -> None:
        super().__init__(fields, width, parse_time)
        self.sql = sql
        self.products: dict[str, int] = {}  # the current batch's item names -> product ids
        self.upsert_sql = sql.insert(_orders, ORDER_ROW, "order_no", update=ORDER_ROW[1:13] + ORDER_ROW[14:])
        self.select_sql = "SELECT " + ", ".join(ORDER_ROW) + " FROM orders WHERE {where}"
        self.buyers_sql = (
            "SELECT id, external_id, first_purchase_at, first_purchase_cents, last_purchase_at, "
            "last_purchase_cents FROM customer WHERE {where}" + sql.for_update
        )
        self.bare_customer_sql = sql.insert(
            _customer, ("external_id", "id", "updated_at"), "external_id", constants=_COUNTER_ZEROS
        )
        self.product_sql = sql.insert(_product, ("id", "name"), "name")
        self.item_sql = sql.numbered(
            "INSERT INTO order_item (order_pk, product_pk, customer_pk, quantity) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (order_pk, product_pk) DO UPDATE SET quantity = excluded.quantity, "
            "customer_pk = excluded.customer_pk"
        )
        self.item_delete_sql = sql.numbered("DELETE FROM order_item WHERE order_pk = ? AND product_pk = ?")
        self.item_owner_sql = sql.numbered("UPDATE order_item SET customer_pk = ? WHERE order_pk = ?")
        self.figures_sql = sql.numbered(_FRESH_FIGURES_SQL)

    # -- one batch -------------------------------------------------------------------------

    async def write(
        self, db: _Db, batch: list[tuple[Any, ...]], summary: ImportSummary, failures: list[WriteFailure]
    ) -> None:
        pks, ends = await self._buyers(db, batch)
        stored = await db.fetch_in(self.select_sql, "order_no", [p[0] for p in batch])
        existing = {row[0]: tuple(row) for row in stored}
        stored_items = await self._stored_items(db, [row[_O_ID] for row in existing.values()])
        new = [p for p in batch if p[0] not in existing] if existing else batch
        ids = await db.allocate_ids("orders", len(new))
        products = await self._resolve_products(db, batch)

        # New orders, the bulk of a large file: built by comprehensions, no per-row branching.
        if self.sql.pg:
            fresh = [
                (p[0], *map(_pg_time, p[1:7]), *p[7:13], i, pks[p[P_EXT]])
                for p, i in zip(new, ids, strict=True)
            ]
        else:
            fresh = [(*p[:13], i, pks[p[P_EXT]]) for p, i in zip(new, ids, strict=True)]
        items = _ItemWrites()
        items.writes = [
            (row[_O_ID], products[name], row[_O_CUSTOMER], qty)
            for p, row in zip(new, fresh, strict=True)
            if p[P_ITEMS]
            for name, qty in p[P_ITEMS].items()
        ]
        summary.inserted += len(fresh)

        writes: list[tuple[Any, ...]] = []
        recompute: set[int] = set()
        for parsed in batch if existing else ():
            old = existing.get(parsed[0])
            if old is None:
                continue
            customer_pk = pks[parsed[P_EXT]]
            try:
                row = self._merge(parsed, customer_pk, old)
            except RowError as exc:
                failures.append((parsed[P_LINE], exc.reason))
                summary.failed += 1
                continue
            wanted = None
            if parsed[P_ITEMS] is not None:
                wanted = {products[name]: qty for name, qty in parsed[P_ITEMS].items()}
            items_changed = items.sync(row, wanted, stored_items.get(row[_O_ID], {}))
            if row == old and not items_changed:
                summary.unchanged += 1
                continue
            summary.updated += 1
            if row != old:
                writes.append(row)
                if any(row[i] != old[i] for i in _FIGURE_INPUTS):
                    recompute.update((customer_pk, old[_O_CUSTOMER]))
                if customer_pk != old[_O_CUSTOMER]:
                    items.owners.append((customer_pk, row[_O_ID]))  # items follow their order

        await db.many(self.upsert_sql, fresh + writes)
        await db.many(self.item_owner_sql, items.owners)
        await db.many(self.item_delete_sql, items.deletes)
        await db.many(self.item_sql, items.writes)
        # Customers whose stored orders changed are recomputed from all their orders; the others
        # take the new orders into their running figures.
        await db.many(self.figures_sql, _fresh_figures(fresh, ends, recompute))
        if recompute:
            await db.refresh_figures(recompute)

    async def _buyers(self, db: _Db, batch: list[tuple[Any, ...]]) -> tuple[dict[str, int], dict[int, _Ends]]:
        """The batch's customers (locked on PostgreSQL): external id -> pk, and pk -> their stored
        first and last purchase. Unknown customers are created bare (external id only)."""
        keys = list({p[P_EXT]: None for p in batch})
        found = await db.fetch_in(self.buyers_sql, "external_id", keys)
        pks: dict[str, int] = {row[1]: row[0] for row in found}
        ends: dict[int, _Ends] = {row[0]: tuple(row[2:]) for row in found}
        missing = [key for key in keys if key not in pks]
        if missing:
            ids = await db.allocate_ids("customer", len(missing))
            now = self.sql.time(_utc_now_text())
            await db.many(
                self.bare_customer_sql, [(key, pk, now) for key, pk in zip(missing, ids, strict=True)]
            )
            pks.update(zip(missing, ids, strict=True))
            ends.update(dict.fromkeys(ids, _NO_PURCHASE))
        return pks, ends

    async def _stored_items(self, db: _Db, order_pks: list[int]) -> dict[int, dict[int, tuple[int, int]]]:
        """order pk -> product pk -> (quantity, customer_pk), for the orders already stored."""
        items: dict[int, dict[int, tuple[int, int]]] = {}
        if order_pks:
            template = "SELECT order_pk, product_pk, quantity, customer_pk FROM order_item WHERE {where}"
            for order_pk, product_pk, qty, customer_pk in await db.fetch_in(template, "order_pk", order_pks):
                items.setdefault(order_pk, {})[product_pk] = (qty, customer_pk)
        return items

    async def _resolve_products(self, db: _Db, batch: list[tuple[Any, ...]]) -> dict[str, int]:
        """Product ids for the batch's item names, read or created inside the batch's transaction
        (no cache across batches: every id written was seen in this transaction)."""
        names = list({name: None for p in batch if p[P_ITEMS] for name in p[P_ITEMS]})
        if not names:
            return {}
        found = dict(await db.fetch_in("SELECT name, id FROM product WHERE {where}", "name", names))
        missing = [name for name in names if name not in found]
        ids = await db.allocate_ids("product", len(missing))
        await db.many(self.product_sql, list(zip(ids, missing, strict=True)))
        found.update(zip(missing, ids, strict=True))
        return found

    def _merge(self, parsed: tuple[Any, ...], customer_pk: int, old: tuple[Any, ...]) -> tuple[Any, ...]:
        """A stored order updated by the file: non-empty cells win, empty ones keep the stored value.
        Without a status in the file the stored one stays, unless the timestamps moved the order on."""
        times = list(parsed[1:7])
        if parsed[P_REFUND_INFERRED]:
            times[5] = None
        if self.sql.pg:
            times = [_pg_time(t) for t in times]
        old_times = old[_O_CREATED : _O_REFUNDED + 1]
        times = [n if n is not None else o for n, o in zip(times, old_times, strict=True)]
        for value in times:
            if value is not None and value < times[0]:
                raise before_created(times)
        rest = [
            n if n is not None else o for n, o in zip(parsed[_O_AMOUNT:13], old[_O_AMOUNT:_O_ID], strict=True)
        ]
        status = parsed[_O_STATUS] if parsed[P_STATUS_GIVEN] else None
        if status is None:
            moved = derive_status(*times[1:]) != derive_status(*old_times[1:])
            status = derive_status(*times[1:]) if moved else old[_O_STATUS]
        status = settle_status(status, times)
        return (parsed[0], *times, status, *rest, old[_O_ID], customer_pk)


class _ItemWrites:
    """The order_item changes of one batch."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int, int]] = []
        self.deletes: list[tuple[int, int]] = []
        self.owners: list[tuple[int, int]] = []

    def sync(
        self, row: tuple[Any, ...], wanted: dict[int, int] | None, stored: dict[int, tuple[int, int]]
    ) -> bool:
        """Queues what makes a stored order's items equal the file's (None: keep them); True if any."""
        if wanted is None:
            return False
        order_pk, customer_pk = row[_O_ID], row[_O_CUSTOMER]
        changed = False
        for product_pk, qty in wanted.items():
            if stored.get(product_pk) != (qty, customer_pk):
                self.writes.append((order_pk, product_pk, customer_pk, qty))
                changed = True
        for product_pk in stored.keys() - wanted.keys():
            self.deletes.append((order_pk, product_pk))
            changed = True
        return changed


_Ends = tuple[Any, ...]  # a customer's first purchase (time, cents), then last purchase (time, cents)
_NO_PURCHASE: _Ends = (None, None, None, None)

# One customer's running figures moved by new orders: counts and sums added, first / last as given.
_FRESH_FIGURES_SQL = (
    "UPDATE customer SET orders_count = orders_count + ?, purchases = purchases + ?, "
    "total_spent_cents = total_spent_cents + ?, "
    "max_payment_cents = CASE WHEN ? > max_payment_cents THEN ? ELSE max_payment_cents END, "
    "first_purchase_at = ?, first_purchase_cents = ?, last_purchase_at = ?, last_purchase_cents = ? "
    "WHERE id = ?"
)


def _fresh_figures(
    fresh: list[tuple[Any, ...]], ends: dict[int, _Ends], recompute: set[int]
) -> list[tuple[Any, ...]]:
    """_FRESH_FIGURES_SQL's parameters for the customers of the batch's new orders (ORDER_ROW tuples).

    The new orders are merged into the stored figures as crm.figures.compute_figures counts over all
    orders: a purchase is paid and not refunded; the first is the earliest paid_at (tie: the earliest
    created, then lowest id), the last the latest paid_at (tie: the latest created, then highest id).
    A new first / last at the same paid_at as the stored one is a tie with an order not in the batch
    whose order is not known here: such customers join `recompute` instead.
    """
    by_customer: dict[int, list[tuple[Any, ...]]] = {}
    for row in fresh:
        by_customer.setdefault(row[_O_CUSTOMER], []).append(row)
    params = []
    for pk, rows in by_customer.items():
        if pk in recompute:
            continue
        first_at, first_cents, last_at, last_cents = ends[pk]
        bought = spent = largest = 0
        first = last = None  # (paid_at, created_at, id, amount) of the first / last purchase
        for row in rows:
            paid = row[_O_PAID]
            if paid is None or row[_O_REFUNDED] is not None:
                continue
            amount = row[_O_AMOUNT]
            bought += 1
            spent += amount
            largest = max(largest, amount)
            rank = (paid, row[_O_CREATED], row[_O_ID], amount)
            if first is None or rank < first:
                first = rank
            if last is None or rank > last:
                last = rank
        if first is not None and last is not None:
            if first[0] == first_at or last[0] == last_at:
                recompute.add(pk)
                continue
            if first_at is None or first[0] < first_at:
                first_at, first_cents = first[0], first[3]
            if last_at is None or last[0] > last_at:
                last_at, last_cents = last[0], last[3]
        params.append(
            (len(rows), bought, spent, largest, largest, first_at, first_cents, last_at, last_cents, pk)
        )
    return params


# ---------------------------------------------------------------------------------------------
# The entry point.


def default_errors_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.errors.csv")


async def import_file(
    *,
    engine: AsyncEngine,
    kind: Literal["customers", "orders"],
    path: Path,
    errors_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    zone: ZoneInfo = TEAM_ZONE,
    parse_in_process: bool | None = None,
) -> ImportSummary:
    """Imports a customers or orders file; see the module docstring for the rules.

    Raises MissingColumnsError (a FileRejected) before writing anything when a required column is
    missing, and FileRejected when the file cannot be read. `progress` gets the rows read so far.
    parse_in_process: parse in a second process, overlapping the writes (default: for files of at
    least PARSER_PROCESS_MIN_BYTES, where that gain outweighs starting the process).
    """
    if kind not in COLUMNS:
        raise ValueError(f"kind must be 'customers' or 'orders', not {kind!r}")
    started = time.perf_counter()
    summary = ImportSummary()
    sql = _Sql(engine.dialect)
    job = ParseJob(kind, path, errors_path or default_errors_path(path), batch_size, zone)
    with ExitStack() as stack:
        table = stack.enter_context(open_table(path))
        fields = resolve_header(kind, table.header)
        handler = _HANDLERS[kind](fields, len(table.header), TimeParser(zone), sql)
        if parse_in_process is None:
            parse_in_process = path.stat().st_size >= PARSER_PROCESS_MIN_BYTES  # noqa: ASYNC240 (a stat)
        source: Batches
        if parse_in_process:
            stack.close()  # the parser process opens the file itself
            source = ParserProcess(serve_parser, job)
        else:
            source = job.parser(table, handler.parse)
        with _young_garbage_only():
            try:
                bulk = kind == "orders" and parse_in_process
                async with _open_writer(engine, handler, bulk=bulk) as writer:
                    await _run(source, writer, summary, progress)
            except BaseException:
                source.abandon()
                with suppress(Exception):  # what stopped the import is the error to report
                    source.close()
                raise
        summary.errors_path = job.errors_path if source.close() else None
    summary.seconds = time.perf_counter() - started
    return summary


# Below this size (~20 000 orders, a second of importing) a file is parsed in the importing process:
# starting the parser process (a fresh interpreter importing storage.import_rows, ~0.1 s) and
# shipping its batches would save too little.
PARSER_PROCESS_MIN_BYTES = 4 << 20
_HANDLERS: dict[str, type[_Customers | _Orders]] = {"customers": _Customers, "orders": _Orders}


@contextmanager
def _young_garbage_only() -> Iterator[None]:
    """Automatic GC off while importing; import_batches.collect_young_garbage runs after each batch.

    A batch keeps hundreds of thousands of objects alive, so the automatic collector keeps promoting
    and re-scanning them in full collections (~15 % of the import time). Batches free their objects
    by reference counting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_Outcome = tuple[ImportSummary, list[WriteFailure]]  # a written batch: its counts, rows that failed there
_Written = tuple[Batch, _Outcome]


async def _run(
    source: Batches, writer: _Writer, summary: ImportSummary, progress: Callable[[int], None] | None
) -> None:
    """Writes the source's batches one by one, each in one transaction, and settles each."""
    batches = source.batches()
    while (written := await writer.write_next(batches)) is not None:
        batch, (counts, failures) = written
        source.settle(failures)
        summary.rows_read = batch.read
        summary.inserted += counts.inserted
        summary.updated += counts.updated
        summary.unchanged += counts.unchanged
        summary.failed += batch.failed + counts.failed
        collect_young_garbage()
        if progress:
            progress(batch.read)


def _unwritten(batch: Batch | None) -> _Written | None:
    """None at the end of the file; a batch without rows to write (all of them failed to parse)
    comes through with nothing written."""
    return None if batch is None else (batch, (ImportSummary(), []))


class _Writer:
    """Takes the next batch from the source and writes it, both in one worker thread: the batch
    comes from a queue (the parser process) or is parsed there, then is written in one transaction."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="touchpoint-import")
        self._future: asyncio.Future[_Written | None] | None = None

    async def write_next(self, batches: Iterator[Batch]) -> _Written | None:
        raise NotImplementedError

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        self._future = future = asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        try:
            return await future
        finally:
            self._future = None

    async def aclose(self, last: Callable[[], None] | None = None) -> None:
        """Runs `last` in the worker thread once the batch in flight, if any, is done (when the import
        failed while one was being written, its outcome is moot), and stops the thread."""
        if self._future is not None:
            self._future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            if last is not None:
                await asyncio.get_running_loop().run_in_executor(self._pool, last)  # queued behind it
        finally:
            self._pool.shutdown(wait=last is None)


@asynccontextmanager
async def _open_writer(
    engine: AsyncEngine, handler: _Customers | _Orders, *, bulk: bool
) -> AsyncIterator[_Writer]:
    """bulk: a large orders file; into SQLite, it is written without the figure indexes (see
    FIGURE_INDEXES), which are built again at its end."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        threaded = _ThreadWriter(url.set(drivername="sqlite"), handler, bulk=bulk)
        try:
            yield threaded
        finally:
            await threaded.aclose(threaded.close_connection)
        return
    async with engine.connect() as conn:
        await _bulk_mode(conn, handler.sql, on=True)
        writer = _AsyncWriter(conn, handler)
        try:
            yield writer
        except BaseException:
            await writer.aclose()
            await conn.invalidate()  # never pool a connection left without foreign key checks
            raise
        await writer.aclose()
        await _bulk_mode(conn, handler.sql, on=False)


class _ThreadWriter(_Writer):
    """SQLite: the worker thread writes through its own synchronous connection, a batch in one call
    (through aiosqlite every statement would be a thread round trip with the event loop waiting).
    The connection is opened, used and closed in the worker thread only, and never pooled: it runs
    without foreign key checks (see _bulk_mode)."""

    def __init__(self, url: URL, handler: _Customers | _Orders, *, bulk: bool) -> None:
        super().__init__()
        self._handler, self._bulk = handler, bulk
        self._engine = sa_create_engine(url, poolclass=NullPool)
        event.listen(self._engine, "connect", _bulk_pragmas)
        self._conn: Connection | None = None

    async def write_next(self, batches: Iterator[Batch]) -> _Written | None:
        return await self._in_thread(self._write_next, batches)

    def _write_next(self, batches: Iterator[Batch]) -> _Written | None:
        batch = next(batches, None)
        if batch is None or not batch.rows:
            return _unwritten(batch)
        if self._conn is None:
            self._conn = self._engine.connect()
            with self._conn.begin():
                for index in FIGURE_INDEXES if self._bulk else ():
                    index.drop(self._conn, checkfirst=True)
        with self._conn.begin():
            db = _ThreadDb(self._conn, self._handler.sql)
            return batch, _finish(_write_rows(db, self._handler, batch.rows))

    def close_connection(self) -> None:
        """Builds the figure indexes again (also when the import failed), then closes."""
        try:
            if self._conn is not None:
                if self._conn.in_transaction():
                    self._conn.rollback()
                with self._conn.begin():
                    restore_figure_indexes(self._conn)
                self._conn.close()
        finally:
            self._engine.dispose()


def _bulk_pragmas(dbapi_conn: Any, record: Any) -> None:
    """The import's SQLite connection: storage.db's settings, then _bulk_mode's, for this
    connection's whole life."""
    sqlite_pragmas(dbapi_conn, record)
    for pragma in (
        "foreign_keys=OFF",
        f"cache_size={BULK_CACHE_KIB}",
        # Checkpoint after ~200 MB of log rather than 4 MB: a page rewritten by many batches is copied
        # back once per checkpoint, not once per batch; the log is cut back to 64 MB after each.
        "wal_autocheckpoint=50000",
        "journal_size_limit=67108864",
    ):
        dbapi_conn.execute(f"PRAGMA {pragma}")


class _AsyncWriter(_Writer):
    """PostgreSQL (and SQLite without a file): the worker thread only takes the next batch; it is
    written through the async connection."""

    def __init__(self, conn: AsyncConnection, handler: _Customers | _Orders) -> None:
        super().__init__()
        self._conn, self._handler = conn, handler

    async def write_next(self, batches: Iterator[Batch]) -> _Written | None:
        batch = await self._in_thread(next, batches, None)
        if batch is None or not batch.rows:
            return _unwritten(batch)
        return batch, await self._write(batch.rows)

    async def _write(self, rows: list[tuple[Any, ...]]) -> _Outcome:
        """One transaction; retried once when a concurrent writer took a key first (PostgreSQL)."""
        for attempt in (1, 2):
            try:
                async with self._conn.begin():
                    return await _write_rows(_AsyncDb(self._conn, self._handler.sql), self._handler, rows)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("not reached")


async def _bulk_mode(conn: AsyncConnection, sql: _Sql, *, on: bool) -> None:
    """SQLite only, for this connection while the import runs (a no-op inside a transaction):
    - foreign key checks off: the importer checks every reference itself, inside each batch's write
      lock (customers, orders and products are read or created in the same transaction), and
      SQLite's own per-row checks cost a third of the write time;
    - a larger page cache: a batch touches customer and index pages all over the file."""
    if sql.pg:
        return
    await conn.exec_driver_sql(f"PRAGMA foreign_keys={'OFF' if on else 'ON'}")
    await conn.exec_driver_sql(f"PRAGMA cache_size={BULK_CACHE_KIB if on else DEFAULT_CACHE_KIB}")
    await conn.commit()


async def _write_rows(db: _Db, handler: _Customers | _Orders, rows: list[tuple[Any, ...]]) -> _Outcome:
    """One batch, inside the caller's transaction."""
    counts = ImportSummary()
    failures: list[WriteFailure] = []
    await db.begin()
    await handler.write(db, rows, counts, failures)
    return counts, failures
