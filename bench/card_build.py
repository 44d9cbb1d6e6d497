"""Card build benchmark: query string → rendered HTML, server side, at 1 M customers / 10 M orders.

    python bench/card_build.py [--customers 1000000] [--orders-per-customer 10] [--lookups 3000]

Generates the shop once into bench/out/ with plain sqlite3 (fast, deterministic; running figures
computed while generating), then measures in the same run:
  * ours: CardService.look_up as the bot does it (on SQLite one worker-thread call per card, its
    statements compiled once and run on the sqlite3 connection: storage.sqlite_reads);
  * baseline: a bare indexed sqlite3 SELECT of the same customer by the same key.
Bar: ours p95 ≤ 5 ms. Exits 1 if missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.card_service import CardService  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.i18n import build_i18n  # noqa: E402
from bot.palette_file import load_palette  # noqa: E402
from storage.db import create_engine, make_sessionmaker  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.stats import recompute_shop_stats  # noqa: E402

P95_BAR_MS = 5.0
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
PROVINCES = ["浙江", "广东", "江苏", "上海", "北京", "四川", "山东", "河南", "湖北", "福建"]
PRODUCTS = [f"商品{i:03d}" for i in range(400)]
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def ts(moment: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def generate(path: Path, customers: int, orders_per: float, seed: int = 11) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executemany("INSERT INTO product (id, name) VALUES (?, ?)", enumerate(PRODUCTS, start=1))
    order_id = 0
    started = time.perf_counter()
    batch_c: list[tuple] = []
    batch_o: list[tuple] = []
    batch_i: list[tuple] = []
    for cid in range(1, customers + 1):
        k = max(1, min(60, int(rng.expovariate(1 / orders_per))))
        spent = purchases = largest = 0
        first = last = None
        first_amt = last_amt = None
        base = NOW - timedelta(days=rng.randint(0, 730))
        for j in range(k):
            order_id += 1
            created = base - timedelta(days=j * rng.randint(5, 40), minutes=rng.randint(0, 1440))
            amount = rng.randint(990, 99900)
            paid = created + timedelta(minutes=rng.randint(1, 60)) if rng.random() < 0.93 else None
            refunded = paid + timedelta(days=3) if paid and rng.random() < 0.04 else None
            status = "refunded" if refunded else ("signed" if paid else "closed")
            batch_o.append(
                (
                    order_id,
                    f"T{order_id:011d}",
                    cid,
                    ts(created),
                    ts(paid) if paid else None,
                    ts(refunded) if refunded else None,
                    status,
                    amount,
                    "flash_sale" if rng.random() < 0.1 else None,
                )
            )
            batch_i.append((order_id, rng.randint(1, len(PRODUCTS)), cid, rng.randint(1, 3)))
            if paid and not refunded:
                purchases += 1
                spent += amount
                largest = max(largest, amount)
                if first is None or paid < first:
                    first, first_amt = paid, amount
                if last is None or paid >= last:
                    last, last_amt = paid, amount
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
        batch_c.append(
            (
                cid,
                f"C{cid:08d}",
                f"买家{cid:07d}",
                name,
                f"1{rng.randint(3, 9)}{cid:09d}",
                rng.choice(PROVINCES),
                ts(base - timedelta(days=800)),
                k,
                purchases,
                spent,
                largest,
                ts(first) if first else None,
                first_amt,
                ts(last) if last else None,
                last_amt,
            )
        )
        if len(batch_o) >= 200_000 or cid == customers:
            db.executemany(
                "INSERT INTO customer (id, external_id, nickname, name, phone, province, created_at,"
                " orders_count, purchases, total_spent_cents, max_payment_cents, first_purchase_at,"
                " first_purchase_cents,"
                " last_purchase_at, last_purchase_cents, contacted_count, responded_count)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0)",
                batch_c,
            )
            db.executemany(
                "INSERT INTO orders (id, order_no, customer_pk, created_at, paid_at, refunded_at, status,"
                " amount_cents, source) VALUES (?,?,?,?,?,?,?,?,?)",
                batch_o,
            )
            db.executemany(
                "INSERT INTO order_item (order_pk, product_pk, customer_pk, quantity) VALUES (?,?,?,?)",
                batch_i,
            )
            db.commit()
            batch_c, batch_o, batch_i = [], [], []
            print(
                f"\r  generated {cid:,} customers / {order_id:,} orders "
                f"({time.perf_counter() - started:.0f}s)",
                end="",
                flush=True,
            )
    print()
    db.execute("ANALYZE")
    db.commit()
    db.close()


def pick_queries(path: Path, lookups: int, seed: int = 5) -> list[tuple[str, str, str]]:
    """(key column, query text, baseline SQL) for random customers, cycling through the keys."""
    db = sqlite3.connect(path)
    (max_id,) = db.execute("SELECT max(id) FROM customer").fetchone()
    rng = random.Random(seed)
    out = []
    for i in range(lookups):
        cid = rng.randint(1, max_id)
        external, nickname, phone = db.execute(
            "SELECT external_id, nickname, phone FROM customer WHERE id = ?", (cid,)
        ).fetchone()
        kind = ("phone", "nickname", "external_id", "order_no")[i % 4]
        if kind == "order_no":
            (value,) = db.execute(
                "SELECT order_no FROM orders WHERE customer_pk = ? LIMIT 1", (cid,)
            ).fetchone()
            sql = "SELECT c.* FROM customer c JOIN orders o ON o.customer_pk = c.id WHERE o.order_no = ?"
        else:
            value = {"phone": phone, "nickname": nickname, "external_id": external}[kind]
            sql = f"SELECT * FROM customer WHERE {kind} = ?"
        out.append((kind, value, sql))
    db.close()
    return out


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def measure_ours(path: Path, queries: list[tuple[str, str, str]]) -> list[float]:
    url = f"sqlite+aiosqlite:///{path}"
    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(url)
    await recompute_shop_stats(engine)
    cards = CardService(settings, load_palette(ROOT / "config"))
    i18n = build_i18n("zh_CN")
    sessionmaker = make_sessionmaker(engine)
    timings = []
    with i18n.context(), i18n.use_locale("zh_CN"):
        for warm, (_kind, text, _sql) in enumerate(queries[:200] + queries):
            started = time.perf_counter()
            async with sessionmaker() as session:  # one session per update, as the bot does
                found, card = await cards.look_up(session, text, locale="zh_CN", mask_contacts=True)
                assert len(found) == 1, (text, len(found))
            elapsed = time.perf_counter() - started
            assert card is not None and "客单价" in card.text
            if warm >= 200:
                timings.append(elapsed * 1000)
    await engine.dispose()
    return timings


def measure_baseline(path: Path, queries: list[tuple[str, str, str]]) -> list[float]:
    db = sqlite3.connect(path)
    timings = []
    for warm, (_kind, text, sql) in enumerate(queries[:200] + queries):
        started = time.perf_counter()
        row = db.execute(sql, (text,)).fetchone()
        elapsed = time.perf_counter() - started
        assert row is not None
        if warm >= 200:
            timings.append(elapsed * 1000)
    db.close()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders-per-customer", type=float, default=10.45)
    parser.add_argument("--lookups", type=int, default=3000)
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"card_{args.customers}_{args.orders_per_customer}.db"
    if not path.exists():
        print(f"Generating {args.customers:,} customers × ~{args.orders_per_customer} orders into {path} …")
        partial = path.with_suffix(".partial")
        for leftover in out.glob(partial.name + "*"):
            leftover.unlink()
        generate(partial, args.customers, args.orders_per_customer)
        partial.rename(path)
    db = sqlite3.connect(path)
    n_customers = db.execute("SELECT count(*) FROM customer").fetchone()[0]
    n_orders = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    db.close()
    queries = pick_queries(path, args.lookups)
    ours = asyncio.run(measure_ours(path, queries))
    base = measure_baseline(path, queries)
    p = {
        name: (percentile(v, 50), percentile(v, 95), percentile(v, 99))
        for name, v in (("ours", ours), ("base", base))
    }
    print(
        f"shop: {n_customers:,} customers, {n_orders:,} orders; "
        f"{len(queries):,} lookups (phone, nickname, id, order no.)"
    )
    print(
        f"card build (look-up + render, as the bot):        "
        f"p50 {p['ours'][0]:.2f} ms  p95 {p['ours'][1]:.2f} ms  "
        f"p99 {p['ours'][2]:.2f} ms  mean {statistics.fmean(ours):.2f} ms"
    )
    print(
        f"baseline (bare indexed sqlite3 SELECT):          "
        f"p50 {p['base'][0]:.3f} ms  p95 {p['base'][1]:.3f} ms  "
        f"p99 {p['base'][2]:.3f} ms"
    )
    print(
        f"ratio p95 ours / baseline: {p['ours'][1] / p['base'][1]:.1f}×   bar: p95 ≤ {P95_BAR_MS} ms → "
        f"{'PASS' if p['ours'][1] <= P95_BAR_MS else 'FAIL'}"
    )
    return 0 if p["ours"][1] <= P95_BAR_MS else 1


if __name__ == "__main__":
    sys.exit(main())
