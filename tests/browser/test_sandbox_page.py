"""The sandbox page in a real browser: a card, an edit in place, a follow-up fired by moving the clock,
a care approval from a shop event, a stranger refused; and bad requests answered with a clear 400.

One `python -m bot sandbox` process serves the module; Chromium drives the page like a person would.
"""

from __future__ import annotations

import re
import sqlite3
import struct
import urllib.error
import urllib.request
import zlib
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from sandbox.runner import GROUP_ID, PEOPLE, SANDBOX_TOKEN
from tests.browser.conftest import ARTIFACTS, Sandbox, says
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.browser
MEMBERS_ONLY = (
    "Sorry, Touchpoint works only for members of a bound support team. "
    "Ask your team lead to add you to the team group, then try again."
)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def open_page(page: Page, sandbox: Sandbox, who: str, lang: str = "en") -> None:
    page.goto(f"{sandbox.base_url}/?lang={lang}&as={who}")
    page.wait_for_selector("body[data-ready='1']")


def bot_message(page: Page, text: str) -> Locator:
    """The latest bot message whose text contains `text` (waits for it)."""
    found = page.locator(".msg.from-bot", has_text=text).last
    expect(found).to_be_visible()
    return found


def by_id(page: Page, message: Locator) -> Locator:
    return page.locator(f".msg[data-id='{message.get_attribute('data-id')}']")


def press(message: Locator, label: str) -> None:
    message.locator(".kb-button", has_text=label).first.click()


def send(page: Page, text: str) -> None:
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def png(width: int = 320, height: int = 140) -> bytes:
    """A small chart-like PNG (blue bars on white), made here so nothing is downloaded."""
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            bar = (x // 40) % 2 == 0 and y > height - 30 - (x // 40) * 15
            row += bytes((51, 144, 236) if bar else (255, 255, 255))
        rows.append(b"\x00" + bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def send_photo(sandbox: Sandbox, caption: str) -> None:
    """The bot's own call, as its report jobs make it: sendPhoto, multipart, to the demo group."""
    boundary = "touchpointboundary"
    image = png()
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n{GROUP_ID}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="caption"\r\n\r\n{caption}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="chart.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    request = urllib.request.Request(
        f"{sandbox.base_url}/bot{SANDBOX_TOKEN}/sendPhoto",
        data=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def demo_customer(sandbox: Sandbox, skip: int = 0) -> dict[str, Any]:
    customers = [c for c in sandbox.get("/sandbox/api/customers", q="") if c["phone"] and c["nickname"]]
    return customers[skip]


def test_card_follow_up_care_approval_and_a_stranger_in_the_browser(page: Page, sandbox: Sandbox) -> None:
    customer = demo_customer(sandbox)
    open_page(page, sandbox, "agent2")  # Alice reads English

    # The composer suggests the bot's commands (setMyCommands); then a card, drawn from its entities.
    page.locator("#input").fill("/ca")
    expect(page.locator("#suggestions .suggestion", has_text="/card")).to_be_visible()
    send(page, f"/card {customer['phone']}")
    card = bot_message(page, customer["nickname"])
    expect(card.locator(".text strong").first).to_be_visible()  # bold name
    expect(card.locator(".text code").first).to_be_visible()  # ID and order numbers as code
    expect(card.locator(".kb-button", has_text="Orders")).to_be_visible()
    shot(page, "01-card")

    # A button edits the message in place: same place, new text, marked edited.
    card = by_id(page, card)
    press(card, "Orders")
    expect(card.locator(".text")).to_contain_text("orders · page 1/")
    expect(card.locator(".edited")).to_be_visible()
    assert card.count() == 1
    press(card, "Card")
    expect(card.locator(".kb-button", has_text="Follow up")).to_be_visible()

    # A follow-up from the card; moving the clock on fires its reminder; Done closes it.
    press(card, "Follow up")
    expect(card.locator(".kb-button", has_text="Ordered, not paid")).to_be_visible()
    press(card, "Ordered, not paid")
    expect(page.locator(".toast", has_text="⏱").last).to_be_visible()  # the callback answer
    bot_message(page, "will follow up with")
    page.locator("#clock-buttons [data-minutes='15']").click()
    expect(page.locator("#clock-offset")).to_contain_text("15 min ahead")
    reminder = by_id(page, bot_message(page, "time to follow up"))
    expect(reminder.locator(".text")).to_contain_text(customer["nickname"])
    shot(page, "02-reminder")
    press(reminder, "Done")
    expect(reminder.locator(".text")).to_contain_text("Done by Alice")
    expect(reminder.locator(".kb-button")).to_have_count(0)

    # ForceReply: the note flow asks Alice to reply; the composer replies to that message.
    press(card, "Note")
    bot_message(page, "reply with the note")
    expect(page.locator("#reply-chip")).to_be_visible()
    send(page, "prefers SF Express, call after 18:00")
    bot_message(page, "Note saved")
    expect(page.locator(".msg.own .quote").last).to_contain_text("reply with the note")

    # A chart, as the report jobs send it: the photo is shown from the emulator's stored bytes.
    send_photo(sandbox, "weekly chart")
    photo = page.locator(".msg.from-bot img.photo").last
    expect(photo).to_be_visible()
    assert photo.evaluate("img => img.complete && img.naturalWidth") == 320

    # The lead fires an unpaid order at another customer; 30 minutes on, its reminder card asks for approval.
    page.locator("[data-who='lead']").click()
    expect(page.locator("[data-who='lead']")).to_have_class(re.compile("active"))
    buyer = demo_customer(sandbox, skip=1)
    page.locator("#customer-search").fill(buyer["phone"])
    page.locator(f"#customers [data-customer-id='{buyer['customer_id']}']").click()
    page.locator("#event-buttons [data-event='created']").click()
    toast = page.locator(".toast", has_text="Order created (unpaid)").last
    expect(toast).to_be_visible()
    order_no = re.search(r"SBX\S+", toast.inner_text()).group(0)  # type: ignore[union-attr]
    page.locator("#clock-buttons [data-minutes='30']").click()
    approval = by_id(page, bot_message(page, order_no))
    approve = says("zh_CN", "✅ Approve")  # care cards speak the team's language (zh_CN by default)
    shot(page, "03-approval-card")
    press(approval, approve)
    approved_by = says("zh_CN", "✅ Approved by {who} · goes {at}")
    expect(approval.locator(".text")).to_contain_text(approved_by)
    expect(approval.locator(".text")).to_contain_text(PEOPLE["lead"]["first_name"])
    expect(page.locator("#outbox .delivery", has_text=order_no)).to_be_visible()
    deliveries = [d for d in sandbox.get("/control/outbox") if d.get("order_no") == order_no]
    assert len(deliveries) == 1, deliveries
    shot(page, "04-approved")

    # The stranger sees the group but may not write in it; a button press is refused; so is a DM.
    page.locator("[data-who='stranger']").click()
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#composer")).to_be_hidden()
    press(by_id(page, card), "Refresh")
    expect(page.locator("#alert-text")).to_have_text(
        says("zh_CN", "Only members of this team can use these buttons.")
    )
    shot(page, "05-stranger-refused")
    page.locator("#alert-ok").click()
    page.locator("[data-chat='private']").click()
    send(page, f"/card {customer['phone']}")
    refusal = bot_message(page, says("zh_CN", MEMBERS_ONLY)[:12])
    expect(refusal).not_to_contain_text(customer["nickname"])

    # Back to Alice in the group: the picture docs/sandbox.png was copied from.
    page.locator("[data-who='agent2']").click()
    page.locator("[data-chat='group']").click()
    expect(page.locator(".msg", has_text=order_no).last).to_be_visible()
    send(page, f"/card {buyer['phone']}")
    expect(bot_message(page, buyer["nickname"]).locator(".kb-button").first).to_be_visible()
    expect(page.locator(".toast")).to_have_count(0, timeout=6_000)
    shot(page, "sandbox")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_entities_become_nodes_at_utf16_offsets_and_markup_in_text_stays_text(
    page: Page, sandbox: Sandbox
) -> None:
    open_page(page, sandbox, "agent2")
    html = "<img src=x onerror=alert(1)>"
    text = f"😀 bold both {html} link bad 🎁 tail"
    at = lambda prefix: utf16(prefix.format(html=html))  # noqa: E731
    entities = [
        {"type": "bold", "offset": at("😀 "), "length": utf16("bold both")},
        {"type": "italic", "offset": at("😀 bold "), "length": utf16("both")},
        {"type": "code", "offset": at("😀 bold both "), "length": utf16(html)},
        {"type": "text_link", "offset": at("😀 bold both {html} "), "length": 4, "url": "https://example.com/"},
        {"type": "text_link", "offset": at("😀 bold both {html} link "), "length": 3, "url": "javascript:1"},
        {"type": "underline", "offset": at("😀 bold both {html} link bad 🎁 "), "length": 4},
    ]
    drawn = page.evaluate(
        """([text, entities]) => {
            const box = document.createElement("div");
            box.append(renderEntities(text, entities));
            return {
                text: box.textContent,
                bold: box.querySelector("strong").textContent,
                nested: box.querySelector("strong em").textContent,
                code: box.querySelector("code").textContent,
                images: box.querySelectorAll("img").length,
                links: [...box.querySelectorAll("a")].map((a) => [a.textContent, a.href]),
                underline: box.querySelector("u").textContent,
            };
        }""",
        [text, entities],
    )
    assert drawn == {
        "text": text,
        "bold": "bold both",
        "nested": "both",
        "code": html,
        "images": 0,
        "links": [["link", "https://example.com/"]],
        "underline": "tail",
    }


def test_the_page_in_chinese_by_default(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.base_url}/")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#send")).to_have_text(says("zh_CN", "Send"))
    expect(page.locator("[data-who='agent'] .person-role")).to_have_text(says("zh_CN", "Agent"))
    expect(page.locator("#lang option:checked")).to_have_text("中文")


def orders_and_events(sandbox: Sandbox) -> tuple[int, int]:
    with sqlite3.connect(f"file:{sandbox.database}?mode=ro", uri=True) as db:
        orders = db.execute("SELECT count(*) FROM orders").fetchone()[0]
        events = db.execute("SELECT count(*) FROM shop_event").fetchone()[0]
    return orders, events


BAD_REQUESTS: list[tuple[str, str, Any, dict[str, Any], str]] = [
    ("POST", "/sandbox/api/clock", b"{not json", {}, "not valid JSON"),
    ("POST", "/sandbox/api/clock", {"minutes": "soon"}, {}, '"minutes" must be a whole number'),
    ("POST", "/sandbox/api/clock", {"minutes": 0}, {}, '"minutes" must be a whole number'),
    ("POST", "/sandbox/api/clock", {"minutes": 99999}, {}, "from 1 to 1440"),
    ("POST", "/sandbox/api/clock", {"minutes": 5, "hours": 1}, {}, "unknown field"),
    ("POST", "/sandbox/api/clock", [5], {}, "must be a JSON object"),
    ("POST", "/sandbox/api/events", {"customer_id": "nobody-here", "kind": "created"}, {}, "no customer"),
    ("POST", "/sandbox/api/events", {"customer_id": "x", "kind": "exploded"}, {}, '"kind" must be one of'),
    ("POST", "/sandbox/api/events", {"kind": "created"}, {}, '"customer_id" is required'),
    ("POST", "/sandbox/api/send", {"as": "nobody", "chat": "group", "text": "hi"}, {}, '"as" must be one of'),
    ("POST", "/sandbox/api/send", {"as": "agent", "chat": "group", "text": "  "}, {}, "must not be empty"),
    ("POST", "/sandbox/api/send", {"as": "agent", "chat": "moon", "text": "hi"}, {}, '"chat" must be'),
    ("POST", "/sandbox/api/send", {"as": "agent", "chat": "group", "text": "x" * 5000}, {}, "longer than"),
    ("POST", "/sandbox/api/send", {"as": "agent", "chat": "group", "text": "hi", "reply_to_message_id": -3},
     {}, "reply_to_message_id"),
    ("POST", "/sandbox/api/press", {"as": "agent", "chat": "group", "message_id": 99999, "data": "x"}, {},
     "not found"),
    ("GET", "/sandbox/api/feed", None, {"as": "agent", "chat": "group", "after_version": "new"}, "number"),
    ("GET", "/sandbox/api/feed", None, {"as": "agent", "chat": "group", "timeout": "-1"}, "from 0 to 30"),
    ("GET", "/sandbox/api/state", None, {"lang": "klingon"}, "lang must be one of"),
    ("GET", "/sandbox/api/customers", None, {"q": "x" * 100}, "longer than"),
    ("POST", "/control/press", {"chat_id": GROUP_ID}, {}, "give exactly one of"),
]


@pytest.mark.parametrize(
    ("verb", "path", "body", "query", "says_why"),
    BAD_REQUESTS,
    ids=[f"{r[1]}-{i}" for i, r in enumerate(BAD_REQUESTS)],
)
def test_malformed_requests_get_a_clear_400_and_change_nothing(
    sandbox: Sandbox, verb: str, path: str, body: Any, query: dict[str, Any], says_why: str
) -> None:
    clock, before = sandbox.get("/sandbox/api/clock"), orders_and_events(sandbox)
    messages = len(sandbox.get(f"/control/chats/{GROUP_ID}/messages"))
    raw = body if isinstance(body, bytes) else None
    status, answer = sandbox.call(verb, path, None if raw else body, raw=raw, **query)
    assert status == 400, answer
    assert answer["ok"] is False and says_why in answer["error"], answer
    assert "Traceback" not in str(answer)
    assert sandbox.get("/sandbox/api/clock") == clock
    assert orders_and_events(sandbox) == before
    assert len(sandbox.get(f"/control/chats/{GROUP_ID}/messages")) == messages


def test_refusals_the_page_shows_in_the_readers_language(sandbox: Sandbox) -> None:
    status, answer = sandbox.call(
        "POST", "/sandbox/api/send", {"as": "stranger", "chat": "group", "text": "hello"}
    )
    assert status == 403 and answer["code"] == "not_member", answer
    status, answer = sandbox.call("GET", "/sandbox/api/nowhere")
    assert status == 404 and answer["ok"] is False, answer
    request = urllib.request.Request(
        f"{sandbox.base_url}/sandbox/api/clock", data=b"minutes=5", method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400  # a form another site posts is not JSON: refused
    wait_until(lambda: sandbox.get("/sandbox/api/state")["ready"], what="the sandbox")
