"""Bot API request parameters, decoded the way telegram-bot-api does it.

Every value becomes a string first (aiogram sends urlencoded forms, or multipart when a file is attached,
with objects JSON-encoded into strings; JSON bodies are flattened the same way), so the method handlers
parse one representation no matter how the client encoded the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from sandbox.emulator_state import ApiError, bad_request


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Params:
    args: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return bool(self.args.get(name))

    def get(self, name: str) -> str:
        return self.args.get(name, "")

    def integer(self, name: str, default: int = 0) -> int:
        """Like td::to_integer: missing → default, garbage → 0."""
        value = self.args.get(name, "").strip()
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            return 0

    def flag(self, name: str) -> bool:
        return self.args.get(name, "").strip().lower() in ("true", "yes", "1")

    def decode_json(self, name: str, what: str) -> Any:
        """The decoded JSON value of ``name``, None when absent; ``what`` names it in the error."""
        raw = self.args.get(name, "")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request(f"can't parse {what} JSON object") from None

    def file(self, name: str) -> Upload | None:
        """An uploaded file given directly under ``name`` or referenced as ``attach://<part>``."""
        value = self.args.get(name, "")
        if value.startswith("attach://"):
            return self.files.get(value[len("attach://") :])
        return self.files.get(name) if not value else None

    def loggable(self) -> dict[str, str]:
        logged = dict(self.args)
        for key, upload in self.files.items():
            logged[key] = f"<file {upload.filename!r}, {len(upload.data)} bytes>"
        return logged


def _flatten(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def params_from_mapping(mapping: dict[str, Any]) -> Params:
    args = {key: flat for key, value in mapping.items() if (flat := _flatten(value)) is not None}
    return Params(args=args)


async def read_params(request: web.Request) -> Params:
    """Merge the query string and the body (JSON, urlencoded or multipart), body winning."""
    params = Params(args=dict(request.query))
    if request.method != "POST" or not request.can_read_body:
        return params
    content_type = request.content_type
    try:
        if content_type == "application/json":
            await _read_json(request, params)
        elif content_type == "multipart/form-data":
            await read_multipart(await request.multipart(), params)
        else:
            form = await request.post()
            params.args.update({key: value for key, value in form.items() if isinstance(value, str)})
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("can't parse request body") from None
    return params


async def _read_json(request: web.Request, params: Params) -> None:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise bad_request("can't parse JSON encoded request body") from None
    if not isinstance(body, dict):
        raise bad_request("JSON encoded request body must be an Object")
    params.args.update(params_from_mapping(body).args)


async def read_multipart(reader: MultipartReader, params: Params) -> None:
    """Read form fields as strings and file parts as uploads (shared with webhook replies)."""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        data = await part.read()
        if part.filename is not None:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            params.files[part.name] = Upload(part.filename, content_type, bytes(data))
        else:
            params.args[part.name] = bytes(data).decode(part.get_charset("utf-8"))
