"""Reading import files: CSV (encoding sniffed: UTF-8, UTF-8 with BOM, GB18030/GBK) and .xlsx,
streamed row by row, and the error file bad rows go to."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from storage.columns import FileRejected

SNIFF_BYTES = 1 << 20

# ---------------------------------------------------------------------------------------------
# Reading files.


class RowSource:
    """The rows of one CSV or .xlsx file: `header`, then (physical line number, cells) pairs."""

    header: list[str]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RowSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sniff_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM) or GB18030 (a superset of GBK, what Taobao exports use)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise FileRejected("cannot tell the file's text encoding: save it as CSV in UTF-8 or GBK")


class _CsvTable(RowSource):
    def __init__(self, path: Path) -> None:
        with path.open("rb") as raw:
            sample = raw.read(SNIFF_BYTES)
        self.encoding = sniff_encoding(sample)
        self._file: TextIO = path.open(encoding=self.encoding, newline="")
        try:
            first = self._file.readline()
            delimiter = (
                "\t" if first.count("\t") > first.count(",") else ","
            )  # Excel's "Unicode text" is tabbed
            self._file.seek(0)
            self._reader = csv.reader(self._file, delimiter=delimiter)
            self.header = next(self._reader)
        except (StopIteration, UnicodeDecodeError):
            self.close()
            raise FileRejected("the file is empty or not text") from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        line = reader.line_num
        try:
            for row in reader:
                start, line = line + 1, reader.line_num
                if row and any(row):
                    yield start, row
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"the file is not valid {self.encoding} near line {line + 1}; rows before it were imported"
            ) from exc
        except csv.Error as exc:
            raise FileRejected(
                f"broken CSV near line {line + 1}: {exc}; rows before it were imported"
            ) from exc

    def close(self) -> None:
        self._file.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat(" ", "microseconds" if value.microsecond else "seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _XlsxTable(RowSource):
    def __init__(self, path: Path) -> None:
        from openpyxl import load_workbook  # only .xlsx imports pay for it

        try:
            self._book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise FileRejected(f"cannot read the workbook: {exc}") from exc
        sheet = self._book.active
        if sheet is None:
            self.close()
            raise FileRejected("the workbook has no sheet")
        self._rows = sheet.iter_rows(min_row=1, values_only=True)
        first = next(self._rows, None)
        if first is None:
            self.close()
            raise FileRejected("the sheet is empty")
        self.header = [_cell_text(v) for v in first]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        for line, values in enumerate(self._rows, start=2):
            if any(v is not None and v != "" for v in values):
                yield line, [_cell_text(v) for v in values]

    def close(self) -> None:
        self._book.close()


def open_table(path: Path) -> RowSource:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileRejected(f"no such file: {path}")
    if suffix in (".xlsx", ".xlsm"):
        return _XlsxTable(path)
    if suffix == ".xls":
        raise FileRejected("old .xls workbooks are not supported: save as .xlsx or CSV")
    return _CsvTable(path)


class ErrorFile:
    """Bad rows with line and reason; opened on the first one (UTF-8 with BOM, so Excel shows 中文)."""

    def __init__(self, path: Path, source: Path, header: Sequence[str]) -> None:
        self.path, self._source, self._header = path, source.name, list(header)
        path.unlink(missing_ok=True)  # one left by an earlier run would describe rows of that run
        self._file: TextIO | None = None
        self._writer: Any = None

    def add(self, line: int, reason: str, row: Sequence[str]) -> None:
        if self._writer is None:
            self._file = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["file", "line", "reason", *self._header])
        self._writer.writerow([self._source, line, reason, *row[: len(self._header)]])

    @property
    def used(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
