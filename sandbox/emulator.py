"""A local Telegram Bot API emulator, faithful enough to point the real aiogram bot at it.

Run it standalone::

    python -m sandbox.emulator --host 127.0.0.1 --port 8081 [--enforce-limits] [--privacy-mode]

or in-process with :func:`start_emulator`. The bot talks to ``/bot<token>/<method>`` exactly as to
``api.telegram.org`` (``AiohttpSession(api=TelegramAPIServer.from_base(base_url))``); tests drive users
and inspect results through ``/control`` (see :mod:`sandbox.emulator_control`).

Parse modes: HTML, MarkdownV2 and legacy Markdown are parsed like Telegram (ported from TDLib),
including its error texts, UTF-16 offsets and whitespace trimming.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from sandbox.emulator_control import EMULATOR_KEY, add_control_routes, json_response
from sandbox.emulator_limits import Fault, too_many_requests
from sandbox.emulator_methods import canonical_name, perform
from sandbox.emulator_params import Params, read_params
from sandbox.emulator_state import ApiError, ControlError, Emulator
from sandbox.emulator_webhook import deliver_updates

__all__ = ["Emulator", "build_app", "main", "start_emulator"]

MAX_REQUEST_BYTES = 60 * 1024 * 1024  # above Telegram's 50 MB upload limit so that limit answers first
_PROXY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Control requests never surface a traceback: bad input is a 400 with a readable message."""
    if not request.path.startswith("/control"):
        return await handler(request)
    try:
        return await handler(request)
    except ControlError as exc:
        return json_response({"ok": False, "error": str(exc)}, status=400)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.error_code)
    except (ValueError, TypeError, KeyError) as exc:
        return json_response({"ok": False, "error": f"invalid request: {exc!r}"}, status=400)


async def _bot_api(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR_KEY]
    token, method = request.match_info["token"], request.match_info["method"]
    name = canonical_name(method)
    fault = emu.faults.take(name)
    if fault is not None and fault.kind == "drop":  # lost before the server saw the request
        emu.log_call(name, {}, ApiError(0, "connection dropped by fault injection"))
        return _drop_connection(request)
    try:
        params = await read_params(request)
    except ApiError as exc:
        emu.log_call(name, {}, exc)
        return json_response(exc.body(), status=exc.error_code)
    if fault is not None:
        early = await _apply_fault(emu, fault, name, params)
        if early is not None:
            return early
    status, body = await perform(emu, token, method, params)
    if fault is not None and fault.kind == "drop_after":
        return _drop_connection(request)  # processed, but the client never learns the result
    return json_response(body, status=status)


async def _apply_fault(emu: Emulator, fault: Fault, name: str, params: Params) -> web.StreamResponse | None:
    """Answer with the scripted failure, or None to go on normally (after a delay, say)."""
    if fault.kind == "delay":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "drop_after":
        return None
    if fault.kind == "502":
        emu.log_call(name, params.loggable(), ApiError(502, "Bad Gateway"))
        return web.Response(status=502, text=_PROXY_502, content_type="text/html")
    error = (
        too_many_requests(fault.retry_after)
        if fault.kind == "429"
        else ApiError(500, "Internal Server Error")
    )
    emu.log_call(name, params.loggable(), error)
    return json_response(error.body(), status=error.error_code)


def _drop_connection(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


async def _download(request: web.Request) -> web.StreamResponse:
    """``/file/bot<token>/<file_path>`` serves uploaded bytes, like Telegram's file endpoint."""
    emu = request.app[EMULATOR_KEY]
    try:
        emu.bot_for_token(request.match_info["token"])
    except ApiError as exc:
        return json_response(exc.body(), status=exc.error_code)
    path = request.match_info["path"]
    stored = next((f for f in emu.files.values() if f.data is not None and f.file_path == path), None)
    if stored is None or stored.data is None:
        return json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
    return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")


async def _shutdown(app: web.Application) -> None:
    app[EMULATOR_KEY].close()  # release long polls so aiohttp need not wait for them


def build_app(
    emulator: Emulator, add_routes: Callable[[web.Application], None] | None = None
) -> web.Application:
    """The emulator's aiohttp app; ``add_routes`` may serve more on the same port (the sandbox page)."""
    emulator.webhook_worker = deliver_updates
    emulator.closing = False  # the same emulator may be served again after a shutdown
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_control_errors])
    app[EMULATOR_KEY] = emulator
    add_control_routes(app)
    app.router.add_route("*", "/bot{token}/{method}", _bot_api)
    app.router.add_get("/file/bot{token}/{path:.+}", _download)
    app.on_shutdown.append(_shutdown)
    if add_routes is not None:
        add_routes(app)
    return app


async def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    emulator: Emulator | None = None,
    add_routes: Callable[[web.Application], None] | None = None,
) -> tuple[web.AppRunner, str]:
    """Serve ``emulator`` (a fresh one by default); port 0 picks a free port. Returns (runner, base URL)."""
    app = build_app(emulator or Emulator(), add_routes)
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = port
    if runner.addresses:
        bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--enforce-limits", action="store_true", help="answer 429 like Telegram's flood control"
    )
    parser.add_argument(
        "--privacy-mode", action="store_true", help="bots see only commands/replies in groups"
    )
    parser.add_argument("--bot-username", default="touchpoint_bot")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = Emulator(
        bot_username=args.bot_username, enforce_limits=args.enforce_limits, privacy_mode=args.privacy_mode
    )
    log.info(
        "Telegram Bot API emulator on http://%s:%d (limits %s)", args.host, args.port, args.enforce_limits
    )
    with contextlib.suppress(KeyboardInterrupt):
        # No access log: a line per Bot API call was a tenth of the emulator's CPU under load.
        # uvloop, as the bot runs: the emulator shares the machine with the bots it serves.
        web.run_app(
            build_app(emulator),
            loop=uvloop.new_event_loop(),
            host=args.host,
            port=args.port,
            print=None,
            shutdown_timeout=2.0,
            access_log=None,
        )


if __name__ == "__main__":
    main()
