"""SELECTs run on the stdlib sqlite3 connection, for the card look-up's hot path.

Through the ORM a card look-up spends ~100 µs per statement in SQLAlchemy (cache key, execution
context, loading) against ~20 µs in SQLite. A PreparedRead is the same SQLAlchemy statement,
compiled once; its rows go through the result processors of the statement's own column types, so
every value reads exactly as the ORM would read it (aware UTC datetimes, dates, booleans).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import CompoundSelect, Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import manager_of_class

_DIALECT = sqlite.dialect(paramstyle="qmark")
M = TypeVar("M")


class PreparedRead:
    def __init__(self, statement: Select[Any] | CompoundSelect, **sample: Any) -> None:
        """`sample` names each bound parameter left open (a placeholder value for each), to be
        given to `rows`; the rest keep the values the statement holds (an IN list is expanded once)."""
        compiled = statement.compile(dialect=_DIALECT)
        if converted := [name for name in sample if _converts(compiled.binds[name].type)]:
            # Values are bound as given; a type that converts them (dates, JSON …) is not supported.
            raise ValueError(f"parameters {converted} need conversion before binding")
        expanded = compiled.construct_expanded_state(sample)
        self.sql: str = expanded.statement
        self._order = tuple(expanded.positiontup or ())
        self._fixed = {name: value for name, value in expanded.parameters.items() if name not in sample}
        self.columns = tuple(statement.selected_columns)
        processors = [c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for c in self.columns]
        self._convert = [(i, p) for i, p in enumerate(processors) if p is not None]

    def rows(self, conn: sqlite3.Connection, params: Mapping[str, Any]) -> list[list[Any]]:
        values = self._fixed | dict(params)
        rows = [list(row) for row in conn.execute(self.sql, [values[name] for name in self._order])]
        for row in rows:
            for i, process in self._convert:
                row[i] = process(row[i])
        return rows


def _converts(kind: Any) -> bool:
    return kind.dialect_impl(_DIALECT).bind_processor(_DIALECT) is not None


def detached(model: type[M], columns: tuple[Any, ...], row: list[Any]) -> M:
    """An ORM instance built from a row the way a query loads one, then detached (as after its
    session closed): it reads, merges and compares like any loaded instance."""
    manager = manager_of_class(model)
    if not manager.mapper.configured:  # done by the ORM's first query, which may not have run yet
        configure_mappers()
    instance = manager.new_instance()
    instance.__dict__.update(zip((c.key for c in columns), row, strict=True))
    make_transient_to_detached(instance)
    return instance  # type: ignore[no-any-return]
