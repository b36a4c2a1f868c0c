"""The statements every job runs (its submit, claim and completion) run on the driver's cursor
(psycopg on PostgreSQL, sqlite3 on SQLite) instead of through SQLAlchemy's execution path.

Such a statement is built with SQLAlchemy Core as usual and compiled by SQLAlchemy, once per
dialect: the SQL, the values of its fixed parameters and column defaults, and the conversions of
its parameters and result columns all come from that compilation, so a row holds what
``Connection.execute`` would give. What is skipped at each run is the machinery around the
cursor: the compiled-cache lookup, the execution context, the construction of every parameter,
the result object with its metadata, and psycopg's column descriptions (rebuilt at each run for
each of the ~36 columns a claim returns). For a claim or a completion that machinery cost more
CPU than the statement's own work on the client (see BENCHMARKS.md, "Throughput").

Everything else stays SQLAlchemy's: the connection and its pool, its transaction (begun as
``Connection.execute`` begins it), cursor events (``before_cursor_execute`` /
``after_cursor_execute`` listeners see the statement), and errors (``DBAPIError``, with
``connection_invalidated`` set and the connection invalidated when the driver lost it), so
``db.one_statement`` and ``db.transaction`` retry them as before. With another driver, or a
statement whose SQL depends on its values (expanding ``IN`` lists) or whose defaults are
computed at each execution, the statement runs through ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError

_DRIVERS = ("psycopg", "pysqlite")  # the drivers whose cursors run a compiled statement as SQLAlchemy does
Processor = Callable[[Any], Any]
Conversions = tuple[tuple[int, Processor], ...]  # (index, conversion) of the result columns that need one


@dataclass
class _Compiled:
    sql: str
    fixed: dict[str, Any]  # the statement's own parameter values, converted
    required: frozenset[str]  # the parameters a run must be given
    converts: tuple[tuple[str, Processor], ...]  # the parameters that have a conversion, with it
    positions: tuple[str, ...] | None  # the parameters in placeholder order (None: named placeholders)
    names: tuple[str, ...]  # the result columns
    types: tuple[Any, ...]  # their types, for their conversions (found at the first run)
    results: Conversions | None = field(default=None)


class Direct:
    """A Core statement, run with :func:`first` (one that returns rows) or :func:`run` (see the
    module docstring)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._by_dialect: dict[int, tuple[Dialect, _Compiled | None]] = {}

    def compiled(self, dialect: Dialect) -> _Compiled | None:
        """The statement compiled for ``dialect`` (None: it must run through SQLAlchemy)."""
        found = self._by_dialect.get(id(dialect))
        if found is None or found[0] is not dialect:
            found = self._by_dialect[id(dialect)] = (dialect, _compile(self.statement, dialect))
        return found[1]


def _compile(statement: Any, dialect: Dialect) -> _Compiled | None:
    if dialect.driver not in _DRIVERS:
        return None
    compiled = statement.compile(dialect=dialect)
    if any(bp.expanding or bp.literal_execute for bp in compiled.binds.values()):
        return None  # its SQL is rendered anew for each set of values
    # Columns the statement does not set that have a default computed at each execution: a scalar
    # default is a fixed value; another kind (a function) needs SQLAlchemy's execution context.
    prefetch = [(col, col.default) for col in compiled.insert_prefetch] + [
        (col, col.onupdate) for col in compiled.update_prefetch]
    if any(default is None or not default.is_scalar for _, default in prefetch):
        return None
    binds = {name: bp.type.dialect_impl(dialect).bind_processor(dialect) for name, bp in compiled.binds.items()}
    required = {name for name, bp in compiled.binds.items() if bp.required}
    values = compiled.construct_params(dict.fromkeys(required))
    values.update({col.key: default.arg for col, default in prefetch})
    fixed = {name: _convert(binds[name], value) for name, value in values.items() if name not in required}
    columns = list(getattr(statement, "exported_columns", ()))  # a SELECT's columns, or what DML RETURNs
    converts = tuple((name, convert) for name, convert in binds.items() if convert is not None)
    positions = tuple(compiled.positiontup) if compiled.positional else None  # sqlite3: ? placeholders
    return _Compiled(compiled.string, fixed, frozenset(required), converts, positions, tuple(c.key for c in columns),
                     tuple(c.type.dialect_impl(dialect) for c in columns))


def _convert(processor: Processor | None, value: Any) -> Any:
    return processor(value) if processor is not None and value is not None else value


def first(conn: Connection, stmt: Direct, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first row ``stmt`` returns with ``params`` (None: no row), on ``conn``."""
    c = stmt.compiled(conn.dialect)
    if c is None:
        return cast(Mapping[str, Any] | None, conn.execute(stmt.statement, dict(params)).mappings().first())
    rows, _ = _run(conn, c, params)
    if not rows:
        return None
    values = list(rows[0])
    for i, convert in c.results or ():
        values[i] = convert(values[i])
    return dict(zip(c.names, values, strict=True))


def run(conn: Connection, stmt: Direct, params: Mapping[str, Any]) -> int:
    """Run ``stmt`` (one that returns no rows) with ``params`` on ``conn``: the rows it matched."""
    c = stmt.compiled(conn.dialect)
    if c is None:
        return cast(CursorResult[Any], conn.execute(stmt.statement, dict(params))).rowcount
    return _run(conn, c, params)[1]


def _arguments(c: _Compiled, params: Mapping[str, Any]) -> Any:
    if not c.required <= params.keys():  # as SQLAlchemy says it
        missing = ", ".join(sorted(c.required - params.keys()))
        raise InvalidRequestError(f"A value is required for bind parameter(s) {missing}")
    args = {**c.fixed, **params}  # a driver reads the names the SQL has, whatever else is given
    for name, convert in c.converts:
        value = params.get(name)
        if value is not None:
            args[name] = convert(value)
    return args if c.positions is None else tuple(args.get(name) for name in c.positions)


def _run(conn: Connection, c: _Compiled, params: Mapping[str, Any]) -> tuple[Sequence[Any], int]:
    """Execute: the rows (when the statement returns some) and the row count."""
    dialect = conn.dialect
    if not conn.in_transaction():  # as Connection.execute does: the driver opens one, and so must SQLAlchemy
        conn.begin()
    args = _arguments(c, params)
    dbapi_conn = conn.connection.dbapi_connection
    cursor: Any = dbapi_conn.cursor()  # type: ignore[union-attr]
    try:
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, cursor, c.sql, args, None, False)
        if c.positions is None:  # psycopg: prepared once per connection
            cursor.execute(c.sql, args, prepare=True)
        else:
            cursor.execute(c.sql, args)
        rows = cursor.fetchall() if c.names else ()
        for listener in conn.dispatch.after_cursor_execute:
            listener(conn, cursor, c.sql, args, None, False)
        if c.results is None and c.names:  # as SQLAlchemy finds them: by the driver's type codes
            columns = zip(c.types, cursor.description, strict=True)
            c.results = tuple((i, convert) for i, (impl, col) in enumerate(columns)
                              if (convert := impl.result_processor(dialect, col[1])) is not None)
        return rows, cursor.rowcount
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_conn, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(c.sql, args, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc
    finally:
        cursor.close()
