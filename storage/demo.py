"""A realistic demo shop (zh-CN) written as import files, and loaded through the importer.

Faker is called only to fill small pools up front; the per-customer and per-order work is plain
`random` draws and string joins, so 1 M customers / several million orders take minutes, not hours.
Times are written as the shop's local time (Asia/Shanghai, no DST since 1991), the way exports look.
"""

from __future__ import annotations

import csv
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from faker import Faker
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.importer import ImportSummary, import_file

CUSTOMER_HEADER = (
    "customer_id", "nickname", "name", "phone", "email", "gender", "province", "city", "birthday",
    "created_at",
)  # fmt: skip
ORDER_HEADER = (
    "order_id", "customer_id", "created_at", "paid_at", "shipped_at", "signed_at", "closed_at", "refunded_at",
    "status", "amount", "source", "carrier", "tracking_no", "province", "items",
)  # fmt: skip

T = TypeVar("T")
LOCAL_OFFSET = 8 * 3600  # Asia/Shanghai
DAY = 86400
CHUNK_CUSTOMERS = 20_000  # orders are generated per chunk and written sorted by time within it

PROVINCES: dict[str, tuple[str, ...]] = {
    "广东省": ("广州", "深圳", "东莞", "佛山", "珠海", "汕头"),
    "浙江省": ("杭州", "宁波", "温州", "金华", "嘉兴", "绍兴"),
    "江苏省": ("南京", "苏州", "无锡", "常州", "南通", "徐州"),
    "上海市": ("上海",),
    "北京市": ("北京",),
    "山东省": ("济南", "青岛", "烟台", "潍坊", "临沂"),
    "四川省": ("成都", "绵阳", "德阳", "宜宾"),
    "湖北省": ("武汉", "宜昌", "襄阳"),
    "河南省": ("郑州", "洛阳", "南阳", "新乡"),
    "福建省": ("福州", "厦门", "泉州", "漳州"),
    "湖南省": ("长沙", "株洲", "岳阳"),
    "安徽省": ("合肥", "芜湖", "蚌埠"),
    "河北省": ("石家庄", "唐山", "保定"),
    "陕西省": ("西安", "咸阳", "宝鸡"),
    "重庆市": ("重庆",),
    "天津市": ("天津",),
    "辽宁省": ("沈阳", "大连", "鞍山"),
    "云南省": ("昆明", "大理", "曲靖"),
    "广西壮族自治区": ("南宁", "柳州", "桂林"),
    "江西省": ("南昌", "赣州", "九江"),
    "黑龙江省": ("哈尔滨", "大庆", "齐齐哈尔"),
    "新疆维吾尔自治区": ("乌鲁木齐", "喀什", "克拉玛依"),
    "西藏自治区": ("拉萨", "日喀则"),
    "内蒙古自治区": ("呼和浩特", "包头", "鄂尔多斯"),
    "甘肃省": ("兰州", "天水"),
    "海南省": ("海口", "三亚"),
}
# Rough share of orders by province: the coastal provinces buy most.
PROVINCE_WEIGHTS = (14, 12, 11, 6, 5, 7, 6, 5, 5, 5, 4, 4, 3, 3, 3, 2, 3, 2, 2, 2, 2, 1, 0.3, 1, 1, 1)

# (category, brands, items with a price range in yuan, specs)
CATALOG: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, int, int], ...], tuple[str, ...]], ...] = (
    (
        "母婴",
        ("飞鹤", "爱他美", "惠氏", "帮宝适", "花王", "好奇", "贝亲"),
        (
            ("婴幼儿配方奶粉", 198, 428),
            ("纸尿裤", 89, 199),
            ("拉拉裤", 99, 219),
            ("婴儿湿巾", 29, 69),
            ("宽口径玻璃奶瓶", 69, 139),
            ("婴儿洗发沐浴露", 39, 89),
        ),
        ("1段 800g", "2段 800g", "3段 800g", "NB码 84片", "M码 64片", "L码 54片", "XL码 44片", "80抽×6包"),
    ),
    (
        "美妆",
        ("完美日记", "花西子", "兰蔻", "雅诗兰黛", "珀莱雅", "薇诺娜", "自然堂"),
        (
            ("丝绒哑光口红", 69, 350),
            ("空气蜜粉", 89, 199),
            ("小黑瓶精华", 399, 1080),
            ("特护霜", 168, 268),
            ("玻尿酸补水面膜", 59, 129),
            ("氨基酸洁面乳", 49, 119),
            ("防晒乳 SPF50+", 89, 239),
        ),
        ("30ml", "50ml", "100ml", "10片装", "#01 正红", "#05 豆沙", "套装"),
    ),
    (
        "服饰",
        ("优衣库", "太平鸟", "森马", "波司登", "李宁", "安踏", "蕉下"),
        (
            ("纯棉圆领短袖T恤", 59, 129),
            ("高腰阔腿牛仔裤", 129, 299),
            ("轻薄羽绒服", 399, 999),
            ("运动休闲卫衣", 159, 329),
            ("防晒冰丝袖套", 29, 69),
            ("跑步鞋", 299, 699),
        ),
        ("S", "M", "L", "XL", "XXL", "黑色", "白色", "雾霾蓝", "38码", "42码"),
    ),
    (
        "零食",
        ("三只松鼠", "良品铺子", "百草味", "卫龙", "旺旺", "来伊份"),
        (
            ("每日坚果", 59, 139),
            ("手撕牛肉干", 39, 89),
            ("辣条大礼包", 19, 49),
            ("芒果干", 15, 39),
            ("夏威夷果", 29, 59),
            ("零食大礼包", 69, 199),
        ),
        ("750g", "30包", "500g", "1kg", "家庭装", "礼盒装"),
    ),
    (
        "家居",
        ("小米", "苏泊尔", "美的", "名创优品", "网易严选", "九阳"),
        (
            ("电热水壶", 79, 199),
            ("不粘锅炒锅", 129, 399),
            ("四件套床品", 199, 599),
            ("乳胶枕", 99, 299),
            ("收纳箱", 29, 89),
            ("破壁豆浆机", 299, 799),
        ),
        ("1.5L", "1.7L", "30cm", "1.5m床", "1.8m床", "大号3个装"),
    ),
    (
        "宠物",
        ("皇家", "渴望", "伯纳天纯", "麦富迪", "网易严选"),
        (("成猫粮", 139, 569), ("幼犬粮", 119, 499), ("冻干猫条", 29, 79), ("豆腐猫砂", 39, 99)),
        ("2kg", "4.5kg", "10kg", "15支", "6L×4包"),
    ),
)

CARRIERS: tuple[tuple[str, str, int], ...] = (
    # name, tracking-number prefix, digits after it
    ("顺丰", "SF", 13), ("中通", "7", 14), ("圆通", "YT", 13), ("韵达", "43", 13),
    ("申通", "77", 13), ("京东", "JD", 13), ("邮政EMS", "98", 11),
)  # fmt: skip
CARRIER_WEIGHTS = (18, 26, 18, 16, 10, 7, 5)
SOURCES = ("淘宝", "天猫", "手机淘宝", "直播间")
FLASH_SALE = "聚划算"
MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com")


@dataclass(frozen=True, slots=True)
class _Pools:
    names: tuple[str, ...]
    nick_words: tuple[str, ...]
    logins: tuple[str, ...]
    products: tuple[tuple[str, int], ...]  # name, price in cents
    cities: tuple[tuple[str, str], ...]  # (province, city), weighted: see _weighted


def _weighted(items: Sequence[T], weights: Sequence[float], size: int = 2000) -> tuple[T, ...]:
    """A table holding each item in proportion to its weight, drawn from with `_pick`.

    random.choices recomputes cumulative weights on every call; this is one index per draw.
    """
    total = sum(weights)
    table: list[T] = []
    for item, weight in zip(items, weights, strict=True):
        table.extend([item] * max(1, round(size * weight / total)))
    return tuple(table)


def _pick(rnd: random.Random, table: Sequence[T]) -> T:
    return table[int(rnd.random() * len(table))]


def _below(rnd: random.Random, n: int) -> int:
    """randrange(n) for the hot loops; float resolution is ample for demo data."""
    return int(rnd.random() * n)


# Orders by local hour: quiet at night, peaks at lunch and in the evening.
_HOURS = _weighted(range(24), (3, 2, 1, 1, 1, 1, 2, 4, 6, 7, 8, 9, 10, 9, 8, 8, 8, 8, 9, 11, 13, 14, 12, 7))
_CARRIERS = _weighted(CARRIERS, CARRIER_WEIGHTS)
_ITEM_COUNTS = _weighted((1, 2, 3), (70, 22, 8))
_GENDERS = _weighted(("女", "男", ""), (55, 35, 10))
_COUPONS = (500, 1000, 2000, 3000)


def _pools(seed: int) -> _Pools:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rnd = random.Random(seed)
    products: list[tuple[str, int]] = []
    for _category, brands, items, specs in CATALOG:
        for brand in brands:
            for item, low, high in items:
                for spec in rnd.sample(specs, k=min(3, len(specs))):
                    price = rnd.randint(low, high) * 100 + rnd.choice((0, 0, 90, 80, 50))
                    products.append((f"{brand}{item} {spec}", price))
    cities: list[tuple[str, str]] = []
    weights: list[float] = []
    for (province, names), weight in zip(PROVINCES.items(), PROVINCE_WEIGHTS, strict=True):
        for city in names:
            cities.append((province, city))
            weights.append(weight / len(names))
    return _Pools(
        names=tuple(fake.name() for _ in range(4000)),
        nick_words=tuple(dict.fromkeys(fake.word() for _ in range(600))),  # dict: ordered, unlike a set
        logins=tuple(fake.user_name() for _ in range(3000)),
        products=tuple(products),
        cities=_weighted(cities, weights),
    )


class _Clock:
    """Formats epoch seconds as local 'YYYY-MM-DD HH:MM:SS' from lookup tables (strftime is slow)."""

    def __init__(self, start: int, end: int) -> None:
        self.day0 = (start + LOCAL_OFFSET) // DAY
        first = datetime.fromtimestamp(self.day0 * DAY, UTC)
        days = (end + LOCAL_OFFSET) // DAY - self.day0 + 2
        self.days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]
        self.hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]

    def fmt(self, ts: int) -> str:
        local = ts + LOCAL_OFFSET
        return f"{self.days[local // DAY - self.day0]} {self.hms[local % DAY]}"


def _orders_per_customer(rnd: random.Random) -> int:
    """Skewed: most buy once, some 2–3, fewer 4–9, a few 10+ (mean ≈ 3.3)."""
    r = rnd.random()
    if r < 0.52:
        return 1
    if r < 0.80:
        return rnd.randint(2, 3)
    if r < 0.95:
        return rnd.randint(4, 9)
    return min(10 + int(rnd.expovariate(1 / 12)), 120)


@dataclass(slots=True)
class _Writer:
    rnd: random.Random
    pools: _Pools
    clock: _Clock
    start: int
    now: int
    order_seq: int = 0

    def customer_row(self, seq: int, first_order: int) -> list[str]:
        rnd, pools = self.rnd, self.pools
        province, city = _pick(rnd, pools.cities)
        registered = first_order - (_below(rnd, 30 * DAY) if rnd.random() < 0.7 else 600)
        return [
            f"{2_200_000_000_000 + seq * 97 + _below(rnd, 97)}",
            self._nickname(),
            _pick(rnd, pools.names),
            self._phone(),
            self._email() if rnd.random() < 0.3 else "",
            _pick(rnd, _GENDERS),
            province,
            city,
            self._birthday() if rnd.random() < 0.6 else "",
            self.clock.fmt(max(registered, self.start - 400 * DAY)),
        ]

    def _nickname(self) -> str:
        rnd, pools = self.rnd, self.pools
        style = rnd.random()
        if style < 0.35:
            return f"tb{10**7 + _below(rnd, 10**10 - 10**7)}"
        if style < 0.7:
            return f"{_pick(rnd, pools.nick_words)}{_pick(rnd, pools.nick_words)}{_below(rnd, 100)}"
        return f"{_pick(rnd, pools.logins)}{1000 + _below(rnd, 9000)}"

    def _phone(self) -> str:
        rnd = self.rnd
        digits = f"1{_pick(rnd, '3456789')}{_below(rnd, 10**9):09d}"
        style = rnd.random()
        if style < 0.9:
            return digits
        if style < 0.95:
            return f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"

    def _email(self) -> str:
        rnd = self.rnd
        if rnd.random() < 0.5:
            return f"{10**6 + _below(rnd, 10**10 - 10**6)}@qq.com"
        return f"{_pick(rnd, self.pools.logins)}{_below(rnd, 100)}@{_pick(rnd, MAIL_DOMAINS)}"

    def _birthday(self) -> str:
        rnd = self.rnd
        return f"{1965 + _below(rnd, 42)}-{1 + _below(rnd, 12):02d}-{1 + _below(rnd, 28):02d}"

    def order_rows(
        self, customer_id: str, province: str, times: Sequence[int]
    ) -> list[tuple[int, list[str]]]:
        return [(created, self._order(customer_id, province, created)) for created in times]

    def _order(self, customer_id: str, province: str, created: int) -> list[str]:
        rnd, fmt = self.rnd, self.clock.fmt
        self.order_seq += 1
        created_text = fmt(created)
        order_no = f"{created_text[2:4]}{created_text[5:7]}{created_text[8:10]}{self.order_seq:010d}"
        flash = rnd.random() < 0.1
        items, amount = self._items()
        paid = shipped = signed = closed = refunded = None
        fate = rnd.random()
        if fate < 0.08:  # never paid: closed by the platform (flash sales after 30 minutes)
            closed = created + (1800 if flash else 72 * 3600)
        else:
            paid = created + 5 + int(min(rnd.lognormvariate(5.5, 1.2), 20 * 3600))
            shipped = paid + 1800 + _below(rnd, (20 if rnd.random() < 0.85 else 60) * 3600)
            signed = shipped + DAY + _below(rnd, (8 if province in _REMOTE else 4) * DAY)
            if fate > 0.94:
                refunded = signed + 3600 + _below(rnd, 7 * DAY)
        status, stamps = _settle(self.now, paid, shipped, signed, closed, refunded)
        carrier, tracking = self._tracking() if stamps[1] else ("", "")
        return [
            order_no,
            customer_id,
            created_text,
            *(fmt(ts) if ts else "" for ts in stamps),
            status,
            f"{amount // 100}.{amount % 100:02d}",
            FLASH_SALE if flash else _pick(rnd, SOURCES),
            carrier,
            tracking,
            province,
            items,
        ]

    def _items(self) -> tuple[str, int]:
        rnd = self.rnd
        products = self.pools.products
        parts, amount = [], 0
        for _ in range(_pick(rnd, _ITEM_COUNTS)):
            name, price = _pick(rnd, products)  # a repeat is summed by the importer, as in real exports
            qty = 1 if rnd.random() < 0.8 else 2 + _below(rnd, 3)
            parts.append(f"{name}×{qty}")
            amount += price * qty
        if rnd.random() < 0.3:  # shop coupon
            amount -= min(amount // 10, _pick(rnd, _COUPONS))
        return ";".join(parts), amount

    def _tracking(self) -> tuple[str, str]:
        rnd = self.rnd
        name, prefix, digits = _pick(rnd, _CARRIERS)
        return name, f"{prefix}{10 ** (digits - 1) + _below(rnd, 9 * 10 ** (digits - 1))}"


_REMOTE = frozenset({"新疆维吾尔自治区", "西藏自治区", "内蒙古自治区", "甘肃省", "海南省"})


def _settle(
    now: int,
    paid: int | None,
    shipped: int | None,
    signed: int | None,
    closed: int | None,
    refunded: int | None,
) -> tuple[str, tuple[int | None, ...]]:
    """Drops what has not happened yet at `now`; the status follows the last step reached."""
    paid, shipped, signed, closed, refunded = (
        ts if ts is not None and ts <= now else None for ts in (paid, shipped, signed, closed, refunded)
    )
    if refunded:
        status = "refunded"
    elif closed:
        status = "closed"
    elif signed:
        status = "signed"
    elif shipped:
        status = "shipped"
    elif paid:
        status = "paid"
    else:
        status = "created"
    return status, (paid, shipped, signed, closed, refunded)


def write_demo_csv(
    out_dir: Path, customers: int, seed: int = 7, now: datetime | None = None
) -> tuple[Path, Path]:
    """Writes customers.csv and orders.csv (importer format, UTF-8); deterministic for a seed and `now`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    end = int((now or datetime.now(UTC)).timestamp())
    start = end - 730 * DAY
    rnd = random.Random(seed)
    writer = _Writer(rnd=rnd, pools=_pools(seed), clock=_Clock(start - 400 * DAY, end), start=start, now=end)
    customers_path, orders_path = out_dir / "customers.csv", out_dir / "orders.csv"
    with (
        customers_path.open("w", encoding="utf-8", newline="") as cfile,
        orders_path.open("w", encoding="utf-8", newline="") as ofile,
    ):
        cout, oout = csv.writer(cfile), csv.writer(ofile)
        cout.writerow(CUSTOMER_HEADER)
        oout.writerow(ORDER_HEADER)
        for chunk_start in range(0, customers, CHUNK_CUSTOMERS):
            chunk = range(chunk_start, min(chunk_start + CHUNK_CUSTOMERS, customers))
            orders: list[tuple[int, list[str]]] = []
            for seq in chunk:
                times = sorted(_order_times(rnd, start, end, _orders_per_customer(rnd)))
                row = writer.customer_row(seq, times[0])
                cout.writerow(row)
                orders.extend(writer.order_rows(row[0], row[6], times))
            orders.sort(key=lambda pair: pair[0])  # exports come sorted by time, customers interleaved
            oout.writerows(order for _created, order in orders)
    return customers_path, orders_path


def _order_times(rnd: random.Random, start: int, end: int, count: int) -> list[int]:
    days = (end - start) // DAY
    times = []
    for _ in range(count):
        day_start = start + _below(rnd, days) * DAY
        local_midnight = day_start - (day_start + LOCAL_OFFSET) % DAY
        seconds = _pick(rnd, _HOURS) * 3600 + _below(rnd, 3600)
        times.append(min(local_midnight + seconds, end - 60))
    if count > 1 and rnd.random() < 0.02:  # a few orders placed in the last hour, still unpaid
        times[-1] = end - rnd.randrange(60, 3600)
    return times


async def load_demo(
    engine: AsyncEngine, customers: int, seed: int = 7, now: datetime | None = None
) -> tuple[ImportSummary, ImportSummary]:
    """Generates the demo shop in a temporary directory and imports it (customers, then orders)."""
    with tempfile.TemporaryDirectory(prefix="touchpoint-demo-") as tmp:
        customers_csv, orders_csv = write_demo_csv(Path(tmp), customers, seed=seed, now=now)
        done_customers = await import_file(engine=engine, kind="customers", path=customers_csv)
        done_orders = await import_file(engine=engine, kind="orders", path=orders_csv)
    return done_customers, done_orders
