"""Telegram-like flood limits and scripted faults for the Bot API emulator."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.emulator_state import ApiError

FAULT_KINDS = frozenset({"429", "500", "502", "delay", "drop", "drop_after"})


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


@dataclass
class LimitConfig:
    """Telegram's published guidance: ~1 msg/s per chat, 20/min per group, 30/s per bot."""

    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    per_group_per_minute: int = 20
    per_bot_per_second: int = 30


class RateLimiter:
    """Token bucket per (bot, chat) plus rolling windows per group and per bot."""

    def __init__(self, config: LimitConfig, enforce: bool, clock: Callable[[], float]) -> None:
        self.config = config
        self.enforce = enforce
        self._clock = clock
        self._buckets: dict[tuple[int, int], tuple[float, float]] = {}
        self._group_sends: dict[tuple[int, int], deque[float]] = {}
        self._bot_sends: dict[int, deque[float]] = {}

    def reset(self, enforce: bool) -> None:
        self.enforce = enforce
        self._buckets.clear()
        self._group_sends.clear()
        self._bot_sends.clear()

    def acquire(self, bot_id: int, chat_id: int) -> None:
        """Count one outgoing message, or raise 429 with the seconds until it would be allowed."""
        if not self.enforce:
            return
        now = self._clock()
        tokens = self._bucket_tokens(bot_id, chat_id, now)
        group = self._window(self._group_sends, (bot_id, chat_id), now, 60.0) if chat_id < 0 else None
        overall = self._window(self._bot_sends, bot_id, now, 1.0)
        waits = [(1.0 - tokens) / self.config.per_chat_per_second if tokens < 1.0 else 0.0]
        if group is not None and len(group) >= self.config.per_group_per_minute:
            waits.append(group[0] + 60.0 - now)
        if len(overall) >= self.config.per_bot_per_second:
            waits.append(overall[0] + 1.0 - now)
        wait = max(waits)
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait)))
        self._buckets[(bot_id, chat_id)] = (tokens - 1.0, now)
        if group is not None:
            group.append(now)
        overall.append(now)

    def _bucket_tokens(self, bot_id: int, chat_id: int, now: float) -> float:
        burst = float(self.config.per_chat_burst)
        tokens, last = self._buckets.get((bot_id, chat_id), (burst, now))
        return min(burst, tokens + (now - last) * self.config.per_chat_per_second)

    @staticmethod
    def _window(windows: dict[Any, deque[float]], key: Any, now: float, span: float) -> deque[float]:
        sends = windows.setdefault(key, deque())
        while sends and sends[0] <= now - span:
            sends.popleft()
        return sends

    def describe(self) -> dict[str, object]:
        return {"enforce": self.enforce, **asdict(self.config)}


@dataclass
class Fault:
    method: str  # lower-case Bot API method name or "*"
    kind: str
    count: int = 1
    retry_after: int = 1
    delay: float = 1.0

    def matches(self, method: str) -> bool:
        return self.count > 0 and self.method in ("*", method.lower())

    def describe(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FaultInjector:
    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, method: str) -> Fault | None:
        """Consume one use of the first fault scripted for ``method``."""
        for fault in self.faults:
            if fault.matches(method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None
