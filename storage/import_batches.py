"""An import file cut into batches of parsed rows, and the error file of its bad rows.

`BatchParser` reads and parses in whichever process runs it. For a large file the importer runs it
in a parser process (`ParserProcess`), so that parsing one batch (pure Python) overlaps writing the
one before on another core: threads cannot do that, as sqlite3's executemany takes the GIL back for
every row it binds. Either way the importer sees the same three calls: `batches()`, then `settle()`
once per batch after writing it, and `close()`.

The error file stays with the parser: a row that fails while being written (an order whose merged
times contradict each other) is named by its line, and the parser, which still holds that batch's
cells, writes it out with the rows that failed to parse, in line order, once the batch is settled.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from storage.columns import FileRejected
from storage.import_files import ErrorFile, RowSource
from storage.import_values import RowError

# Survivors of young collections that trigger one (with the automatic collector off while importing).
_YOUNG_GARBAGE = 200_000

WriteFailure = tuple[int, str]  # a row that failed while being written: its line, the reason


@dataclass(slots=True)
class Batch:
    """Consecutive rows of the file: the parsed ones (each ends with nothing of the raw cells), how
    many of them failed to parse, and the rows read through this batch."""

    rows: list[tuple[Any, ...]]
    failed: int = 0
    read: int = 0


@dataclass(slots=True)
class _Unsettled:
    """A batch handed out and not yet settled: its bad rows and every row's cells, by line."""

    failed: list[tuple[int, str, list[str]]] = field(default_factory=list)
    cells: dict[int, str | list[str]] = field(default_factory=dict)  # see _compact


class Batches(Protocol):
    def batches(self) -> Iterator[Batch]: ...

    def settle(self, failures: Sequence[WriteFailure]) -> None: ...

    def abandon(self) -> None: ...

    def close(self) -> bool: ...


class BatchParser:
    """Cuts a file's rows into batches of parsed rows.

    parse(cells, line) returns the parsed row (its first item is the row's key) or raises RowError.
    A key seen twice in one batch ends the batch before it, so the later row merges over the stored
    one exactly as it would in a later import. `keep_cells` keeps each row's cells until the batch is
    settled (for rows that fail while being written); parsed rows without a line number need not.
    """

    def __init__(
        self,
        table: RowSource,
        parse: Callable[[list[str], int], tuple[Any, ...]],
        errors: ErrorFile,
        batch_size: int,
        *,
        keep_cells: bool,
    ) -> None:
        self._table, self._parse, self._errors = table, parse, errors
        self._batch_size, self._keep_cells = batch_size, keep_cells
        self._unsettled: deque[_Unsettled] = deque()

    def batches(self) -> Iterator[Batch]:
        """The batches in file order. An unreadable stretch (FileRejected) ends the file: the batch
        read before it comes out first, then the error is raised."""
        width = len(self._table.header)
        pad = [""] * width
        parse, size, keep = self._parse, self._batch_size, self._keep_cells
        batch, state, keys = Batch([]), _Unsettled(), set()
        read = 0
        rows = self._table.rows()
        while True:
            try:
                line, row = next(rows)
            except StopIteration:
                break
            except FileRejected:
                yield self._hand_out(batch, state, read)
                raise
            read += 1
            if len(row) != width:
                row = (row + pad)[:width]
            row.append("")  # absent columns read this cell
            try:
                parsed = parse(row, line)
            except RowError as exc:
                state.failed.append((line, exc.reason, row))
                batch.failed += 1
                continue
            if len(batch.rows) >= size or parsed[0] in keys:
                yield self._hand_out(batch, state, read - 1)
                batch, state, keys = Batch([]), _Unsettled(), set()
            batch.rows.append(parsed)
            keys.add(parsed[0])
            if keep:
                state.cells[line] = _compact(row)
        yield self._hand_out(batch, state, read)

    def _hand_out(self, batch: Batch, state: _Unsettled, read: int) -> Batch:
        batch.read = read
        self._unsettled.append(state)
        return batch

    def settle(self, failures: Sequence[WriteFailure]) -> None:
        """The oldest batch handed out is written: its bad rows go to the error file, in line order."""
        state = self._unsettled.popleft()
        failed = state.failed + [(line, reason, _cells(state.cells[line])) for line, reason in failures]
        for line, reason, row in sorted(failed, key=lambda bad: bad[0]):
            self._errors.add(line, reason, row)

    def abandon(self) -> None:
        """The import stops: rows that failed to parse still go to the error file."""
        while self._unsettled:
            self.settle(())

    def close(self) -> bool:
        """Closes the error file; True when it holds at least one row."""
        self._errors.close()
        return self._errors.used


_CELL_SEPARATOR = "\x1f"  # ASCII unit separator


def _compact(row: list[str]) -> str | list[str]:
    """A row's cells as one string (a third of the memory of the list), unless a cell holds the
    separator; _cells undoes it."""
    joined = _CELL_SEPARATOR.join(row)
    return joined if joined.count(_CELL_SEPARATOR) == len(row) - 1 else row


def _cells(kept: str | list[str]) -> list[str]:
    return kept.split(_CELL_SEPARATOR) if isinstance(kept, str) else kept


def collect_young_garbage() -> None:
    """The importer runs with the automatic collector off (a batch keeps hundreds of thousands of
    objects alive, which it would keep re-scanning). Batches are freed by reference counting; this
    collects the young generations only once survivors pile up, so nothing cyclic accumulates."""
    if gc.get_count()[0] > _YOUNG_GARBAGE:
        gc.collect(1)


# ---------------------------------------------------------------------------------------------
# The parser process.

_BATCH, _END, _REJECTED, _CRASHED, _CLOSED, _ABORT = "batch", "end", "rejected", "crashed", "closed", "abort"
_CHILD = "import sys, storage.import_batches as m; m.run_parser_process(int(sys.argv[1]))"


class ParserProcess:
    """A BatchParser in a child process, seen through the same calls.

    The child is a fresh interpreter (nothing of this process is inherited, and nothing of it, such as
    the caller's main module, is re-run there). `target(*args, conn)` runs in it and must call
    `serve_batches` with its BatchParser. Messages alternate so that neither side can block the
    other: the child sends a batch, then waits for the settlement of the one before it; this side
    receives a batch, then sends that settlement. The child parses a batch while this side writes the
    one before.
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        mine, theirs = socket.socketpair()
        with mine, theirs:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno())], pass_fds=(theirs.fileno(),), env=env
            )
            self._conn = Connection(os.dup(mine.fileno()))
        self._owed: list[WriteFailure] | None = None  # the settlement of the last batch received
        self._used: bool | None = None
        self._conn.send((target, args))

    def batches(self) -> Iterator[Batch]:
        while True:
            kind, payload = self._receive()
            if kind == _BATCH:
                yield payload
            elif kind == _END:
                return
            elif kind == _REJECTED:
                raise FileRejected(payload)
            else:  # _CRASHED: a bug; its traceback, for the log
                raise RuntimeError(f"the import's parser process failed:\n{payload}")

    def settle(self, failures: Sequence[WriteFailure]) -> None:
        self._owed = list(failures)  # sent once the next message is in: see the class docstring

    def abandon(self) -> None:
        self._owed = None
        with suppress(OSError):  # it may have finished and gone already
            self._conn.send((_ABORT, None))

    def close(self) -> bool:
        """Waits for the child's last word (batches still coming are dropped: this side stopped)."""
        try:
            while self._used is None:
                self._receive()
            return self._used
        finally:
            self._conn.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def _receive(self) -> tuple[str, Any]:
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the import's parser process stopped (exit code {self._process.wait()})"
            ) from None
        if self._owed is not None:
            self._conn.send((_BATCH, self._owed))
            self._owed = None
        if kind == _CLOSED:
            self._used = payload
        return kind, payload


class _Aborted(Exception):
    """The importing process stopped; the parser stops too."""


def run_parser_process(fd: int) -> None:
    """The child's entry point: the first message names the function to run, and its arguments."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importing process's to handle
    conn = Connection(fd)
    try:
        target, args = conn.recv()
        target(*args, conn)
    except EOFError:  # the importing process is gone
        pass
    finally:
        conn.close()


def serve_batches(parser: BatchParser, conn: Connection) -> None:
    """The parser process's loop: each message out is followed by the settlement of the batch before."""
    owed = False

    def hand(kind: str, payload: Any) -> None:
        nonlocal owed
        conn.send((kind, payload))
        if owed:
            reply, failures = conn.recv()
            if reply == _ABORT:
                raise _Aborted
            parser.settle(failures)
        owed = kind == _BATCH

    try:
        try:
            for batch in parser.batches():
                hand(_BATCH, batch)
                del batch  # not kept alive while the next one is parsed
                collect_young_garbage()  # the importing process does so after each batch it writes
            hand(_END, None)
        except FileRejected as exc:
            hand(_REJECTED, str(exc))
        except _Aborted:
            raise
        except Exception:  # whatever it is, the importing process must hear of it
            hand(_CRASHED, traceback.format_exc())
    except _Aborted:
        pass
    parser.abandon()  # rows that failed to parse in batches never settled
    conn.send((_CLOSED, parser.close()))
