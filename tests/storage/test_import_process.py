"""Large files are parsed in a parser process (storage.import_batches.ParserProcess): the same rows,
counts and error file as parsing in the importing process; failures on either side stop both
cleanly; a bulk orders import into SQLite leaves the customer figure indexes in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine
from storage.figures import FIGURE_INDEXES
from storage.import_batches import _cells, _compact
from storage.importer import import_file
from storage.migrate import upgrade_async
from storage.models import Order
from tests.storage.test_importer import (
    ORDERS_HEADER,
    assert_figures_consistent,
    error_rows,
    fail_the_second_batch,
    rows,
    write,
)


async def figure_indexes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        return {name for (name,) in found} & {index.name for index in FIGURE_INDEXES}


def test_kept_cells_come_back_as_they_were() -> None:
    for row in (["O1", "顺丰", ""], ["a\x1fb", "c"], [""]):
        assert _cells(_compact(list(row))) == row


async def test_the_parser_process_reports_what_in_process_parsing_does(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = write(
        tmp_path / "first.csv",
        f"{ORDERS_HEADER}\nO1,C1,2024-05-01 10:00,2024-05-01 10:05,2024-05-03 09:00,,,10,,,,杯子×1\n",
    )
    await import_file(engine=engine, kind="orders", path=first, parse_in_process=True)
    text_ = (
        f"{ORDERS_HEADER}\n"
        # 2: created after the stored payment time: fails when merged, in the importing process;
        # a cell holding the separator the parser keeps cells with comes back as it was
        "O1,C1,2024-05-04 10:00,,,,,10,顺\x1f丰,,,\n"
        "B1,C1,2024-05-01 10:00,,,,,-5.00,,,,\n"  # 3: negative amount, fails to parse
        "O2,C2,2024-05-02 10:00,,,,,20,,,,碗×2\n"  # 4
        "O2,C2,2024-05-02 10:00,2024-05-02 11:00,,,,20,,,,碗×2\n"  # 5: same key, merged in order
        "O3,C3,2024-05-02 12:00,2024-05-02 12:01,,,,30,,,,\n"  # 6
    )
    second = write(tmp_path / "second.csv", text_)
    done = await import_file(engine=engine, kind="orders", path=second, batch_size=2, parse_in_process=True)
    assert (done.rows_read, done.inserted, done.updated, done.failed) == (5, 2, 1, 2)
    found = {int(r["line"]): r for r in error_rows(done)}
    assert sorted(found) == [2, 3]
    assert "paid_at is before created_at" in found[2]["reason"]
    assert found[2]["source"] == "顺\x1f丰" and found[2]["created_at"] == "2024-05-04 10:00"
    assert "negative amount" in found[3]["reason"]
    stored = {o.order_no: o for o in await rows(engine, select(Order))}
    assert sorted(stored) == ["O1", "O2", "O3"]
    assert stored["O1"].created_at.day == 1 and stored["O2"].status == "paid"
    await assert_figures_consistent(engine)

    # The same file parsed here: the same outcome (all unchanged now but the failing rows).
    again = await import_file(engine=engine, kind="orders", path=second, batch_size=2, parse_in_process=False)
    assert (again.rows_read, again.unchanged, again.failed) == (5, 3, 2)
    assert [r["line"] for r in error_rows(again)] == ["2", "3"]


async def test_a_failing_write_stops_the_parser_process_and_keeps_its_bad_rows(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    good = [f"O{i},C{i},2024-05-01 10:0{i},2024-05-01 10:0{i},,,,1{i},,,," for i in range(8)]
    bad = "B{},C1,2024-05-01 10:00,,,,,-1,,,,"
    lines = [*good[:3], bad.format(5), *good[3:6], bad.format(9), *good[6:]]
    source = write(tmp_path / "o.csv", ORDERS_HEADER + "\n" + "\n".join(lines) + "\n")
    fail_the_second_batch(monkeypatch)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await import_file(engine=engine, kind="orders", path=source, batch_size=3, parse_in_process=True)
    assert sorted(o.order_no for o in await rows(engine, select(Order))) == ["O0", "O1", "O2"]
    errors = (tmp_path / "o.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[1] for line in errors[1:]] == ["5", "9"]  # the written batch's, the failed one's
    assert await figure_indexes(engine) == {index.name for index in FIGURE_INDEXES}
    await assert_figures_consistent(engine)
    await engine.dispose()


async def test_a_bulk_import_leaves_the_figure_indexes_and_upgrade_restores_missing_ones(
    sqlite_url: str, tmp_path: Path
) -> None:
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    names = {index.name for index in FIGURE_INDEXES}
    assert len(names) == 3 and await figure_indexes(engine) == names
    lines = [
        f"O{i},C{i % 7},2024-05-0{1 + i % 9} 10:00,2024-05-0{1 + i % 9} 10:01,,,,{i},,,," for i in range(50)
    ]
    source = write(tmp_path / "o.csv", ORDERS_HEADER + "\n" + "\n".join(lines) + "\n")
    done = await import_file(engine=engine, kind="orders", path=source, batch_size=10, parse_in_process=True)
    assert done.inserted == 50
    assert await figure_indexes(engine) == names
    await assert_figures_consistent(engine)
    async with engine.begin() as conn:  # as an import killed midway leaves them
        for name in names:
            await conn.execute(text(f"DROP INDEX {name}"))
    await upgrade_async(sqlite_url)
    assert await figure_indexes(engine) == names
    await engine.dispose()
