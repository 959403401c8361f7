"""Model instances from hand-written SQL, with the same conversions the ORM applies.

For the few hot statements where compiling a queryset costs more than running it
(the annotator's loop): write the SQL once, select ``columns(Model, "alias")`` for
each model joined, and turn a row into instances with ``RowReader``. Values go
through the backend's and the fields' converters (SQLite datetimes and booleans,
JSON fields), exactly as a queryset would return them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, models

# After this many runs on one connection, psycopg prepares a hot statement.
PREPARE_AFTER = 2


@contextmanager
def cursor() -> Iterator[Any]:
    """A cursor for the hand-written hot statements.

    On PostgreSQL (unless ``PREFLOOP_DB_PREPARE`` is off, e.g. behind a pooler that
    cannot keep prepared statements) it binds parameters on the server, so psycopg
    prepares each statement after ``PREPARE_AFTER`` runs on a connection: no parse
    and no plan per call. Django's own cursors keep client-side binding. The cursor
    is wrapped like Django's, so query logging and ``CaptureQueriesContext`` see it.
    """
    if connection.vendor != "postgresql" or not settings.PREFLOOP_DB_PREPARE:
        with connection.cursor() as plain:
            yield plain
        return
    import psycopg

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        raw_connection.prepare_threshold = PREPARE_AFTER
    with connection.wrap_database_errors:
        raw = psycopg.Cursor(raw_connection)
    with connection._prepare_cursor(raw) as wrapped:
        yield wrapped


@cache
def _fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(model._meta.concrete_fields)


@cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(f.attname for f in _fields(model))


def columns(model: type[models.Model], alias: str) -> str:
    """``alias.col, alias.col, ...`` for every concrete field of ``model``, in model order."""
    return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in _fields(model))


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple, ...]:
    table = model._meta.db_table
    out = []
    for field in _fields(model):
        col = field.get_col(table)
        convert = tuple(connection.ops.get_db_converters(col))
        out.append((col, convert + tuple(field.get_db_converters(connection))))
    return tuple(out)


def when(value: datetime) -> Any:
    """A datetime parameter as the backend stores it (SQLite: naive UTC text, as the ORM)."""
    return connection.ops.adapt_datetimefield_value(value)


class RowReader:
    """Builds one instance per model from consecutive column groups of a row."""

    def __init__(self, *models_: type[models.Model]) -> None:
        self.models = models_

    def read(self, row: Sequence[Any]) -> list[models.Model | None]:
        """Instances in the order given; ``None`` where the group's primary key is NULL
        (the right side of a LEFT JOIN that found nothing)."""
        out: list[models.Model | None] = []
        pos = 0
        for model in self.models:
            fields = _fields(model)
            values = list(row[pos : pos + len(fields)])
            pos += len(fields)
            if values[0] is None:
                out.append(None)
                continue
            for i, (col, converters) in enumerate(_converters(model, connection.vendor)):
                for convert in converters:
                    values[i] = convert(values[i], col, connection)
            out.append(model.from_db(connection.alias, _attnames(model), values))
        return out


def insert(instance: models.Model) -> models.Model:
    """``INSERT ... RETURNING id`` of an unsaved instance, as ``save()`` would write it
    (``pre_save`` fills ``auto_now_add``; values are prepared by their fields) but
    without compiling a query or sending signals. Returns the instance, now saved."""
    model = type(instance)
    fields = [f for f in _fields(model) if not f.primary_key]
    sql = _insert_sql(model)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with cursor() as c:
        c.execute(sql, params)
        instance.pk = c.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


@cache
def _insert_sql(model: type[models.Model]) -> str:
    fields = [f for f in _fields(model) if not f.primary_key]
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING {pk}"
