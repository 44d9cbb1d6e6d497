"""The bot's notion of now. In the sandbox and the tests it can be moved forward, so follow-ups
due in 30 minutes can be seen firing without waiting; in production it is the system clock."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class Clock:
    def __init__(self, offset_file: Path | None = None) -> None:
        # The offset lives in a file so another process (a test, the sandbox page) can move it.
        self._file = offset_file
        self._seen: float | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        if self._file is None:
            return self._offset
        try:
            stamp = os.stat(self._file).st_mtime_ns
        except FileNotFoundError:
            return timedelta(0)
        if stamp != self._seen:
            text = self._file.read_text(encoding="utf-8").strip()
            self._offset = timedelta(seconds=float(text or 0))
            self._seen = stamp
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def to_real(self, at: datetime) -> datetime:
        """The system-clock moment at which the bot's clock shows `at`."""
        return at - self.offset()

    def advance(self, delta: timedelta) -> None:
        if self._file is None:
            self._offset += delta
            return
        new = self.offset() + delta
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(str(new.total_seconds()), encoding="utf-8")
        os.replace(tmp, self._file)

    def advance_minutes(self, minutes: float) -> None:
        self.advance(timedelta(minutes=minutes))
