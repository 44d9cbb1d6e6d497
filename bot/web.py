"""The bot's HTTP side, one aiohttp app: Telegram's webhook, the shop events API, health, metrics.

POST <WEBHOOK_URL's path>  Telegram updates (webhook mode; see bot/webhook.py).
POST /api/events  one event or a list; headers X-Touchpoint-Timestamp (unix seconds) and
                  X-Touchpoint-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">.
GET  /api/openapi.json  the events contract.
GET  /healthz     200 while the process is up.
GET  /readyz      200 when the database (and Redis) answer; 503 while degraded or shutting down.
GET  /metrics     Prometheus text format.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import get_args

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.event_intake import EventIntake
from bot.health import Health
from bot.metrics import METRICS
from channels.signing import sign
from crm.events import MAX_BATCH, EventType

log = logging.getLogger(__name__)
MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 1 << 20
INTAKE = web.AppKey("intake", EventIntake)
SECRET = web.AppKey("secret", bytes)
HEALTH = web.AppKey("health", Health)
SESSIONS: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("sessions")
CLOCK = web.AppKey("clock", Clock)


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


async def readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    if health.shutting_down:
        return web.json_response({"status": "shutting down"}, status=503)
    states = await health.check()
    ready = all(state == "ok" for state in states.values())
    body = {"status": "ok" if ready else "degraded", **states}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    try:
        body = await METRICS.render(request.app[SESSIONS], request.app[CLOCK].now())
    except Exception as exc:  # the database is away: still say so, in the format Prometheus reads
        log.warning("metrics without database figures: %s", type(exc).__name__)
        body = generate_latest(METRICS.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def build_web_app(
    settings: Settings,
    *,
    intake: EventIntake,
    health: Health,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[HEALTH], app[SESSIONS], app[CLOCK] = health, sessions, clock
    if settings.events_secret is not None:
        app[INTAKE] = intake
        app[SECRET] = settings.events_secret.get_secret_value().encode()
        app.router.add_post("/api/events", post_events)
        app.router.add_get("/api/openapi.json", openapi)
    else:
        log.info("event API off: set EVENTS_SECRET to take shop events over HTTP")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(settings: Settings, app: web.Application) -> web.AppRunner:
    # On SIGTERM the runner stops listening first, then gives in-flight requests (webhook updates
    # being handled) up to SHUTDOWN_TIMEOUT_SECONDS to finish.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout_seconds)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    log.info("HTTP on http://%s:%s (webhook, events API, /healthz, /readyz, /metrics)",
             settings.http_host, settings.http_port)
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
