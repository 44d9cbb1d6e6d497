"""The bot's HTTP side: the shop events API (HMAC-signed) and a health check.

POST /api/events  one event or a list; headers X-Touchpoint-Timestamp (unix seconds) and
                  X-Touchpoint-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">.
GET  /healthz     200 when the process is up.
GET  /api/openapi.json  the contract.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import get_args

from aiohttp import web

from bot.config import Settings
from bot.event_intake import EventIntake
from channels.signing import sign
from crm.events import MAX_BATCH, EventType

log = logging.getLogger(__name__)
MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 1 << 20
INTAKE = web.AppKey("intake", EventIntake)
SECRET = web.AppKey("secret", bytes)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def post_events(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    timestamp = request.headers.get("X-Touchpoint-Timestamp", "")
    signature = request.headers.get("X-Touchpoint-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return _error(401, "X-Touchpoint-Timestamp missing or more than 5 minutes off")
    if not hmac.compare_digest(sign(request.app[SECRET], timestamp, body), signature):
        return _error(401, "X-Touchpoint-Signature does not match")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _error(400, "the body is not JSON")
    result = await request.app[INTAKE].ingest(payload)
    if not result.ok:
        return web.json_response({"errors": result.errors}, status=422)
    return web.json_response({"accepted": result.accepted, "duplicates": result.duplicates})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def build_web_app(settings: Settings, intake: EventIntake) -> web.Application:
    assert settings.events_secret is not None
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[INTAKE] = intake
    app[SECRET] = settings.events_secret.get_secret_value().encode()
    app.router.add_post("/api/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/openapi.json", openapi)
    return app


async def start_event_api(settings: Settings, intake: EventIntake) -> web.AppRunner | None:
    if settings.events_secret is None:
        log.info("event API off: set EVENTS_SECRET to take shop events over HTTP")
        return None
    runner = web.AppRunner(build_web_app(settings, intake), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    log.info("event API on http://%s:%s/api/events", settings.http_host, settings.http_port)
    return runner


_EVENT = {
    "type": "object",
    "required": ["id", "type", "occurred_at", "data"],
    "properties": {
        "id": {"type": "string", "maxLength": 64, "description": "unique; a repeated id is ignored"},
        "type": {
            "type": "string",
            "enum": list(get_args(EventType)),
        },
        "occurred_at": {"type": "string", "format": "date-time", "description": "ISO 8601 with offset"},
        "data": {
            "type": "object",
            "description": "importer column names: order_id, customer_id, amount, created_at, source, "
            "carrier, tracking_no, province; customer_id, nickname, name, phone, email, gender, province, "
            "city, birthday, created_at; review: order_id, rating 1-5, text; restock: product",
        },
    },
}
OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Touchpoint shop events", "version": "1"},
    "paths": {
        "/api/events": {
            "post": {
                "summary": f"One event or a batch of up to {MAX_BATCH}; all applied or none",
                "parameters": [
                    {
                        "name": "X-Touchpoint-Timestamp",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "unix seconds; 5 minutes of skew at most",
                    },
                    {
                        "name": "X-Touchpoint-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "sha256=<hex HMAC-SHA256 of '<timestamp>.<body>' with EVENTS_SECRET>",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_EVENT, {"type": "array", "items": _EVENT}]}
                        }
                    },
                },
                "responses": {
                    "200": {"description": "accepted (counts accepted and duplicate events)"},
                    "401": {"description": "bad or stale signature"},
                    "422": {"description": "a bad event: errors name index, id and field; nothing written"},
                },
            }
        }
    },
}
