"""The Bot API emulator over real HTTP: Telegram's validation, updates, webhooks, faults and limits."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import SendDocument, SendMessage
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from aiohttp import web

from bot.api_session import JsonBodySession
from sandbox.emulator import Emulator, start_emulator
from tests.emulator.conftest import BOT_ID, GROUP_ID, OTHER_TOKEN, OTHER_USER, TOKEN, USER, Api, FakeClock

pytestmark = pytest.mark.asyncio

KEYBOARD = {
    "inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]]
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


# aiogram's own session (urlencoded forms) and the bot's (JSON bodies, multipart for files).
SESSIONS = [AiohttpSession, JsonBodySession]


def png(width: int, height: int) -> bytes:
    """A valid PNG of the given size, built by hand to avoid an imaging dependency."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def description(body: dict[str, Any]) -> str:
    return str(body["description"])


# --------------------------------------------------------------------------- basics


async def test_get_me_and_request_encodings(api: Api) -> None:
    me = await api.ok("getMe")
    assert me["id"] == BOT_ID and me["is_bot"] is True
    assert (me["first_name"], me["username"]) == ("Touchpoint", "touchpoint_bot")
    async with api.session.get(f"{api.base_url}/bot{TOKEN}/GETME") as response:  # GET, any case
        assert (await response.json())["result"]["id"] == BOT_ID
    await api.user_says("hi")
    form = {"chat_id": str(USER["id"]), "text": "urlencoded", "reply_markup": '{"inline_keyboard": []}'}
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/sendMessage", data=form) as response:
        assert (await response.json())["result"]["text"] == "urlencoded"
    query = f"{api.base_url}/bot{TOKEN}/sendMessage?chat_id={USER['id']}&text=query"
    async with api.session.get(query) as response:
        assert (await response.json())["result"]["text"] == "query"


@pytest.mark.parametrize("token", ["123:short", "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "nocolon"])
async def test_malformed_token_is_unauthorized(api: Api, token: str) -> None:
    status, body = await api.bot("getMe", token=token)
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


async def test_clashing_token_for_known_bot_is_unauthorized(api: Api) -> None:
    await api.ok("getMe")
    status, _ = await api.bot("getMe", token=f"{BOT_ID}:ZZZdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    assert status == 401


async def test_unknown_method(api: Api) -> None:
    status, body = await api.bot("sendTelepathy")
    assert (status, description(body)) == (404, "Not Found: method not found")


async def test_each_token_is_its_own_bot(api: Api) -> None:
    assert (await api.ok("getMe", token=OTHER_TOKEN))["id"] == 987654321
    bots = await api.control_ok("GET", "/bots")
    assert {bot["id"] for bot in bots["bots"]} == {987654321}


# --------------------------------------------------------------------------- updates


async def test_long_poll_returns_as_soon_as_a_message_arrives(api: Api) -> None:
    await api.ok("getMe")
    started = time.monotonic()
    poll = asyncio.create_task(api.ok("getUpdates", timeout=10))
    await asyncio.sleep(0.2)
    sent = await api.user_says("/start@touchpoint_bot hello")
    updates = await poll
    assert time.monotonic() - started < 3
    assert [u["update_id"] for u in updates] == [sent["update_id"]]
    message = updates[0]["message"]
    assert message["text"] == "/start@touchpoint_bot hello"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 21}]
    assert message["chat"] == {"id": USER["id"], "type": "private", "first_name": "Ann", "username": "ann"}
    assert message["from"] == {"id": USER["id"], "is_bot": False, "first_name": "Ann", "username": "ann"}


async def test_offset_confirms_updates(api: Api) -> None:
    ids = [(await api.user_says(f"m{i}"))["update_id"] for i in range(3)]
    assert [u["update_id"] for u in await api.ok("getUpdates")] == ids  # unclaimed until the bot connects
    assert (await api.control_ok("GET", "/updates/pending", params={"token": TOKEN}))["pending"] == 3
    assert [u["update_id"] for u in await api.ok("getUpdates", offset=ids[1])] == ids[1:]
    assert [u["update_id"] for u in await api.ok("getUpdates", offset=ids[1], limit=1)] == ids[1:2]
    assert await api.ok("getUpdates", offset=ids[2] + 1) == []
    pending = await api.control_ok("GET", "/updates/pending", params={"token": TOKEN})
    assert pending == {"pending": 0, "unfetched": 0, "unclaimed": 0}


async def test_negative_offset_keeps_only_the_last_updates(api: Api) -> None:
    await api.ok("getMe")
    ids = [(await api.user_says(f"m{i}"))["update_id"] for i in range(4)]
    assert [u["update_id"] for u in await api.ok("getUpdates", offset=-2)] == ids[2:]
    assert [u["update_id"] for u in await api.ok("getUpdates")] == ids[2:]


async def test_allowed_updates_filter(api: Api) -> None:
    await api.ok("getUpdates", allowed_updates=["callback_query"])
    await api.user_says("ignored")
    assert await api.ok("getUpdates") == []  # the setting persists


async def test_newer_get_updates_terminates_the_waiting_one(api: Api) -> None:
    first = asyncio.create_task(api.bot("getUpdates", timeout=10))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(api.bot("getUpdates", timeout=1))
    status, body = await first
    assert status == 409
    assert description(body).startswith("Conflict: terminated by other getUpdates request")
    assert (await second)[0] == 200


async def test_get_updates_refused_while_webhook_is_set(api: Api) -> None:
    await api.ok("setWebhook", url="http://127.0.0.1:9/hook")
    status, body = await api.bot("getUpdates")
    assert status == 409
    assert description(body) == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
        "webhook first"
    )
    await api.ok("deleteWebhook", drop_pending_updates=True)
    assert await api.ok("getUpdates") == []


# --------------------------------------------------------------------------- sendMessage validation


async def test_send_message_builds_a_full_message(api: Api) -> None:
    await api.group()
    await api.user_says("hello", chat_id=GROUP_ID)
    message = await api.ok(
        "sendMessage",
        chat_id=GROUP_ID,
        text="<b>Hi</b> 😀 <i>there</i>",
        parse_mode="HTML",
        reply_markup=KEYBOARD,
    )
    assert message["message_id"] == 2  # the counter is shared with user messages
    assert message["from"]["id"] == BOT_ID and message["chat"]["id"] == GROUP_ID
    assert isinstance(message["date"], int)
    assert message["text"] == "Hi 😀 there"
    assert message["entities"] == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "italic", "offset": 6, "length": 5},
    ]
    assert message["reply_markup"] == KEYBOARD


@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"text": "x"}, 400, "Bad Request: chat_id is empty"),
        ({"chat_id": 424242, "text": "x"}, 400, "Bad Request: chat not found"),
        ({"chat_id": USER["id"]}, 400, "Bad Request: message text is empty"),
        ({"chat_id": USER["id"], "text": " \n "}, 400, "Bad Request: message text is empty"),
        (
            {"chat_id": USER["id"], "text": "<b></b>", "parse_mode": "HTML"},
            400,
            "Bad Request: message text is empty",
        ),
        ({"chat_id": USER["id"], "text": "x" * 4097}, 400, "Bad Request: message is too long"),
        ({"chat_id": USER["id"], "text": "😀" * 2049}, 400, "Bad Request: message is too long"),
        (
            {"chat_id": USER["id"], "text": "<div>x</div>", "parse_mode": "HTML"},
            400,
            'Bad Request: can\'t parse entities: Unsupported start tag "div" at byte offset 0',
        ),
        (
            {"chat_id": USER["id"], "text": "Total: 5.", "parse_mode": "MarkdownV2"},
            400,
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the "
            "preceding '\\'",
        ),
        (
            {"chat_id": USER["id"], "text": "x", "parse_mode": "BBCode"},
            400,
            "Bad Request: unsupported parse_mode",
        ),
        (
            {
                "chat_id": USER["id"],
                "text": "x",
                "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "é" * 33}]]},
            },
            400,
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            {"chat_id": USER["id"], "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "plain"}]]}},
            400,
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"chat_id": USER["id"], "text": "x", "reply_markup": {"inline_keyboard": {"text": "a"}}},
            400,
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array',
        ),
        (
            {
                "chat_id": USER["id"],
                "text": "x",
                "reply_markup": {"inline_keyboard": [[{"callback_data": "a"}]]},
            },
            400,
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            {"chat_id": USER["id"], "text": "x", "reply_markup": {"inline_keyboard": [["a"]]}},
            400,
            "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object",
        ),
        (
            {
                "chat_id": USER["id"],
                "text": "x",
                "reply_markup": {"inline_keyboard": [[{"text": "", "url": "a.io"}]]},
            },
            400,
            "Bad Request: BUTTON_TEXT_INVALID",
        ),
        (
            {"chat_id": USER["id"], "text": "x", "reply_to_message_id": 99},
            400,
            "Bad Request: message to be replied not found",
        ),
    ],
)
async def test_send_message_errors(api: Api, params: dict[str, Any], status: int, expected: str) -> None:
    await api.user_says("hi")  # creates the private chat
    got_status, body = await api.bot("sendMessage", **params)
    assert (got_status, body) == (status, {"ok": False, "error_code": status, "description": expected})


async def test_send_message_limits_are_inclusive(api: Api) -> None:
    await api.user_says("hi")
    assert len((await api.ok("sendMessage", chat_id=USER["id"], text="😀" * 2048))["text"]) == 2048
    data = "é" * 32  # exactly 64 bytes
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": data}]]}
    assert (await api.ok("sendMessage", chat_id=USER["id"], text="x", reply_markup=markup))[
        "reply_markup"
    ] == markup


async def test_raw_malformed_reply_markup_json(api: Api) -> None:
    await api.user_says("hi")
    form = {"chat_id": str(USER["id"]), "text": "x", "reply_markup": "{not json"}
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/sendMessage", data=form) as response:
        body = await response.json()
    assert (response.status, description(body)) == (
        400,
        "Bad Request: can't parse reply keyboard markup JSON object",
    )


async def test_removed_or_blocked_bot_is_forbidden(api: Api) -> None:
    await api.group()
    bot_user = {"id": BOT_ID, "first_name": "Touchpoint"}
    await api.control_ok("POST", f"/chats/{GROUP_ID}/members", json={"user": bot_user, "status": "kicked"})
    status, body = await api.bot("sendMessage", chat_id=GROUP_ID, text="x")
    assert (status, description(body)) == (403, "Forbidden: bot was kicked from the supergroup chat")


async def test_replies_and_forum_topics(api: Api) -> None:
    await api.group(is_forum=True)
    question = await api.user_says("help", chat_id=GROUP_ID, message_thread_id=7)
    assert question["message"]["is_topic_message"] is True
    reply = await api.ok(
        "sendMessage",
        chat_id=GROUP_ID,
        text="ok",
        reply_parameters={"message_id": question["message"]["message_id"]},
    )
    assert reply["message_thread_id"] == 7 and reply["is_topic_message"] is True
    assert reply["reply_to_message"]["text"] == "help"
    in_topic = await api.control_ok("GET", f"/chats/{GROUP_ID}/messages", params={"thread": 7})
    assert [m["text"] for m in in_topic] == ["help", "ok"]


# --------------------------------------------------------------------------- editing and deleting


async def test_edit_message_text_and_not_modified(api: Api) -> None:
    await api.user_says("hi")
    sent = await api.ok("sendMessage", chat_id=USER["id"], text="v1", reply_markup=KEYBOARD)
    target = {"chat_id": USER["id"], "message_id": sent["message_id"]}
    status, body = await api.bot("editMessageText", **target, text="v1", reply_markup=KEYBOARD)
    assert (status, description(body)) == (400, NOT_MODIFIED)
    edited = await api.ok(
        "editMessageText", **target, text="<b>v2</b>", parse_mode="HTML", reply_markup=KEYBOARD
    )
    assert edited["text"] == "v2" and isinstance(edited["edit_date"], int)
    stripped = await api.ok("editMessageText", **target, text="v2", parse_mode="HTML")
    assert (
        "reply_markup" not in stripped and "entities" not in stripped
    )  # omitted markup removes the keyboard
    markup = await api.ok("editMessageReplyMarkup", **target, reply_markup=KEYBOARD)
    assert markup["reply_markup"] == KEYBOARD
    waited = await api.control_ok(
        "GET",
        "/wait_edit",
        params={"chat_id": USER["id"], "message_id": sent["message_id"], "after_edit_count": 2},
    )
    assert waited["message"]["edit_count"] == 3 and waited["timed_out"] is False


async def test_edit_errors(api: Api) -> None:
    user_message = (await api.user_says("hi"))["message"]
    cases = [
        ({"chat_id": USER["id"], "message_id": 99, "text": "x"}, "Bad Request: message to edit not found"),
        (
            {"chat_id": USER["id"], "message_id": user_message["message_id"], "text": "x"},
            "Bad Request: message can't be edited",
        ),
        ({"inline_message_id": "AAA", "text": "x"}, "Bad Request: MESSAGE_ID_INVALID"),
    ]
    for params, expected in cases:
        status, body = await api.bot("editMessageText", **params)
        assert (status, description(body)) == (400, expected)


async def test_delete_message(api: Api) -> None:
    await api.user_says("hi")
    sent = await api.ok("sendMessage", chat_id=USER["id"], text="bye")
    assert await api.ok("deleteMessage", chat_id=USER["id"], message_id=sent["message_id"]) is True
    status, body = await api.bot("deleteMessage", chat_id=USER["id"], message_id=sent["message_id"])
    assert (status, description(body)) == (400, "Bad Request: message to delete not found")
    history = await api.control_ok("GET", f"/chats/{USER['id']}/messages")
    assert [(m["text"], m["deleted"]) for m in history] == [("hi", False), ("bye", True)]


async def test_bot_needs_admin_rights_to_delete_user_messages_in_groups(api: Api) -> None:
    await api.group()
    said = (await api.user_says("spam", chat_id=GROUP_ID))["message"]
    status, body = await api.bot("deleteMessage", chat_id=GROUP_ID, message_id=said["message_id"])
    assert (status, description(body)) == (400, "Bad Request: message can't be deleted")
    bot_user = {"id": BOT_ID, "first_name": "Touchpoint"}
    await api.control_ok(
        "POST", f"/chats/{GROUP_ID}/members", json={"user": bot_user, "status": "administrator"}
    )
    assert await api.ok("deleteMessage", chat_id=GROUP_ID, message_id=said["message_id"]) is True


# --------------------------------------------------------------------------- buttons and callback queries


async def test_press_answer_and_double_answer(api: Api) -> None:
    await api.group()
    await api.user_says("hi", chat_id=GROUP_ID)
    sent = await api.ok("sendMessage", chat_id=GROUP_ID, text="Sure?", reply_markup=KEYBOARD)
    await api.ok("getUpdates", offset=-1)
    press = {"chat_id": GROUP_ID, "message_id": sent["message_id"], "from": OTHER_USER}
    status, body = await api.control("POST", "/press", json={**press, "data": "maybe"})
    assert status == 400 and "no callback button with callback_data 'maybe'" in body["error"]
    pressed = await api.control_ok("POST", "/press", json={**press, "data": "yes"})
    updates = await api.ok("getUpdates", offset=pressed["update_id"])
    query = updates[0]["callback_query"]
    assert query["id"] == pressed["callback_query_id"] and query["data"] == "yes"
    assert query["from"]["id"] == OTHER_USER["id"] and query["message"]["message_id"] == sent["message_id"]
    assert isinstance(query["chat_instance"], str)
    status, body = await api.bot("answerCallbackQuery", callback_query_id=query["id"], text="x" * 201)
    assert (status, description(body)) == (400, "Bad Request: MESSAGE_TOO_LONG")
    assert await api.ok("answerCallbackQuery", callback_query_id=query["id"], text="Done", show_alert=True)
    status, body = await api.bot("answerCallbackQuery", callback_query_id=query["id"])
    assert (
        description(body)
        == "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    answers = await api.control_ok("GET", "/callback_answers", params={"callback_query_id": query["id"]})
    assert answers[0]["text"] == "Done" and answers[0]["show_alert"] is True
    by_label = await api.control_ok("POST", "/press", json={**press, "text": "No"})
    assert by_label["update_id"] > pressed["update_id"]


async def test_unknown_callback_query(api: Api) -> None:
    status, body = await api.bot("answerCallbackQuery", callback_query_id="12345")
    assert status == 400 and "query ID is invalid" in description(body)


# --------------------------------------------------------------------------- faults and limits


async def test_scripted_faults(api: Api) -> None:
    await api.user_says("hi")
    await api.control_ok(
        "POST", "/faults", json={"method": "sendMessage", "kind": "429", "count": 2, "retry_after": 7}
    )
    for _ in range(2):
        status, body = await api.bot("sendMessage", chat_id=USER["id"], text="x")
        assert (status, body) == (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
        )
    assert (await api.bot("sendMessage", chat_id=USER["id"], text="x"))[0] == 200
    await api.control_ok("POST", "/faults", json={"method": "*", "kind": "500"})
    status, body = await api.bot("getMe")
    assert (status, description(body)) == (500, "Internal Server Error")
    await api.control_ok("POST", "/faults", json={"method": "getMe", "kind": "502"})
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/getMe") as response:
        assert response.status == 502 and "502 Bad Gateway" in await response.text()
    await api.control_ok("POST", "/faults", json={"method": "getMe", "kind": "delay", "delay": 0.3})
    started = time.monotonic()
    await api.ok("getMe")
    assert time.monotonic() - started >= 0.3
    await api.control_ok("POST", "/faults", json={"method": "getMe", "kind": "drop"})
    with pytest.raises(aiohttp.ClientError):
        await api.bot("getMe")
    await api.control_ok("POST", "/faults", json={"method": "getMe", "kind": "429", "count": 5})
    await api.control_ok("DELETE", "/faults")
    await api.ok("getMe")
    stats = await api.control_ok("GET", "/stats")
    assert stats["too_many_requests"] == 2 and stats["methods"]["sendMessage"] == 3
    calls = await api.control_ok("GET", "/calls", params={"method": "sendmessage"})
    assert [(c["ok"], c["error_code"], c["chat_id"]) for c in calls] == [
        (False, 429, USER["id"]),
        (False, 429, USER["id"]),
        (True, None, USER["id"]),
    ]


async def test_drop_after_processing_still_sends(api: Api) -> None:
    await api.user_says("hi")
    await api.control_ok("POST", "/faults", json={"method": "sendMessage", "kind": "drop_after"})
    with pytest.raises(aiohttp.ClientError):
        await api.bot("sendMessage", chat_id=USER["id"], text="sent but unacknowledged")
    assert [m["text"] for m in await api.control_ok("GET", f"/chats/{USER['id']}/messages")][-1] == (
        "sent but unacknowledged"
    )


@pytest_asyncio.fixture
async def limited(clock: FakeClock) -> AsyncIterator[Api]:
    emulator = Emulator(enforce_limits=True, clock=clock)
    runner, base_url = await start_emulator("127.0.0.1", 0, emulator)
    async with aiohttp.ClientSession() as session:
        yield Api(session, base_url)
    await runner.cleanup()


async def test_per_chat_limit_allows_a_burst_then_one_per_second(limited: Api, clock: FakeClock) -> None:
    await limited.user_says("hi")
    for _ in range(3):
        await limited.ok("sendMessage", chat_id=USER["id"], text="burst")
    status, body = await limited.bot("sendMessage", chat_id=USER["id"], text="too fast")
    assert (status, body["parameters"]) == (429, {"retry_after": 1})
    assert description(body) == "Too Many Requests: retry after 1"
    clock.advance(1.0)
    await limited.ok("sendMessage", chat_id=USER["id"], text="allowed again")
    assert (await limited.control_ok("GET", "/stats"))["too_many_requests"] == 1


async def test_group_limit_is_twenty_per_minute(limited: Api, clock: FakeClock) -> None:
    await limited.group()
    await limited.control_ok("POST", "/limits", json={"per_chat_burst": 100})
    for _ in range(20):
        await limited.ok("sendMessage", chat_id=GROUP_ID, text="x")
        clock.advance(1.0)
    status, body = await limited.bot("sendMessage", chat_id=GROUP_ID, text="x")
    assert (status, body["parameters"]["retry_after"]) == (429, 40)
    clock.advance(40.0)
    await limited.ok("sendMessage", chat_id=GROUP_ID, text="x")


async def test_bot_limit_is_thirty_per_second(limited: Api) -> None:
    for chat_id in range(2001, 2031):
        await limited.user_says("hi", chat_id=chat_id, user={"id": chat_id, "first_name": "U"})
        await limited.ok("sendMessage", chat_id=chat_id, text="x")
    await limited.user_says("hi", chat_id=3000, user={"id": 3000, "first_name": "U"})
    status, _ = await limited.bot("sendMessage", chat_id=3000, text="x")
    assert status == 429
    await limited.control_ok("POST", "/limits", json={"enforce": False})
    await limited.ok("sendMessage", chat_id=3000, text="x")


# --------------------------------------------------------------------------- files


async def test_multipart_send_photo_and_document(api: Api) -> None:
    await api.user_says("hi")
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER["id"]))
    form.add_field("caption", "<b>chart</b>")
    form.add_field("parse_mode", "HTML")
    form.add_field("photo", png(1000, 500), filename="chart.png", content_type="image/png")
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/sendPhoto", data=form) as response:
        message = (await response.json())["result"]
    assert message["caption"] == "chart" and message["caption_entities"][0]["type"] == "bold"
    sizes = message["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 45), (320, 160), (800, 400), (1000, 500)]
    assert all(s["file_id"] and s["file_unique_id"] for s in sizes)
    again = await api.ok("sendPhoto", chat_id=USER["id"], photo=sizes[-1]["file_id"])
    assert again["photo"] == sizes

    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER["id"]))
    form.add_field("document", "attach://report")
    form.add_field("report", b"a,b\n1,2\n", filename="report.csv")
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/sendDocument", data=form) as response:
        document = (await response.json())["result"]["document"]
    assert (document["file_name"], document["mime_type"], document["file_size"]) == (
        "report.csv",
        "text/csv",
        8,
    )
    file = await api.ok("getFile", file_id=document["file_id"])
    async with api.session.get(f"{api.base_url}/file/bot{TOKEN}/{file['file_path']}") as response:
        assert await response.read() == b"a,b\n1,2\n"


async def test_photo_errors(api: Api) -> None:
    await api.user_says("hi")
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER["id"]))
    form.add_field("photo", b"not an image", filename="x.png")
    async with api.session.post(f"{api.base_url}/bot{TOKEN}/sendPhoto", data=form) as response:
        assert description(await response.json()) == "Bad Request: IMAGE_PROCESS_FAILED"
    _, body = await api.bot("sendPhoto", chat_id=USER["id"], photo="no-such-file-id")
    assert description(body) == "Bad Request: wrong file identifier/HTTP URL specified"
    _, body = await api.bot(
        "sendPhoto", chat_id=USER["id"], photo="https://example.com/a.jpg", caption="c" * 1025
    )
    assert description(body) == "Bad Request: message caption is too long"


@pytest.mark.parametrize("session_class", SESSIONS)
async def test_media_group_with_aiogram_attachments(api: Api, session_class: type[AiohttpSession]) -> None:
    await api.user_says("hi")
    bot = Bot(TOKEN, session=session_class(api=TelegramAPIServer.from_base(api.base_url)))
    try:
        album = [
            InputMediaPhoto(
                media=BufferedInputFile(png(40, 30), filename="a.png"),
                caption="<i>first</i>",
                parse_mode="HTML",
            ),
            InputMediaPhoto(media=BufferedInputFile(png(30, 40), filename="b.png")),
        ]
        sent = await bot.send_media_group(USER["id"], album)
    finally:
        await bot.session.close()
    assert len(sent) == 2 and sent[0].media_group_id == sent[1].media_group_id
    assert sent[0].caption == "first" and sent[0].caption_entities is not None
    assert [(m.photo[-1].width, m.photo[-1].height) for m in sent if m.photo] == [(40, 30), (30, 40)]


# --------------------------------------------------------------------------- webhooks


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, Any], str | None]], list[int]]]:
    """A webhook endpoint recording (update, secret header); answers 500 while ``failures`` is non-empty."""
    received: list[tuple[dict[str, Any], str | None]] = []
    failures: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        update = await request.json()
        received.append((update, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        if failures:
            failures.pop()
            return web.Response(status=500)
        if "message" in update:  # reply with a method call, as aiogram's webhook handler can
            chat_id = update["message"]["chat"]["id"]
            return web.json_response(
                {"method": "sendMessage", "chat_id": chat_id, "text": "via webhook reply"}
            )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", received, failures
    await runner.cleanup()


async def test_webhook_delivery_with_secret_retry_and_reply(
    api: Api, receiver: tuple[str, list[tuple[dict[str, Any], str | None]], list[int]]
) -> None:
    url, received, failures = receiver
    failures.append(1)  # the first delivery attempt fails
    assert await api.ok("setWebhook", url=url, secret_token="s3cr3t_token") is True
    sent = await api.user_says("/start")
    reply = await api.control_ok("GET", "/wait", params={"chat_id": USER["id"], "after": 0, "timeout": 5})
    assert [m["text"] for m in reply["messages"]] == ["via webhook reply"]
    assert [(update["update_id"], secret) for update, secret in received] == [
        (sent["update_id"], "s3cr3t_token")
    ] * 2
    info = await api.ok("getWebhookInfo")
    assert info["url"] == url and info["pending_update_count"] == 0
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    assert await api.ok("deleteWebhook") is True
    assert (await api.ok("getWebhookInfo"))["url"] == ""


# --------------------------------------------------------------------------- commands, chats, members


async def test_commands_by_scope_and_language(api: Api) -> None:
    commands = [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    assert await api.ok("setMyCommands", commands=commands)
    assert await api.ok(
        "setMyCommands", commands=commands[:1], scope={"type": "all_group_chats"}, language_code="de"
    )
    assert await api.ok("getMyCommands") == commands
    assert (
        await api.ok("getMyCommands", scope={"type": "all_group_chats"}, language_code="de") == commands[:1]
    )
    assert await api.ok("getMyCommands", scope={"type": "all_group_chats"}) == []
    stored = (await api.control_ok("GET", "/commands"))["commands"]
    assert {(e["scope"]["type"], e["language_code"]) for e in stored} == {
        ("default", ""),
        ("all_group_chats", "de"),
    }
    _, body = await api.bot("setMyCommands", commands=[{"command": "Bad Command", "description": "x"}])
    assert description(body) == "Bad Request: BOT_COMMAND_INVALID"
    assert await api.ok("deleteMyCommands") is True
    assert await api.ok("getMyCommands") == []


async def test_chat_members_and_administrators(api: Api) -> None:
    await api.group()
    await api.control_ok("POST", f"/chats/{GROUP_ID}/members", json={"user": USER, "status": "creator"})
    await api.control_ok(
        "POST", f"/chats/{GROUP_ID}/members", json={"user": OTHER_USER, "status": "administrator"}
    )
    assert (await api.ok("getChatMember", chat_id=GROUP_ID, user_id=USER["id"]))["status"] == "creator"
    admin = await api.ok("getChatMember", chat_id=GROUP_ID, user_id=OTHER_USER["id"])
    assert admin["status"] == "administrator" and admin["can_delete_messages"] is True
    assert (await api.ok("getChatMember", chat_id=GROUP_ID, user_id=555))["status"] == "left"
    assert (await api.ok("getChatMember", chat_id=GROUP_ID, user_id=BOT_ID))["status"] == "member"
    admins = await api.ok("getChatAdministrators", chat_id=GROUP_ID)
    assert sorted(a["user"]["id"] for a in admins) == [USER["id"], OTHER_USER["id"]]
    chat = await api.ok("getChat", chat_id=GROUP_ID)
    assert (chat["id"], chat["type"], chat["title"]) == (GROUP_ID, "supergroup", "Support")
    assert await api.ok("sendChatAction", chat_id=GROUP_ID, action="typing") is True
    _, body = await api.bot("sendChatAction", chat_id=GROUP_ID, action="dancing")
    assert description(body) == "Bad Request: wrong parameter action in request"
    assert await api.ok("setChatMenuButton", menu_button={"type": "commands"}) is True


async def test_misc_methods(api: Api) -> None:
    await api.group()
    bot_user = {"id": BOT_ID, "first_name": "Touchpoint"}
    await api.control_ok(
        "POST", f"/chats/{GROUP_ID}/members", json={"user": bot_user, "status": "administrator"}
    )
    await api.user_says("hi", chat_id=GROUP_ID)
    photo = await api.ok("sendPhoto", chat_id=GROUP_ID, photo="https://example.com/p.jpg", caption="old")
    target = {"chat_id": GROUP_ID, "message_id": photo["message_id"]}
    assert (await api.ok("editMessageCaption", **target, caption="new"))["caption"] == "new"
    _, body = await api.bot("editMessageText", **target, text="x")
    assert description(body) == "Bad Request: there is no text in the message to edit"
    assert await api.ok("pinChatMessage", **target) is True
    assert (await api.ok("getChat", chat_id=GROUP_ID))["pinned_message"]["caption"] == "new"
    texts = [await api.ok("sendMessage", chat_id=GROUP_ID, text=t) for t in ("a", "b")]
    assert await api.ok(
        "deleteMessages", chat_id=GROUP_ID, message_ids=[m["message_id"] for m in texts] + [999]
    )
    history = await api.control_ok(
        "GET", f"/chats/{GROUP_ID}/messages", params={"after": photo["message_id"]}
    )
    assert all(m["deleted"] for m in history)
    assert await api.ok("getChatMemberCount", chat_id=GROUP_ID) == 2
    assert await api.ok("setMyName", name="Touchpoint Support", language_code="en") is True
    assert await api.ok("getMyName", language_code="en") == {"name": "Touchpoint Support"}
    assert await api.ok("getChatMenuButton") == {"type": "default"}
    assert await api.ok("setChatMenuButton", chat_id=GROUP_ID, menu_button={"type": "commands"}) is True
    assert await api.ok("getChatMenuButton", chat_id=GROUP_ID) == {"type": "commands"}
    assert await api.ok("logOut") is True and await api.ok("close") is True


async def test_sender_joins_group_when_writing(api: Api) -> None:
    await api.group()
    await api.user_says("hello", chat_id=GROUP_ID, user=OTHER_USER)
    assert (await api.ok("getChatMember", chat_id=GROUP_ID, user_id=OTHER_USER["id"]))["status"] == "member"


async def test_privacy_mode_shows_groups_only_commands_replies_and_mentions() -> None:
    runner, base_url = await start_emulator("127.0.0.1", 0, Emulator(privacy_mode=True))
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, base_url)
            assert (await api.ok("getMe"))["can_read_all_group_messages"] is False
            await api.group()
            await api.user_says("just chatting", chat_id=GROUP_ID)
            await api.user_says("/help@other_bot", chat_id=GROUP_ID)
            seen = [
                (await api.user_says(text, chat_id=GROUP_ID))["update_id"]
                for text in ("/help", "/help@touchpoint_bot", "hey @touchpoint_bot")
            ]
            assert [u["update_id"] for u in await api.ok("getUpdates")] == seen
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- control API


async def test_wait_returns_bot_messages_or_times_out(api: Api) -> None:
    await api.user_says("hi")
    waiting = await api.control_ok("GET", "/wait", params={"chat_id": USER["id"], "after": 1, "timeout": 0.2})
    assert waiting == {"messages": [], "timed_out": True}
    pending = asyncio.create_task(
        api.control_ok("GET", "/wait", params={"chat_id": USER["id"], "after": 1, "count": 2, "timeout": 5})
    )
    await asyncio.sleep(0.1)
    await api.ok("sendMessage", chat_id=USER["id"], text="one")
    await api.ok("sendMessage", chat_id=USER["id"], text="two")
    result = await pending
    assert [m["text"] for m in result["messages"]] == ["one", "two"] and result["timed_out"] is False


@pytest.mark.parametrize(
    ("verb", "path", "payload"),
    [
        ("POST", "/chats", "{broken"),
        ("POST", "/chats", "[]"),
        ("POST", "/chats", '{"type": "group"}'),
        ("POST", "/chats", '{"id": "x", "type": "group"}'),
        ("POST", "/chats", '{"id": -5, "type": "channel"}'),
        ("POST", "/chats", '{"id": 5, "type": "group"}'),
        ("POST", "/messages", '{"chat_id": 1001, "text": "hi"}'),
        ("POST", "/messages", '{"chat_id": 1001, "from": {"id": "me"}, "text": "hi"}'),
        ("POST", "/messages", '{"chat_id": -77, "from": {"id": 1}, "text": "hi"}'),
        ("POST", "/messages", '{"chat_id": 1001, "from": {"id": 1001}, "text": 5}'),
        ("POST", "/press", '{"chat_id": 1, "message_id": 1, "from": {"id": 1}}'),
        ("POST", "/faults", '{"method": "sendMessage", "kind": "boom"}'),
        ("POST", "/faults", '{"method": "sendMessage", "kind": "429", "count": 0}'),
        ("POST", "/limits", '{"enforce": "yes"}'),
        ("POST", "/chats/abc/members", '{"user": {"id": 1}, "status": "member"}'),
        ("POST", "/chats/-1/members", '{"user": {"id": 1}, "status": "member"}'),
        ("GET", "/wait?chat_id=x", None),
        ("GET", "/wait?chat_id=1&timeout=soon", None),
        ("GET", "/chats/424242/messages", None),
        ("GET", "/callback_answers?callback_query_id=nope", None),
    ],
)
async def test_malformed_control_requests_get_400(
    api: Api, verb: str, path: str, payload: str | None
) -> None:
    status, body = await api.control(verb, path, data=payload, headers={"Content-Type": "application/json"})
    assert status == 400, body
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"]


async def test_reset_clears_everything(api: Api) -> None:
    await api.user_says("hi")
    await api.ok("getMe")
    await api.control_ok("POST", "/faults", json={"method": "*", "kind": "500"})
    await api.control_ok("POST", "/reset")
    await api.ok("getMe")
    _, body = await api.bot("sendMessage", chat_id=USER["id"], text="x")
    assert description(body) == "Bad Request: chat not found"
    assert (await api.control_ok("GET", "/updates/pending"))["pending"] == 0


# --------------------------------------------------------------------------- the real aiogram client


@pytest.mark.parametrize("session_class", SESSIONS)
async def test_real_aiogram_bot_round_trip(api: Api, session_class: type[AiohttpSession]) -> None:
    bot = Bot(TOKEN, session=session_class(api=TelegramAPIServer.from_base(api.base_url)))
    try:
        me = await bot.get_me()
        assert (me.id, me.username) == (BOT_ID, "touchpoint_bot")
        await api.group()
        said = await api.user_says("/start", chat_id=GROUP_ID)
        updates = await bot.get_updates(timeout=1)
        assert updates[0].message is not None and updates[0].message.text == "/start"

        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Take", callback_data="take:1")]]
        )
        sent = await bot.send_message(GROUP_ID, "<b>New</b> ticket", parse_mode="HTML", reply_markup=markup)
        assert sent.text == "New ticket" and sent.reply_markup is not None
        assert sent.reply_markup.model_dump(exclude_none=True) == markup.model_dump(exclude_none=True)
        assert sent.message_id == said["message"]["message_id"] + 1

        pressed = await api.control_ok(
            "POST",
            "/press",
            json={"chat_id": GROUP_ID, "message_id": sent.message_id, "from": OTHER_USER, "data": "take:1"},
        )
        updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1)
        callback = updates[0].callback_query
        assert (
            callback is not None and callback.id == pressed["callback_query_id"] and callback.data == "take:1"
        )
        assert await bot.answer_callback_query(callback.id, text="Taken") is True
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(callback.id)

        edited = await bot.edit_message_text("Taken by Bob", chat_id=GROUP_ID, message_id=sent.message_id)
        assert not isinstance(edited, bool) and edited.edit_date is not None and edited.reply_markup is None
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_text("Taken by Bob", chat_id=GROUP_ID, message_id=sent.message_id)

        photo = await bot.send_photo(
            GROUP_ID, BufferedInputFile(png(64, 32), filename="p.png"), caption="pic"
        )
        assert photo.photo is not None and (photo.photo[-1].width, photo.photo[-1].height) == (64, 32)
        assert photo.photo[-1].file_size == len(png(64, 32))

        await api.control_ok(
            "POST", "/faults", json={"method": "sendMessage", "kind": "429", "retry_after": 3}
        )
        with pytest.raises(TelegramRetryAfter) as retry:
            await bot.send_message(GROUP_ID, "x")
        assert retry.value.retry_after == 3
        assert await bot.get_updates(offset=updates[-1].update_id + 1) == []
    finally:
        await bot.session.close()


async def test_the_bot_session_sends_json_with_nested_objects_and_files_as_multipart() -> None:
    bot = Bot(TOKEN, default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True))
    session = JsonBodySession()
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="好", callback_data="ok:1")]])
    try:
        body = session.build_form_data(
            bot, SendMessage(chat_id=-100, text="<b>卡片</b>", reply_markup=markup)
        )
        assert body.content_type == "application/json"
        assert json.loads(body.decode()) == {
            "chat_id": -100,
            "text": "<b>卡片</b>",
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_web_page_preview": True,  # aiogram sends both forms of the default
            "reply_markup": {"inline_keyboard": [[{"text": "好", "callback_data": "ok:1"}]]},
        }
        upload = SendDocument(chat_id=-100, document=BufferedInputFile(b"a,b\n", filename="x.csv"))
        assert isinstance(session.build_form_data(bot, upload), aiohttp.FormData)
    finally:
        await bot.session.close()
        await session.close()
