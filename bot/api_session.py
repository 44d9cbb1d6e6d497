"""aiogram's aiohttp session, sending JSON bodies instead of urlencoded forms.

The Bot API takes `application/json` for every call that uploads no file. aiogram always builds a
form: each nested object is JSON-encoded into a string, then the whole form is percent-encoded
byte by byte in Python, which costs more than anything else in sending a card (a Chinese card
text triples in size). A JSON body is one `json.dumps`. Calls that upload files keep aiogram's
multipart form.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import BytesPayload, FormData


class JsonBodySession(AiohttpSession):
    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> Any:
        files: dict[str, Any] = {}
        body: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":  # what aiogram's form leaves out
                body[key] = prepared
        if files:
            form: FormData = super().build_form_data(bot, method)
            return form
        return BytesPayload(self.json_dumps(body).encode(), content_type="application/json")
