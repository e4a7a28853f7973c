"""The mapping file of ``jobs/ingest_table.py``: how a flat file of the user's own becomes contract tables.

Spark-free (checked before a session starts). A mapping is YAML (read with ``yaml.safe_load``)::

    table: customers                 # the contract table the rows become: customers or attributes
    key: ID                          # source column of the customer id
    columns:                         # source column -> contract column or declared attribute
      LIMIT_BAL: limit_bal           #   the short form: the parse type follows the target
      AGE: {name: age, type: double} #   the long form: how to parse the source value
    snapshot_date: "2025-01-31"      # attributes only: the snapshot date, or snapshot_date_column: COLUMN
    label:                           # optional: a flat label mapped onto the outcomes table
      column: defaulted
      positive: [1, "yes"]           # values (as text) meaning a default; others are 0 (null: no label)
      observation_date: "2005-09-30" # or observation_date_column: APP_DATE
      horizon_months: 1              # the label means "defaulted within this many months after it"

Every target must be a contract column of the table or an attribute declared in the config (``attributes``).
Source names are only ever column names (quoted), never SQL text or paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credspark.config import AttributeConfig
from credspark.dates import parse_date
from credspark.errors import ConfigError

__all__ = ["PARSE_TYPES", "TARGET_TABLES", "ColumnMapping", "LabelMapping", "TableMapping", "load_mapping",
           "parse_mapping"]

#: How a source value may be parsed (Spark type names).
PARSE_TYPES = ("double", "int", "bigint", "string", "date")
#: Contract tables a mapping can write, with the contract columns it may map to (besides declared attributes).
TARGET_TABLES = {
    "customers": ("birth_year", "sex", "education", "marital_status", "region", "income", "open_date"),
    "attributes": (),
}
_CONTRACT_TYPES = {"birth_year": "int", "sex": "int", "education": "int", "marital_status": "int",
                   "region": "string", "income": "double", "open_date": "date"}


@dataclass(frozen=True)
class ColumnMapping:
    """One source column: its target name and how to parse it."""

    source: str
    name: str
    type: str


@dataclass(frozen=True)
class LabelMapping:
    """A flat label: which values are defaults, when it was observed, and its horizon."""

    column: str
    positive: tuple[str, ...]
    horizon_months: int
    observation_date: dt.date | None = None
    observation_date_column: str | None = None


@dataclass(frozen=True)
class TableMapping:
    """A whole mapping file, checked."""

    table: str
    key: str
    columns: tuple[ColumnMapping, ...]
    snapshot_date: dt.date | None = None
    snapshot_date_column: str | None = None
    label: LabelMapping | None = None

    @property
    def targets(self) -> list[str]:
        """The target names, in file order."""
        return [c.name for c in self.columns]


def _text(where: str, value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
        raise ConfigError(f"mapping key '{where}': expected a column name, got {value!r}")
    return str(value)


def _keys(where: str, data: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"mapping key '{where}': expected a mapping, got {type(data).__name__}")
    unknown = [k for k in data if k not in known]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown mapping key '{prefix}{unknown[0]}' (known: {', '.join(known)})")
    return data


def _date_or_column(where: str, data: dict, key: str) -> tuple[dt.date | None, str | None]:
    fixed, column = data.get(key), data.get(f"{key}_column")
    if (fixed is None) == (column is None):
        raise ConfigError(f"mapping key '{where}{key}': give either {key} (a date) or {key}_column (a column)")
    if fixed is not None:
        return parse_date(f"mapping key '{where}{key}'", str(fixed)), None
    return None, _text(f"{where}{key}_column", column)


def _column(source: str, spec: Any, table: str, attributes: Mapping[str, AttributeConfig]) -> ColumnMapping:
    where = f"columns.{source}"
    if isinstance(spec, str):
        name, parse = spec, None
    else:
        spec = _keys(where, spec, ("name", "type"))
        name, parse = _text(f"{where}.name", spec.get("name")), spec.get("type")
    if name in attributes:
        default = "double" if attributes[name].kind == "numeric" else "string"
    elif name in TARGET_TABLES[table]:
        default = _CONTRACT_TYPES[name]
    else:
        known = [*TARGET_TABLES[table], *attributes]
        raise ConfigError(f"mapping key '{where}': {name!r} is neither a column of {table} nor a declared "
                          f"attribute (known: {', '.join(known) or 'none: declare attributes in the config'})")
    parse = default if parse is None else parse
    if parse not in PARSE_TYPES:
        raise ConfigError(f"mapping key '{where}.type': {parse!r} is not one of {list(PARSE_TYPES)}")
    return ColumnMapping(source, name, parse)


def _label(data: Any) -> LabelMapping:
    data = _keys("label", data, ("column", "positive", "horizon_months", "observation_date",
                                 "observation_date_column"))
    positive = data.get("positive", [1])
    if not isinstance(positive, list) or not positive:
        raise ConfigError("mapping key 'label.positive': expected a non-empty list of values")
    horizon = data.get("horizon_months", 1)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ConfigError(f"mapping key 'label.horizon_months': expected an integer >= 1, got {horizon!r}")
    fixed, column = _date_or_column("label.", data, "observation_date")
    return LabelMapping(_text("label.column", data.get("column")), tuple(str(v) for v in positive), horizon,
                        fixed, column)


def parse_mapping(data: Any, attributes: Mapping[str, AttributeConfig]) -> TableMapping:
    """Check a mapping (as YAML gives it) against the contract and the declared attributes.

    Args:
        data: The file's top-level mapping.
        attributes: The config's declared attributes.

    Returns:
        The TableMapping.

    Raises:
        ConfigError: Unknown keys, a target that is neither a contract column nor a declared attribute, a
            declared attribute of the table not mapped, a target mapped twice, bad dates or types; the
            message names the key.
    """
    data = _keys("", data, ("table", "key", "columns", "snapshot_date", "snapshot_date_column", "label"))
    table = data.get("table")
    if table not in TARGET_TABLES:
        raise ConfigError(f"mapping key 'table': {table!r} is not one of {list(TARGET_TABLES)}")
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError("mapping key 'columns': expected a mapping of source column -> target")
    cols = tuple(_column(str(src), spec, table, attributes) for src, spec in columns.items())
    targets = [c.name for c in cols]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ConfigError(f"mapping key 'columns': {twice} mapped more than once")
    snapshot, snapshot_col = None, None
    if table == "attributes":
        snapshot, snapshot_col = _date_or_column("", data, "snapshot_date")
        if not cols:
            raise ConfigError("mapping key 'columns': an attributes table needs at least one declared attribute")
    elif "snapshot_date" in data or "snapshot_date_column" in data:
        raise ConfigError("mapping key 'snapshot_date': only an attributes table has snapshots")
    label = _label(data["label"]) if data.get("label") is not None else None
    return TableMapping(table, _text("key", data.get("key")), cols, snapshot, snapshot_col, label)


def load_mapping(path: str | Path, attributes: Mapping[str, AttributeConfig]) -> TableMapping:
    """Read and check a mapping file (``yaml.safe_load``; see :func:`parse_mapping`).

    Raises:
        ConfigError: The file cannot be read, is not YAML, or the mapping is wrong.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--mapping {path}: cannot be read ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"--mapping {path}: not valid YAML: {str(e).splitlines()[0]}") from e
    return parse_mapping(data, attributes)
