"""Which file headers the importer understands: the documented column mapping, kept as data.

Each field lists the headers that feed it, best first: when a file has two of them (Taobao exports
carry both 实付金额 and 订单金额), the earlier one wins. Headers match case-insensitively and
ignoring surrounding whitespace; columns not listed are ignored (and kept in the error file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

Kind = Literal["customers", "orders"]

CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer_id", "客户ID", "买家ID", "会员ID", "用户ID", "买家会员名"),
    "nickname": ("nickname", "买家昵称", "昵称", "旺旺"),
    "name": ("name", "姓名", "收货人姓名", "收货人"),
    "phone": ("phone", "手机", "手机号", "手机号码", "联系手机", "联系电话"),
    "email": ("email", "e-mail", "邮箱", "电子邮箱"),
    "gender": ("gender", "性别"),
    "province": ("province", "省份", "省"),
    "city": ("city", "城市", "市"),
    "birthday": ("birthday", "生日", "出生日期"),
    "created_at": ("created_at", "创建时间", "注册时间", "入会时间"),
    "zone": ("zone", "timezone", "time_zone", "时区"),
}

ORDER_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "订单编号", "订单号", "订单ID", "主订单编号"),
    "customer_id": ("customer_id", "客户ID", "买家ID", "会员ID", "用户ID", "买家会员名"),
    "created_at": ("created_at", "下单时间", "订单创建时间", "创建时间"),
    "paid_at": ("paid_at", "付款时间", "订单付款时间", "支付时间"),
    "shipped_at": ("shipped_at", "发货时间"),
    "signed_at": ("signed_at", "签收时间", "确认收货时间"),
    "closed_at": ("closed_at", "关闭时间", "交易关闭时间", "订单关闭时间"),
    "refunded_at": ("refunded_at", "退款时间", "退款完成时间"),
    "status": ("status", "订单状态", "交易状态", "状态"),
    "amount": ("amount", "实付金额", "买家实际支付金额", "实付款", "订单金额", "总金额", "金额"),
    "source": ("source", "订单来源", "来源", "渠道"),
    "carrier": ("carrier", "物流公司", "快递公司"),
    "tracking_no": ("tracking_no", "运单号", "物流单号", "快递单号"),
    "province": ("province", "省份", "收货省份", "省"),
    "items": ("items", "宝贝", "商品", "宝贝标题", "商品名称", "商品明细"),
}

COLUMNS: dict[Kind, dict[str, tuple[str, ...]]] = {"customers": CUSTOMER_COLUMNS, "orders": ORDER_COLUMNS}
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "orders": ("order_id", "customer_id", "created_at", "amount"),
}


class FileRejected(ValueError):
    """The file cannot be imported at all (unreadable, wrong format); the message says why."""


class MissingColumnsError(FileRejected):
    """The file lacks a required column; nothing of it is imported."""

    def __init__(self, kind: Kind, missing: Sequence[str], found: Sequence[str]) -> None:
        self.kind, self.missing, self.found = kind, tuple(missing), tuple(found)
        shown = ", ".join(repr(h) for h in found) or "none"
        needs = "; ".join(f"{field} (e.g. {' / '.join(COLUMNS[kind][field][:3])})" for field in missing)
        super().__init__(f"{kind} file is missing required column(s): {needs}. Headers found: {shown}.")


def normalize_header(header: str) -> str:
    return header.strip().lstrip("\ufeff").strip().casefold()


def _lookup(kind: Kind) -> dict[str, tuple[int, str]]:
    """normalized header -> (priority, field)."""
    table: dict[str, tuple[int, str]] = {}
    for field, aliases in COLUMNS[kind].items():
        for rank, alias in enumerate(aliases):
            table.setdefault(normalize_header(alias), (rank, field))
    return table


def resolve_header(kind: Kind, header: Sequence[str]) -> dict[str, int]:
    """Field -> column index for this file's header row; raises MissingColumnsError up front."""
    lookup = _lookup(kind)
    best: dict[str, tuple[int, int]] = {}  # field -> (priority, index)
    for index, raw in enumerate(header):
        hit = lookup.get(normalize_header(raw or ""))
        if hit is None:
            continue
        rank, field = hit
        if field not in best or rank < best[field][0]:
            best[field] = (rank, index)
    missing = [field for field in REQUIRED[kind] if field not in best]
    if missing:
        raise MissingColumnsError(kind, missing, [h for h in header if h])
    return {field: index for field, (_rank, index) in best.items()}


def mapping_markdown(columns: Mapping[Kind, Mapping[str, Sequence[str]]] = COLUMNS) -> str:
    """The mapping as Markdown tables, one per kind, for the README."""
    out: list[str] = []
    for kind, fields in columns.items():
        out += [f"**{kind}**", "", "| field | required | headers accepted |", "|---|---|---|"]
        for field, aliases in fields.items():
            required = "yes" if field in REQUIRED[kind] else ""
            out.append(f"| `{field}` | {required} | {', '.join(aliases)} |")
        out.append("")
    return "\n".join(out)
