"""Import rate against a named baseline: `python bench/import_rate.py --orders 1000000`.

Generates a demo shop (storage.demo) with about that many orders, then measures:
  (a) baseline: plain sqlite3, csv.reader over the same orders file + executemany of the same rows
      into a table of the same columns (all TEXT) carrying the real orders table's keys (unique
      order number; customer + time), on a fresh WAL file, committing every --batch-size rows as
      the importer does; the same into a bare table without keys is printed for reference;
  (b) ours: storage.importer.import_file into a freshly migrated database, in a subprocess so that
      its peak RSS is its own (customers are imported first, as a shop would, and timed apart).
(a) and (b) alternate for --rounds rounds (default 3). Prints rows/s for both in each round, the
median round's ratio (bar >= 0.5) and the largest peak RSS (bar <= 300 MB): the importing
process's plus its parser process's (large files are parsed there), both peaks counted in full;
exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.importer import DEFAULT_BATCH_SIZE  # noqa: E402  (after the path set-up above)

RATIO_BAR = 0.5
RSS_BAR_MB = 300.0
ORDERS_PER_CUSTOMER = 3.2  # storage.demo's mean, a little under so there are enough orders
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # fixed: the same data every run


def generate(workdir: Path, orders: int, seed: int) -> tuple[Path, Path, int]:
    """Demo files with exactly `orders` order rows (the generated tail is cut)."""
    from storage.demo import write_demo_csv

    customers_csv, full_orders = write_demo_csv(
        workdir / "demo", int(orders / ORDERS_PER_CUSTOMER) + 1, seed=seed, now=NOW
    )
    orders_csv = workdir / "orders.csv"
    written = 0
    with full_orders.open(encoding="utf-8", newline="") as src, orders_csv.open("w", encoding="utf-8") as dst:
        dst.write(src.readline())
        for line in src:
            if written == orders:
                break
            dst.write(line)
            written += 1
    full_orders.unlink()
    return customers_csv, orders_csv, written


def fresh(db: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return db


def baseline(orders_csv: Path, db: Path, batch_size: int, *, keyed: bool) -> float:
    """Rows per second of the plainest possible load of the same rows: csv.reader + executemany.

    keyed: the table carries the keys the real orders table has (unique order number, customer
    and time), so SQLite maintains the same indexes; without, it is one bare heap of text.
    """
    fresh(db)
    started = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    rows = 0
    with orders_csv.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        con.execute(f"CREATE TABLE orders ({', '.join(f'{name} TEXT' for name in header)})")
        if keyed:
            con.execute("CREATE UNIQUE INDEX ix_order_id ON orders (order_id)")
            con.execute("CREATE INDEX ix_customer_created ON orders (customer_id, created_at)")
        insert = f"INSERT INTO orders VALUES ({', '.join('?' * len(header))})"
        while batch := [row for _, row in zip(range(batch_size), reader, strict=False)]:
            con.executemany(insert, batch)
            con.commit()
            rows += len(batch)
    con.close()
    return rows / (time.perf_counter() - started)


def ours(customers_csv: Path, orders_csv: Path, db: Path, batch_size: int) -> dict[str, float]:
    """Runs the import in a child process; returns its measurements."""
    command = [
        sys.executable,
        __file__,
        "--child",
        str(customers_csv),
        str(orders_csv),
        str(db),
        str(batch_size),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident set since it started its program (VmHWM). getrusage's ru_maxrss
    is no use here: it keeps the RSS of the process it was forked from before exec."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


class _ChildPeaks(threading.Thread):
    """Samples the peak RSS of this process's children (the parser processes) until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(0.02):
            for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
                for pid in children.read_text().split():
                    with contextlib.suppress(OSError, RuntimeError):
                        self.peak_mb = max(self.peak_mb, _peak_rss_mb(pid))

    def stop(self) -> float:
        self._stopping.set()
        self.join()
        return self.peak_mb


def child(customers_csv: Path, orders_csv: Path, db: Path, batch_size: int) -> None:
    from storage.db import create_engine
    from storage.importer import import_file
    from storage.migrate import upgrade

    url = f"sqlite+aiosqlite:///{fresh(db)}"
    upgrade(url)

    async def run() -> dict[str, float]:
        engine = create_engine(url)
        customers = await import_file(
            engine=engine, kind="customers", path=customers_csv, batch_size=batch_size
        )
        orders = await import_file(engine=engine, kind="orders", path=orders_csv, batch_size=batch_size)
        await engine.dispose()
        if customers.failed or orders.failed:
            raise SystemExit(f"rows failed: {customers.failed} customers, {orders.failed} orders")
        return {
            "customers_rows": customers.rows_read,
            "customers_rate": customers.rows_read / customers.seconds,
            "orders_rows": orders.rows_read,
            "orders_rate": orders.rows_read / orders.seconds,
        }

    peaks = _ChildPeaks()
    peaks.start()
    result = asyncio.run(run())
    result["peak_rss_mb"] = _peak_rss_mb()
    result["parser_rss_mb"] = peaks.stop()  # the parser process (storage.import_batches.ParserProcess)
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per transaction, both sides"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="baseline / ours pairs; the median ratio counts"
    )
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="touchpoint-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        customers_csv, orders_csv, rows = generate(workdir, args.orders, args.seed)
        print(f"generated {rows:,} orders in {time.perf_counter() - started:.0f} s")
        bare = baseline(orders_csv, workdir / "bare.db", args.batch_size, keyed=False)
        print(f"reference sqlite3 executemany, bare table:  {bare:>10,.0f} rows/s")
        # Baseline and ours alternate, round after round: this machine's speed drifts by ±15 % over
        # minutes, and a ratio taken from one pair can land on either side of a drift.
        rounds = []
        for n in range(1, args.rounds + 1):
            base = baseline(orders_csv, workdir / "baseline.db", args.batch_size, keyed=True)
            got = ours(customers_csv, orders_csv, workdir / "touchpoint.db", args.batch_size)
            rounds.append((got["orders_rate"] / base, base, got))
            customers = f"{got['customers_rows']:,.0f} rows at {got['customers_rate']:,.0f} rows/s"
            print(
                f"round {n}   baseline sqlite3 executemany, same keys {base:>9,.0f} rows/s   "
                f"ours import_file (orders) {got['orders_rate']:>9,.0f} rows/s   "
                f"ratio {got['orders_rate'] / base:.2f}   (customers first: {customers})"
            )
    ratio, base, got = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
    rss_got = max((r[2] for r in rounds), key=lambda g: g["peak_rss_mb"] + g["parser_rss_mb"])
    rss = rss_got["peak_rss_mb"] + rss_got["parser_rss_mb"]  # both peaks, as if they were at once
    ratio_ok, rss_ok = ratio >= RATIO_BAR, rss <= RSS_BAR_MB
    print(
        f"ratio     {ratio:.2f}, the median of {len(rounds)} rounds  (bar >= {RATIO_BAR})  "
        f"{'ok' if ratio_ok else 'MISSED'}   (that round to the bare table: {got['orders_rate'] / bare:.2f})"
    )
    print(
        f"peak RSS  {rss:.0f} MB, the largest round  (bar <= {RSS_BAR_MB:.0f} MB)  "
        f"{'ok' if rss_ok else 'MISSED'}"
        f"   (importing process {rss_got['peak_rss_mb']:.0f} + parser process {rss_got['parser_rss_mb']:.0f})"
    )
    return 0 if ratio_ok and rss_ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(main())
