"""`python -m bot import events FILE`: replay a file of shop events (JSON Lines, one event per
line) into the running bot through its own events API, so a replayed event takes exactly the path
a live one does (records, follow-ups closed, care planned) and a replay twice changes nothing.

The file is streamed in batches of MAX_BATCH: memory stays flat whatever its size. A batch the
API rejects is never half-stored; the replay reports each bad line (number and reason) to the
error file and sends the rest of that batch again, so good events land.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from channels.signing import sign
from crm.events import MAX_BATCH

SEND_ATTEMPTS = 4


class ReplayAborted(RuntimeError):
    """The bot cannot take events at all (not running, wrong secret): stop, say where to resume."""


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # kept only up to a few for the summary


Line = tuple[int, Any]  # (line number, parsed event)


def read_lines(stream: TextIO, summary: ReplaySummary, report: Callable[[int, str], None]) -> Iterator[Line]:
    for number, raw in enumerate(stream, 1):
        summary.lines = number
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except ValueError as exc:
            report(number, f"not valid JSON ({exc.msg})")


class Replayer:
    def __init__(self, url: str, secret: str, http: aiohttp.ClientSession) -> None:
        self.url, self.secret, self.http = url, secret.encode(), http

    async def _post(self, events: list[Any]) -> tuple[int, Any]:
        body = json.dumps(events, ensure_ascii=False).encode()
        for attempt in range(SEND_ATTEMPTS):
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Touchpoint-Timestamp": stamp,
                "X-Touchpoint-Signature": sign(self.secret, stamp, body),
            }
            try:
                async with self.http.post(self.url, data=body, headers=headers) as response:
                    answer = await response.json(content_type=None)
                    if response.status < 500:
                        return response.status, answer
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if attempt == SEND_ATTEMPTS - 1:
                    raise ReplayAborted(f"cannot reach the events API at {self.url}: {exc!r}") from None
            await asyncio.sleep(0.5 * 2**attempt)
        raise ReplayAborted(f"the events API at {self.url} keeps failing")

    async def send(
        self, batch: list[Line], summary: ReplaySummary, report: Callable[[int, str], None]
    ) -> None:
        """Send a batch; on rejection, report the events it names and send the others again."""
        while batch:
            status, answer = await self._post([event for _, event in batch])
            if status == 200:
                summary.accepted += int(answer.get("accepted", 0))
                summary.duplicates += int(answer.get("duplicates", 0))
                return
            if status == 413 and len(batch) > 1:  # large events: the same in two halves
                half = len(batch) // 2
                await self.send(batch[:half], summary, report)
                await self.send(batch[half:], summary, report)
                return
            if status == 401:
                raise ReplayAborted(
                    "the events API refused the signature: EVENTS_SECRET differs from the bot's"
                )
            if status != 422:
                reason = answer.get("error") if isinstance(answer, dict) else answer
                for number, _ in batch:
                    report(number, f"HTTP {status}: {reason}")
                return
            named = {
                e["index"]: e.get("error", "rejected")
                for e in answer.get("errors", [])
                if e.get("index") is not None
            }
            if not named:  # rejected as a whole (an event for an unknown order): find it one by one
                if len(batch) == 1:
                    report(batch[0][0], str(answer.get("errors", [{}])[0].get("error", "rejected")))
                    return
                for line in batch:
                    await self.send([line], summary, report)
                return
            for index, reason in named.items():
                report(batch[index][0], reason)
            batch = [line for i, line in enumerate(batch) if i not in named]


async def replay_file(
    path: Path,
    *,
    url: str,
    secret: str,
    errors: TextIO,
    progress: Callable[[int], None] = lambda _n: None,
) -> ReplaySummary:
    summary = ReplaySummary()

    def report(number: int, reason: str) -> None:
        summary.failed += 1
        errors.write(f"{path.name}:{number}: {reason}\n")
        if len(summary.errors) < 5:
            summary.errors.append((number, reason))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        replayer = Replayer(url, secret, http)
        with path.open(encoding="utf-8-sig") as stream:
            batch: list[Line] = []
            for line in read_lines(stream, summary, report):
                batch.append(line)
                if len(batch) == MAX_BATCH:
                    await replayer.send(batch, summary, report)
                    progress(summary.lines)
                    batch = []
            if batch:
                await replayer.send(batch, summary, report)
            progress(summary.lines)
    return summary
