"""The importer on real SQLite and PostgreSQL: good rows, bad rows, idempotence, encodings, xlsx,
partial files, bare customers, batch atomicity, and figures that match crm.figures."""

from __future__ import annotations

import csv
import random
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.import_files as import_files
import storage.importer as importer
from storage.columns import MissingColumnsError, mapping_markdown, resolve_header
from storage.db import create_engine
from storage.demo import write_demo_csv
from storage.figures import figures_mismatches
from storage.importer import (
    FileRejected,
    ImportSummary,
    RowError,
    TimeParser,
    import_file,
    parse_amount,
    parse_items,
)
from storage.migrate import upgrade_async
from storage.models import Customer, Order, OrderItem, Product

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, tzinfo=UTC)

CUSTOMERS_HEADER = "customer_id,nickname,name,phone,email,gender,province,city,birthday,created_at"
ORDERS_HEADER = (
    "order_id,customer_id,created_at,paid_at,shipped_at,signed_at,"
    "status,amount,source,carrier,tracking_no,items"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def error_rows(summary: ImportSummary) -> list[dict[str, str]]:
    assert summary.errors_path is not None
    with summary.errors_path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


async def rows(engine: AsyncEngine, stmt: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def assert_figures_consistent(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await figures_mismatches(conn, limit=10) == []


# ---------------------------------------------------------------------------------------------
# Good rows, both databases.


async def test_good_rows_land_with_parsed_values(engine: AsyncEngine, tmp_path: Path) -> None:
    customers = write(
        tmp_path / "customers.csv",
        f"{CUSTOMERS_HEADER}\n"
        "C1,小鱼儿,王芳,+86 138-0013-8000,fang@example.com,女,浙江省,杭州,1990/3/7,2024-01-02 09:30:00\n"
        "C2,tb123,,,,male,,,,\n",
    )
    orders = write(
        tmp_path / "orders.csv",
        f"{ORDERS_HEADER}\n"
        'O1,C1,2024-05-01 10:00:00,2024-05-01 10:20,,,,"¥1,234.50",聚划算,顺丰,SF123,面霜×2;面霜x1;口红\n'
        "O2,C1,2024-06-01T08:00:00+08:00,2024-06-01 08:05:00,2024-06-02 09:00:00,,卖家已发货,88,天猫,,,\n"
        "O3,C2,2024/07/01 12:00,,,,,0.5,,,,\n",
    )
    done = await import_file(engine=engine, kind="customers", path=customers)
    assert (done.rows_read, done.inserted, done.failed, done.errors_path) == (2, 2, 0, None)
    done = await import_file(engine=engine, kind="orders", path=orders)
    assert (done.rows_read, done.inserted, done.failed) == (3, 3, 0)

    (c1,) = await rows(engine, select(Customer).where(Customer.external_id == "C1"))
    assert (c1.nickname, c1.name, c1.phone, c1.gender, c1.city) == (
        "小鱼儿",
        "王芳",
        "13800138000",
        "f",
        "杭州",
    )
    assert c1.birthday == date(1990, 3, 7)
    assert c1.created_at == datetime(2024, 1, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    got = {o.order_no: o for o in await rows(engine, select(Order))}
    o1, o2, o3 = got["O1"], got["O2"], got["O3"]
    assert o1.amount_cents == 123450 and o1.source == "flash_sale" and o1.status == "paid"
    assert o1.created_at == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert o1.paid_at == datetime(2024, 5, 1, 2, 20, tzinfo=UTC)
    assert (o1.carrier, o1.tracking_no) == ("顺丰", "SF123")
    assert (o2.status, o2.amount_cents, o2.created_at) == (
        "shipped",
        8800,
        datetime(2024, 6, 1, 0, 0, tzinfo=UTC),
    )
    assert (o3.status, o3.amount_cents, o3.paid_at) == ("created", 50, None)

    items = await rows(
        engine,
        select(Product.name, OrderItem.quantity, OrderItem.customer_pk)
        .join(Product, Product.id == OrderItem.product_pk)
        .where(OrderItem.order_pk == o1.id)
        .order_by(Product.name),
    )
    assert [(name, qty) for name, qty, _ in items] == [("口红", 1), ("面霜", 3)]
    assert {pk for *_, pk in items} == {c1.id}

    assert (c1.orders_count, c1.purchases, c1.total_spent_cents, c1.max_payment_cents) == (
        2,
        2,
        132250,
        123450,
    )
    assert (c1.first_purchase_cents, c1.last_purchase_cents) == (123450, 8800)
    await assert_figures_consistent(engine)


async def test_second_import_of_the_same_files_changes_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    customers, orders = write_demo_csv(tmp_path, 40, seed=3, now=NOW)
    first_c = await import_file(engine=engine, kind="customers", path=customers)
    first_o = await import_file(engine=engine, kind="orders", path=orders, batch_size=25)
    assert first_c.inserted == 40 and first_o.inserted == first_o.rows_read > 40
    async with engine.connect() as conn:
        before = (await conn.execute(select(Customer).order_by(Customer.id))).all()
    again_c = await import_file(engine=engine, kind="customers", path=customers)
    again_o = await import_file(engine=engine, kind="orders", path=orders, batch_size=25)
    assert (again_c.unchanged, again_c.inserted, again_c.updated) == (40, 0, 0)
    assert (again_o.unchanged, again_o.inserted, again_o.updated) == (first_o.rows_read, 0, 0)
    async with engine.connect() as conn:
        after = (await conn.execute(select(Customer).order_by(Customer.id))).all()
    assert before == after  # not even updated_at moved: unchanged rows are not rewritten
    await assert_figures_consistent(engine)


async def test_orders_create_bare_customers_that_a_customers_file_fills_in(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    orders = write(
        tmp_path / "o.csv", f"{ORDERS_HEADER}\nO1,NEW1,2024-05-01 10:00,2024-05-01 10:01,,,,10,,,,\n"
    )
    await import_file(engine=engine, kind="orders", path=orders)
    (bare,) = await rows(engine, select(Customer))
    assert (bare.external_id, bare.nickname, bare.phone, bare.purchases, bare.total_spent_cents) == (
        "NEW1", None, None, 1, 1000
    )  # fmt: skip
    filled = await import_file(
        engine=engine,
        kind="customers",
        path=write(tmp_path / "c.csv", f"{CUSTOMERS_HEADER}\nNEW1,阿花,,13900000000,,,,,,\n"),
    )
    assert (filled.updated, filled.inserted) == (1, 0)
    (customer,) = await rows(engine, select(Customer))
    assert (customer.id, customer.nickname, customer.phone) == (bare.id, "阿花", "13900000000")
    assert customer.purchases == 1  # the figures survive a profile update


async def test_empty_cells_of_a_partial_file_leave_stored_values(engine: AsyncEngine, tmp_path: Path) -> None:
    full = f"{CUSTOMERS_HEADER}\nC1,nick,名字,13800138000,a@b.cn,男,广东省,深圳,1991-02-03,2024-01-01\n"
    await import_file(engine=engine, kind="customers", path=write(tmp_path / "full.csv", full))
    partial = write(tmp_path / "partial.csv", "客户ID,手机号,邮箱\nC1,,new@b.cn\n")
    done = await import_file(engine=engine, kind="customers", path=partial)
    assert done.updated == 1
    (c,) = await rows(engine, select(Customer))
    assert (c.nickname, c.name, c.phone, c.email, c.gender, c.birthday) == (
        "nick", "名字", "13800138000", "new@b.cn", "m", date(1991, 2, 3)
    )  # fmt: skip

    orders = f"{ORDERS_HEADER}\nO1,C1,2024-05-01 10:00,2024-05-01 10:05,,,,99,,,,A×1\n"
    await import_file(engine=engine, kind="orders", path=write(tmp_path / "o1.csv", orders))
    later = (
        "order_id,customer_id,created_at,amount,shipped_at,carrier\n"
        "O1,C1,2024-05-01 10:00,99,2024-05-02 08:00,中通\n"
    )
    done = await import_file(engine=engine, kind="orders", path=write(tmp_path / "o2.csv", later))
    assert done.updated == 1
    (o,) = await rows(engine, select(Order))
    assert o.paid_at is not None and o.status == "shipped" and o.carrier == "中通"  # moved on, paid kept
    assert await count(engine, OrderItem) == 1  # no items column: the items stay
    await assert_figures_consistent(engine)


async def test_changed_orders_update_items_and_figures(engine: AsyncEngine, tmp_path: Path) -> None:
    first = (
        f"{ORDERS_HEADER}\n"
        "O1,C1,2024-05-01 10:00,2024-05-01 10:05,,,,100,,,,A×1;B×2\n"
        "O2,C1,2024-05-03 10:00,2024-05-03 10:05,,,,300,,,,C\n"
    )
    await import_file(engine=engine, kind="orders", path=write(tmp_path / "a.csv", first))
    # O2 is refunded, O1's items changed, O3 is new and moves to another customer later.
    second = (
        "order_id,customer_id,created_at,paid_at,refunded_at,status,amount,items\n"
        "O1,C1,2024-05-01 10:00,2024-05-01 10:05,,,100,A×3\n"
        "O2,C1,2024-05-03 10:00,2024-05-03 10:05,2024-05-09 10:00,退款成功,300,C\n"
        "O3,C1,2024-05-04 10:00,2024-05-04 10:00,,,50,D\n"
    )
    done = await import_file(engine=engine, kind="orders", path=write(tmp_path / "b.csv", second))
    assert (done.updated, done.inserted, done.unchanged) == (2, 1, 0)
    (c1,) = await rows(engine, select(Customer))
    assert (c1.orders_count, c1.purchases) == (3, 2)
    assert (c1.total_spent_cents, c1.last_purchase_cents) == (15000, 5000)
    o1_items = await rows(
        engine,
        select(Product.name, OrderItem.quantity)
        .join(Product, Product.id == OrderItem.product_pk)
        .join(Order, Order.id == OrderItem.order_pk)
        .where(Order.order_no == "O1"),
    )
    assert o1_items == [("A", 3)]

    moved = "order_id,customer_id,created_at,amount\nO3,C2,2024-05-04 10:00,50\n"
    done = await import_file(engine=engine, kind="orders", path=write(tmp_path / "c.csv", moved))
    assert done.updated == 1
    owners = await rows(engine, select(OrderItem.customer_pk, Customer.external_id).join(
        Customer, Customer.id == OrderItem.customer_pk).join(Order, Order.id == OrderItem.order_pk).where(
        Order.order_no == "O3"))  # fmt: skip
    assert [ext for _, ext in owners] == ["C2"]
    await assert_figures_consistent(engine)


async def test_ties_on_paid_at_follow_compute_figures(engine: AsyncEngine, tmp_path: Path) -> None:
    same = "2024-05-01 10:05:00"
    first = f"{ORDERS_HEADER}\nO1,C1,2024-05-01 10:00,{same},,,,100,,,,\n"
    await import_file(engine=engine, kind="orders", path=write(tmp_path / "a.csv", first))
    later = (
        f"{ORDERS_HEADER}\nO0,C1,2024-05-01 09:00,{same},,,,70,,,,\nO2,C1,2024-05-01 10:01,{same},,,,30,,,,\n"
    )
    await import_file(engine=engine, kind="orders", path=write(tmp_path / "b.csv", later))
    (c,) = await rows(engine, select(Customer))
    # Fed by created_at: the earliest created wins the first purchase, the latest created the last.
    assert (c.first_purchase_cents, c.last_purchase_cents, c.purchases) == (7000, 3000, 3)
    await assert_figures_consistent(engine)


async def test_new_orders_tying_in_and_across_batches_keep_figures_exact(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Coarse times (many equal paid_at / created_at), refunds and unpaid orders, fed in small
    batches over several files: the set-based figure update must agree with compute_figures."""
    rng = random.Random(5)
    minutes = [f"2024-05-01 10:0{m}" for m in range(4)]
    number = 0
    for part in range(4):
        lines = []
        for _ in range(30):
            number += 1
            created = rng.choice(minutes)
            paid = rng.choice([*minutes[minutes.index(created) :], ""])
            status = rng.choice(["", "", "refunded"]) if paid else ""
            lines.append(
                f"O{number},C{rng.randrange(5)},{created},{paid},,,{status},{rng.randrange(1, 90)},,,,"
            )
        path = write(tmp_path / f"part{part}.csv", ORDERS_HEADER + "\n" + "\n".join(lines) + "\n")
        done = await import_file(engine=engine, kind="orders", path=path, batch_size=rng.choice([3, 7, 30]))
        assert done.failed == 0
        await assert_figures_consistent(engine)


async def test_ties_inside_one_batch_follow_compute_figures(engine: AsyncEngine, tmp_path: Path) -> None:
    same = "2024-05-01 10:05:00"
    text = (
        f"{ORDERS_HEADER}\nO2,C1,2024-05-01 10:01,{same},,,,30,,,,\n"
        f"O0,C1,2024-05-01 09:00,{same},,,,70,,,,\nO1,C1,2024-05-01 09:00,{same},,,,50,,,,\n"
        f"O3,C1,2024-05-01 10:01,{same},,,,20,,,,\n"
    )
    await import_file(engine=engine, kind="orders", path=write(tmp_path / "a.csv", text))
    (c,) = await rows(engine, select(Customer))
    # created_at first, then file order (ids): O0 is the first purchase, O3 the last.
    assert (c.first_purchase_cents, c.last_purchase_cents, c.max_payment_cents) == (7000, 2000, 7000)
    await assert_figures_consistent(engine)


async def test_markup_and_sql_are_stored_verbatim(engine: AsyncEngine, tmp_path: Path) -> None:
    nasty = "<b>'; DROP TABLE customer;--</b>"
    robert = "Robert'); DROP TABLE orders;--"
    text = f'{CUSTOMERS_HEADER}\n"{nasty}","<script>alert(1)</script>","{robert}",,,,,,,\n'
    done = await import_file(engine=engine, kind="customers", path=write(tmp_path / "c.csv", text))
    assert done.inserted == 1
    orders = f'{ORDERS_HEADER}\nX1,"{nasty}",2024-05-01 10:00,,,,,1,"<i>src</i>",,,"<a href=x>包</a>×2"\n'
    assert (
        await import_file(engine=engine, kind="orders", path=write(tmp_path / "o.csv", orders))
    ).inserted == 1
    (c,) = await rows(engine, select(Customer))
    assert (c.external_id, c.nickname, c.name) == (
        nasty,
        "<script>alert(1)</script>",
        "Robert'); DROP TABLE orders;--",
    )
    assert [p.name for p in await rows(engine, select(Product))] == ["<a href=x>包</a>"]
    assert (await rows(engine, select(Order.source)))[0].source == "<i>src</i>"


# ---------------------------------------------------------------------------------------------
# Bad rows and rejected files.


async def test_each_bad_row_goes_to_the_error_file_with_its_line(engine: AsyncEngine, tmp_path: Path) -> None:
    long_id = "L" * 65
    text = (
        f"{ORDERS_HEADER}\n"
        "G1,C1,2024-05-01 10:00,2024-05-01 10:01,,,,10,,,,\n"  # 2 good
        "B1,C1,2024-13-01 10:00,,,,,10,,,,\n"  # 3 bad created_at
        "B2,C1,2024-05-01 10:00,,,,,-5.00,,,,\n"  # 4 negative amount
        "B3,C1,2024-05-01 10:00,,,,,,,,,\n"  # 5 missing amount
        ",C1,2024-05-01 10:00,,,,,10,,,,\n"  # 6 missing order id
        "B5,C1,2024-05-01 10:00,,,,,10,,,,×3\n"  # 7 unparseable items
        f"{long_id},C1,2024-05-01 10:00,,,,,10,,,,\n"  # 8 too long
        "B7,C1,2024-05-01 10:00,2024-05-01 09:59,,,,10,,,,\n"  # 9 paid before created
        "B8,C1,2024-05-01 10:00,,,,发货中了吗,10,,,,\n"  # 10 unknown status
        "B9,C1,2024-05-01 10:00,yesterday,,,,10,,,,\n"  # 11 bad paid_at
        "\n"  # 12 blank: skipped, still counted as a line
        '"G2",C1,2024-05-02 10:00,,,,,"1,000.10",,,,"多行\n'  # 13-14 good, a quoted line break
        'name"\n'
        "B10,C1,2024-05-02 10:00,,,,,10.001,,,,\n"  # 15 fractions of a cent
    )
    source = write(tmp_path / "orders.csv", text)
    done = await import_file(engine=engine, kind="orders", path=source)
    assert (done.rows_read, done.inserted, done.failed) == (12, 2, 10)
    assert done.errors_path == tmp_path / "orders.errors.csv"
    found = {int(r["line"]): r["reason"] for r in error_rows(done)}
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 15]
    assert "created_at" in found[3] and "2024-13-01" in found[3]
    assert "negative amount" in found[4]
    assert "missing amount" in found[5]
    assert "missing order_id" in found[6]
    assert "unparseable items" in found[7]
    assert "longer than 64" in found[8]
    assert "paid_at is before created_at" in found[9]
    assert "unknown status" in found[10]
    assert found[11].startswith("paid_at")
    assert "fractions of a cent" in found[15]
    first = error_rows(done)[0]
    assert (first["file"], first["order_id"], first["created_at"]) == ("orders.csv", "B1", "2024-13-01 10:00")
    assert sorted(o.order_no for o in await rows(engine, select(Order))) == ["G1", "G2"]


async def test_bad_customer_rows(engine: AsyncEngine, tmp_path: Path) -> None:
    text = (
        f"{CUSTOMERS_HEADER}\n"
        "C1,ok,,13800138000,,,,,,\n"
        "C2,,,not-a-phone,,,,,,\n"
        "C3,,,,,alien,,,,\n"
        "C4,,,,,,,,1990-02-30,\n"
        f"C5,{'n' * 129},,,,,,,,\n"
        ",nobody,,,,,,,,\n"
    )
    errors = tmp_path / "elsewhere" / "bad.csv"
    errors.parent.mkdir()
    done = await import_file(
        engine=engine, kind="customers", path=write(tmp_path / "c.csv", text), errors_path=errors
    )
    assert (done.inserted, done.failed, done.errors_path) == (1, 5, errors)
    reasons = [r["reason"] for r in error_rows(done)]
    assert "implausible phone" in reasons[0] and "unknown gender" in reasons[1]
    assert "not a date" in reasons[2]
    assert "nickname longer than 128" in reasons[3] and "missing customer_id" in reasons[4]


async def test_missing_required_columns_reject_the_file_and_write_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    source = write(tmp_path / "orders.csv", "订单编号,买家昵称,金额\nO1,someone,10\n")
    with pytest.raises(MissingColumnsError) as caught:
        await import_file(engine=engine, kind="orders", path=source)
    message = str(caught.value)
    assert "customer_id" in message and "created_at" in message and "'买家昵称'" in message
    assert caught.value.missing == ("customer_id", "created_at")
    assert await count(engine, Order) == 0 and await count(engine, Customer) == 0
    assert not (tmp_path / "orders.errors.csv").exists()


async def test_unreadable_files_are_rejected(engine: AsyncEngine, tmp_path: Path) -> None:
    with pytest.raises(FileRejected):
        await import_file(engine=engine, kind="orders", path=tmp_path / "nope.csv")
    with pytest.raises(FileRejected):
        await import_file(engine=engine, kind="orders", path=write(tmp_path / "empty.csv", ""))
    with pytest.raises(FileRejected):
        await import_file(engine=engine, kind="orders", path=write(tmp_path / "old.xls", "x"))


# ---------------------------------------------------------------------------------------------
# Encodings and formats (SQLite is enough: reading does not depend on the database).

TAOBAO_ORDERS = (
    "订单编号,买家会员名,订单创建时间,订单付款时间 ,订单状态,买家实际支付金额,总金额,"
    "宝贝标题,物流公司,物流单号\n"
    '="2212345678901234",小熊,2024-05-01 10:00:00,2024-05-01 10:03:00,交易成功,199.00,219.00,'
    "婴儿湿巾*2,中通,7312\n"
    "2212345678905678,小熊,2024/05/02 11:00,,等待买家付款,59.90,59.90,口红,,\n"
)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
async def test_taobao_style_export_in_any_encoding(sqlite_url: str, tmp_path: Path, encoding: str) -> None:
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    source = write(tmp_path / "淘宝订单.csv", TAOBAO_ORDERS, encoding)
    done = await import_file(engine=engine, kind="orders", path=source)
    assert (done.inserted, done.failed) == (2, 0)
    got = {o.order_no: o for o in await rows(engine, select(Order))}
    assert got["2212345678901234"].amount_cents == 19900  # 实付 wins over 总金额
    assert got["2212345678901234"].status == "signed"
    assert got["2212345678905678"].status == "created"
    assert (await rows(engine, select(Customer.external_id)))[0].external_id == "小熊"
    assert (await rows(engine, select(OrderItem.quantity)))[0].quantity == 2
    await engine.dispose()


async def test_xlsx_is_read_as_a_stream(sqlite_url: str, tmp_path: Path) -> None:
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["客户ID", "昵称", "手机", "生日", "注册时间"])
    sheet.append(["X1", "表格", 13800138000, datetime(1990, 1, 2), datetime(2024, 1, 1, 8, 0)])
    sheet.append([None, None, None, None, None])  # blank row 3
    sheet.append(["X2", "坏号码", "12", None, None])  # row 4 fails
    sheet.append([1234567, "数字ID", None, "1988-08-08", "2024-01-01 08:00"])
    path = tmp_path / "会员.xlsx"
    book.save(path)
    done = await import_file(engine=engine, kind="customers", path=path)
    assert (done.rows_read, done.inserted, done.failed) == (3, 2, 1)
    assert [int(r["line"]) for r in error_rows(done)] == [4]
    got = {c.external_id: c for c in await rows(engine, select(Customer))}
    assert got["X1"].phone == "13800138000" and got["X1"].birthday == date(1990, 1, 2)
    assert got["X1"].created_at == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert got["1234567"].birthday == date(1988, 8, 8)
    await engine.dispose()


@pytest.mark.parametrize("parse_in_process", [False, True], ids=["parsed-here", "parser-process"])
async def test_a_file_that_turns_invalid_midway_keeps_the_rows_before(
    sqlite_url: str, tmp_path: Path, parse_in_process: bool
) -> None:
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    # Past the first MiB the encoding is sniffed from, a GBK row.
    good = "customer_id,nickname\n" + "".join(f"C{i},n{i}\n" for i in range(100_000))
    assert len(good) > import_files.SNIFF_BYTES
    path = tmp_path / "mixed.csv"
    path.write_bytes(good.encode() + "C999,坏\n".encode("gbk"))
    with pytest.raises(FileRejected, match=r"near line (\d+)") as caught:
        await import_file(
            engine=engine, kind="customers", path=path, batch_size=5000, parse_in_process=parse_in_process
        )
    line = int(re.search(r"near line (\d+)", str(caught.value)).group(1))  # type: ignore[union-attr]
    assert 90_000 < line <= 100_002
    assert await count(engine, Customer) == line - 2  # every row before that line landed
    await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Batches are transactions.


def fail_the_second_batch(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The second batch's write fails once its orders and items are written, before its figures
    are; returns the real step."""
    real = importer._fresh_figures
    calls = 0

    def fail_second_batch(*args: Any) -> list[tuple[Any, ...]]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(importer, "_fresh_figures", fail_second_batch)
    return real


async def test_a_failing_batch_leaves_nothing_half_written(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [f"O{i},C{i % 3},2024-05-01 10:0{i},2024-05-01 10:0{i},,,,1{i},,,,P{i}×1" for i in range(6)]
    source = write(tmp_path / "o.csv", ORDERS_HEADER + "\n" + "\n".join(lines) + "\n")
    real = fail_the_second_batch(monkeypatch)
    with pytest.raises(RuntimeError):
        await import_file(engine=engine, kind="orders", path=source, batch_size=3)
    assert sorted(o.order_no for o in await rows(engine, select(Order))) == ["O0", "O1", "O2"]
    assert await count(engine, OrderItem) == 3 and await count(engine, Product) == 3
    assert await count(engine, Customer) == 3
    await assert_figures_consistent(engine)
    monkeypatch.setattr(importer, "_fresh_figures", real)
    done = await import_file(engine=engine, kind="orders", path=source, batch_size=3)
    assert (done.unchanged, done.inserted) == (3, 3)
    await assert_figures_consistent(engine)


async def test_a_key_repeated_in_one_file_is_merged_in_file_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    text = (
        f"{ORDERS_HEADER}\n"
        "O1,C1,2024-05-01 10:00,,,,,10,,,,\n"
        "O1,C1,2024-05-01 10:00,2024-05-01 11:00,,,,10,,,,\n"
        "O1,C1,2024-05-01 10:00,2024-05-01 11:00,,,,10,,,,\n"
    )
    done = await import_file(engine=engine, kind="orders", path=write(tmp_path / "o.csv", text))
    assert (done.inserted, done.updated, done.unchanged) == (1, 1, 1)
    (o,) = await rows(engine, select(Order))
    assert o.status == "paid"
    await assert_figures_consistent(engine)


async def test_demo_shop_imports_consistently(engine: AsyncEngine, tmp_path: Path) -> None:
    customers, orders = write_demo_csv(tmp_path, 150, seed=11, now=NOW)
    progress: list[int] = []
    await import_file(engine=engine, kind="customers", path=customers)
    done = await import_file(
        engine=engine, kind="orders", path=orders, batch_size=100, progress=progress.append
    )
    assert done.failed == 0 and done.inserted == done.rows_read
    assert progress[-1] == done.rows_read and progress == sorted(progress)
    assert await count(engine, OrderItem) >= done.inserted
    await assert_figures_consistent(engine)


# ---------------------------------------------------------------------------------------------
# Parsing, no database.


def test_amounts_are_exact_cents() -> None:
    texts = ("123.45", "¥1,234.50", "1234", "0.1", "￥ 8.00 ", "RMB 12", "3.100")
    assert [parse_amount(t) for t in texts] == [12345, 123450, 123400, 10, 800, 1200, 310]
    assert parse_amount("0.29") == 29 and parse_amount("1.13") == 113  # where float * 100 goes wrong
    for bad in ("-1", "(5.00)", "", "abc", "1.005", "1e3", "１２"):
        with pytest.raises(RowError):
            parse_amount(bad)


def test_items_accept_the_common_separators() -> None:
    assert parse_items("面霜×2; 口红x1;面霜*3；湿巾 X 4;奶瓶") == {"面霜": 5, "口红": 1, "湿巾": 4, "奶瓶": 1}
    assert parse_items("iPhone X") == {"iPhone X": 1}
    assert parse_items("纸巾 80抽×6包;纸巾 80抽×6包×2") == {"纸巾 80抽×6包": 3}
    for bad in ("×2", "面霜×", "面霜×0", "面霜x0", ";", "面霜×100001"):
        with pytest.raises(RowError):
            parse_items(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01 10:00:00", "2024-05-01 02:00:00.000000"),
        ("2024-05-01 10:00", "2024-05-01 02:00:00.000000"),
        ("2024/5/1 9:05", "2024-05-01 01:05:00.000000"),
        ("2024-05-01", "2024-04-30 16:00:00.000000"),
        ("2024-05-01T10:00:00+00:00", "2024-05-01 10:00:00.000000"),
        ("2024-05-01T10:00:00.250Z", "2024-05-01 10:00:00.250000"),
        ("2024-05-01 10:00:00-05:30", "2024-05-01 15:30:00.000000"),
        ("2024年5月1日 10:00", "2024-05-01 02:00:00.000000"),
    ],
)
def test_times_become_utc(text: str, expected: str) -> None:
    parse = TimeParser(SHANGHAI)
    assert parse(text) == expected
    assert parse(text) == expected  # the second time through the hour cache


def test_times_around_a_dst_change_match_zoneinfo() -> None:
    zone = ZoneInfo("America/New_York")
    parse = TimeParser(zone)
    for text in ("2024-03-10 01:59:59", "2024-03-10 03:00:00", "2024-11-03 01:30:00", "2024-11-03 00:59:00"):
        for _ in range(2):
            local = datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)
            assert parse(text) == local.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_bad_times_are_row_errors() -> None:
    parse = TimeParser(SHANGHAI)
    for bad in ("2024-02-30 10:00:00", "2024-05-01 24:00:00", "2024-05-01 10:60:00", "soon", "1800-01-01"):
        with pytest.raises(RowError):
            parse(bad)
    assert parse("") is None


def test_headers_match_in_any_case_and_spacing() -> None:
    fields = resolve_header(
        "orders", [" Order_ID ", "买家ID", "下单时间", "订单金额", "实付金额", "unrelated"]
    )
    assert fields == {"order_id": 0, "customer_id": 1, "created_at": 2, "amount": 4}
    assert "| `order_id` | yes |" in mapping_markdown() and "订单编号" in mapping_markdown()


async def test_a_customers_time_zone_is_imported_checked_and_kept(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    text = (
        "customer_id,nickname,时区\nZ1,新加坡客户,asia/singapore\nZ2,柏林客户,Europe/Berlin\n"
        "Z3,坏时区,+08:00\n"
    )
    done = await import_file(engine=engine, kind="customers", path=write(tmp_path / "z.csv", text))
    assert (done.inserted, done.failed) == (2, 1)
    (bad,) = error_rows(done)
    assert bad["line"] == "4" and bad["reason"].startswith("zone: not a time zone: '+08:00'")
    # A later file without the zone, or with the cell empty, leaves it as it is.
    again = "customer_id,nickname,zone\nZ1,新加坡客户 VIP,\n"
    await import_file(engine=engine, kind="customers", path=write(tmp_path / "z2.csv", again))
    await import_file(
        engine=engine, kind="customers", path=write(tmp_path / "z3.csv", "customer_id,name\nZ2,王\n")
    )
    stored = await rows(engine, select(Customer.external_id, Customer.zone).order_by(Customer.external_id))
    assert stored == [("Z1", "Asia/Singapore"), ("Z2", "Europe/Berlin")]
