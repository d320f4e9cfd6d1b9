"""Tables built from model definitions, and the rules for changing them safely.

Layout: one table per inheritance hierarchy, named after its root model. A row carries every
column of every model of the hierarchy (sub-model columns are NULL for rows of other models)
and `leaf_model_name` says which model the row is. A query on a base model therefore returns
sub-model rows with no join, which is what XOS users expect from `Service.objects.all()`.

Every data column is nullable in SQL: required-ness, defaults and types are checked by the
accessor, which gives messages that name the model and field, and keeps `ALTER TABLE ADD
COLUMN` possible on every dialect when a model gains a field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from xos_runtime.exceptions import SchemaChangeRefused
from xos_runtime.models.definitions import Field, ModelSet

META_TABLE = "xos_runtime_meta"
PROCESSES_TABLE = "xos_runtime_processes"
CLAIMS_TABLE = "xos_runtime_work_claims"
SCHEDULE_TABLE = "xos_runtime_schedule"
ATTEMPTS_TABLE = "xos_runtime_event_attempts"
EVENT_LOG_TABLE = "xos_runtime_event_log"
EVENT_PARTITIONS_TABLE = "xos_runtime_event_partitions"
EVENT_OFFSETS_TABLE = "xos_runtime_event_offsets"


class UInt64(sa.types.TypeDecorator[int]):
    """uint64 kept in a signed BIGINT, shifted by 2**63 so that order and equality hold.

    No common dialect has an unsigned 64-bit column, and NUMERIC falls back to a float in
    SQLite, which loses the low digits of large values.
    """

    impl = sa.BigInteger
    cache_ok = True
    _SHIFT = 2**63

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value) - self._SHIFT

    def process_result_value(self, value: int | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value) + self._SHIFT


_SQL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "string": sa.Text(),
    "text": sa.Text(),
    "bool": sa.Boolean(create_constraint=False),
    "int32": sa.Integer(),
    "uint32": sa.BigInteger(),
    "int64": sa.BigInteger(),
    "uint64": UInt64(),
    "float": sa.Float(precision=53),
    "double": sa.Float(precision=53),
}


def sql_type(field: Field) -> sa.types.TypeEngine[Any]:
    return _SQL_TYPES[field.type]


class Schema:
    """SQLAlchemy tables for a `ModelSet`, and per-model column names."""

    def __init__(self, models: ModelSet):
        self.models = models
        self.metadata = sa.MetaData()
        self.meta = sa.Table(
            META_TABLE,
            self.metadata,
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        # Runtime processes that work on this store, each with a lease (`claims.py`).
        self.processes = sa.Table(
            PROCESSES_TABLE,
            self.metadata,
            sa.Column("owner", sa.String(200), primary_key=True),
            sa.Column("host", sa.String(200), nullable=False),
            sa.Column("boot_id", sa.String(64), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("started", sa.String(40), nullable=False),
            sa.Column("expires", sa.Float(precision=53), nullable=False),
            sa.Column("shares_work", sa.Boolean, nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
        )
        # Objects a process is working on (`claims.py`); one row per (engine, object).
        self.claims = sa.Table(
            CLAIMS_TABLE,
            self.metadata,
            sa.Column("kind", sa.String(40), primary_key=True),
            sa.Column("root", sa.String(200), primary_key=True),
            sa.Column("obj_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("owner", sa.String(200), nullable=False, index=True),
            sa.Column("abandoned", sa.Boolean, nullable=False, default=False),
        )
        # When each interval job (a pull step) is next due, across processes (`schedule.py`).
        self.schedule = sa.Table(
            SCHEDULE_TABLE,
            self.metadata,
            sa.Column("name", sa.String(400), primary_key=True),
            sa.Column("due", sa.Float(precision=53), nullable=False),
            sa.Column("owner", sa.String(200), nullable=False),
        )
        # Failed calls of event messages not yet committed (`attempts.py`).
        self.event_attempts = sa.Table(
            ATTEMPTS_TABLE,
            self.metadata,
            sa.Column("consumer_group", sa.String(255), primary_key=True),
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text, nullable=False),
            sa.Column("next_run", sa.Float(precision=53), nullable=False),
        )
        # The embedded event bus (`eventlog.py`): the messages, the partitions of each topic
        # with the offset its next message gets, and each consumer group's committed offset
        # and lease per partition.
        self.event_log = sa.Table(
            EVENT_LOG_TABLE,
            self.metadata,
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("key", sa.LargeBinary, nullable=True),
            sa.Column("value", sa.LargeBinary, nullable=True),
            sa.Column("headers", sa.Text, nullable=True),
            sa.Column("timestamp", sa.Float(precision=53), nullable=False, index=True),
        )
        self.event_partitions = sa.Table(
            EVENT_PARTITIONS_TABLE,
            self.metadata,
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
        )
        self.event_offsets = sa.Table(
            EVENT_OFFSETS_TABLE,
            self.metadata,
            sa.Column("consumer_group", sa.String(255), primary_key=True),
            sa.Column("topic", sa.String(255), primary_key=True),
            sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("offset", sa.BigInteger, nullable=True),
            sa.Column("owner", sa.String(200), nullable=True),
            sa.Column("lease_until", sa.Float(precision=53), nullable=False),
        )
        self.tables: dict[str, sa.Table] = {}
        self._table_of: dict[str, sa.Table] = {}
        for model in models:
            if model.parent is None or model.parent not in models:
                self._build_table(model.name)
        for model in models:
            self._table_of[model.name] = self.tables[models.root(model.name)]

    def _build_table(self, root: str) -> None:
        columns: dict[str, sa.Column[object]] = {
            "id": sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)
        }
        for name in self.models.descendants(root):
            for field in self.models.all_fields(name):
                columns.setdefault(field.name, sa.Column(field.name, sql_type(field)))
            for link in self.models.all_links(name):
                columns.setdefault(link.column, sa.Column(link.column, sa.Integer))
        table = sa.Table(root, self.metadata, *columns.values())
        sa.Index(f"ix_{root}_leaf_deleted", table.c.leaf_model_name, table.c.deleted)
        for name in self.models.descendants(root):
            for link in self.models.models[name].links:
                ix = f"ix_{root}_{link.column}"
                if not any(i.name == ix for i in table.indexes):
                    sa.Index(ix, table.c[link.column])
        self.tables[root] = table

    def digest(self) -> str:
        """What the tables look like (names, columns, types, indexes), as a short digest.

        The store records it once its tables match (`SqlStore` start-up): a process that
        finds the same models and the same digest needs no table, column or index checks,
        which cost PostgreSQL a reflection query per table and index at every start.
        """
        parts = []
        for table in sorted(self.metadata.tables.values(), key=lambda t: t.name):
            columns = [(c.name, str(c.type), c.nullable, c.primary_key) for c in table.columns]
            indexes = sorted(
                (str(i.name), tuple(c.name for c in i.columns), bool(i.unique))
                for i in table.indexes
            )
            parts.append(repr((table.name, columns, indexes)))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def table(self, model_name: str) -> sa.Table:
        return self._table_of[model_name]


def _describe_field(models: ModelSet, model: str, name: str) -> str | None:
    for f in models.all_fields(model):
        if f.name == name:
            return f"{f.type}"
    for link in models.all_links(model):
        if link.name == name:
            return f"manytoone->{link.target}"
    return None


def check_evolution(old: ModelSet, new: ModelSet, row_counts: Mapping[str, int]) -> list[str]:
    """Refuse changes that would lose or misread stored rows; return the harmless ones.

    `row_counts` maps a model name to the number of stored rows whose leaf model it is. A
    change that only touches models without rows is always allowed. Raises
    `SchemaChangeRefused` naming the model, the field and the number of rows at stake.
    """

    def rows_of(model: str) -> int:
        names = old.descendants(model) if model in old else [model]
        return sum(row_counts.get(n, 0) for n in names)

    notes: list[str] = []
    problems: list[str] = []
    for model in old:
        n = rows_of(model.name)
        if model.name not in new:
            if n:
                problems.append(
                    f"model {model.name} is no longer defined but the store holds {n} of its "
                    "objects; restore its definition or delete the objects first"
                )
            else:
                notes.append(f"model {model.name} dropped (it had no objects)")
            continue
        if not n:
            continue
        new_model = new.get(model.name)
        if (model.parent or None) != (new_model.parent or None):
            problems.append(
                f"model {model.name} changed its parent from {model.parent} to "
                f"{new_model.parent} while the store holds {n} of its objects"
            )
        old_names = [f.name for f in model.fields] + [link.name for link in model.links]
        for name in old_names:
            before = _describe_field(old, model.name, name)
            after = _describe_field(new, model.name, name)
            if after is None:
                problems.append(
                    f"field {model.name}.{name} was removed while the store holds {n} "
                    f"{model.name} objects; keep the field (or delete the objects) first"
                )
            elif after != before:
                problems.append(
                    f"field {model.name}.{name} changed type from {before} to {after} while "
                    f"the store holds {n} {model.name} objects"
                )
    for model in new:
        if model.name not in old:
            continue
        n = rows_of(model.name)
        old_fields = {f.name for f in old.all_fields(model.name)}
        old_links = {link.name for link in old.all_links(model.name)}
        for f in new.all_fields(model.name):
            if f.name not in old_fields:
                if f.required and not f.has_default and n:
                    problems.append(
                        f"new required field {model.name}.{f.name} has no default and the store "
                        f"holds {n} {model.name} objects; give it a default or make it optional"
                    )
                else:
                    notes.append(f"field {model.name}.{f.name} added")
        for link in new.all_links(model.name):
            if link.name not in old_links:
                if link.required and n:
                    problems.append(
                        f"new required link {model.name}.{link.name} cannot be filled for the "
                        f"{n} stored {model.name} objects; make it optional"
                    )
                else:
                    notes.append(f"link {model.name}.{link.name} added")
    if problems:
        raise SchemaChangeRefused(
            "the model definitions changed in a way that would lose stored data, so the "
            "store was left as it is:\n  " + "\n  ".join(problems)
        )
    return notes
