"""Job configuration: frozen dataclasses filled from YAML, environment overlays and ``--set`` overrides.

Defaults live here and only here (each field's ``doc`` is the config reference; ``python -m
credspark.config`` renders ``docs/config.md``). Layering, last wins::

    dataclass defaults < conf/<job>.yaml < conf/env/<env>.yaml < --warehouse < --set key=value

Unknown keys and wrong types are errors that name the dotted key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from credspark.errors import ConfigError

__all__ = [
    "Config",
    "SparkConfig",
    "WarehouseConfig",
    "TablesConfig",
    "ValidationConfig",
    "FeaturesConfig",
    "GenerateConfig",
    "UciConfig",
    "load_config",
    "config_from_dict",
    "apply_override",
    "default_conf_dir",
    "render_reference",
]


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with a default and its reference text."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class SparkConfig:
    """How the SparkSession is built (credspark.io.spark.build_session)."""

    app_name: str = _f("credspark", "Spark application name (the job name is appended).")
    master: str | None = _f(
        "local[2]", "Spark master URL; null leaves it to spark-submit (use null on a cluster)."
    )
    shuffle_partitions: int = _f(8, "spark.sql.shuffle.partitions (8 measured best on 2 cores).")
    driver_memory: str | None = _f("2g", "spark.driver.memory for local masters; null keeps Spark's default.")
    log_level: str = _f("WARN", "Spark log level.")
    delta_jars: Literal["auto", "local", "packages", "provided"] = _f(
        "auto",
        "Where the Delta JARs come from: 'local' = the folder in jars_dir (make jars), 'packages' = "
        "spark.jars.packages from Maven via Ivy, 'provided' = the cluster or spark-submit already has them, "
        "'auto' = local if jars_dir holds them, else packages.",
    )
    jars_dir: str | None = _f(
        None, "Folder with the Delta JARs; null = $CREDSPARK_JARS_DIR or ~/.cache/credspark/jars/delta-4.4.0."
    )
    arrow_batch_size: int = _f(10000, "spark.sql.execution.arrow.maxRecordsPerBatch for pandas UDFs.")
    conf: dict[str, str] = _f({}, "Extra Spark settings, passed verbatim (e.g. spark.executor.memory).")


@dataclass(frozen=True)
class WarehouseConfig:
    """Where tables live."""

    path: str = _f("./warehouse", "Root folder of all tables, model store and run summaries (--warehouse).")
    database: str | None = _f(
        None,
        "Metastore database for managed tables on a cluster; null = path-based Delta tables under path.",
    )


@dataclass(frozen=True)
class TablesConfig:
    """Table names (letters, digits, underscores)."""

    customers: str = _f("customers", "Input: customer profiles.")
    transactions: str = _f("transactions", "Input: card/loan transactions.")
    statements: str = _f("statements", "Input: monthly statements.")
    outcomes: str = _f("outcomes", "Input: default events.")
    features: str = _f("features", "Output of build_features, partitioned by as_of_date.")
    runs: str = _f("_runs", "Folder (under the warehouse) of JSON run summaries.")


@dataclass(frozen=True)
class ValidationConfig:
    """Input-contract validation (credspark.contract)."""

    max_reject_fraction: float = _f(
        0.05, "A table whose rejected share exceeds this fails the run (0..1)."
    )
    write_rejects: bool = _f(True, "Write rejected rows to <table>_rejects with reason and run id.")


@dataclass(frozen=True)
class FeaturesConfig:
    """The feature job (credspark.pipelines.features)."""

    T: int = _f(12, "Months in the behaviour sequence (6 for UCI).")
    windows: tuple[int, ...] = _f((1, 3, 6, 12), "Rolling windows (months) of the static aggregates.")
    horizon_months: int = _f(12, "Label = default within this many months after the as-of date.")
    version: str = _f("1", "Feature-set version stored as a table property and in every row.")
    channels: tuple[str, ...] | None = _f(
        None, "Sequence channels to build; null = every channel the sources support."
    )


@dataclass(frozen=True)
class GenerateConfig:
    """The synthetic portfolio generator (credspark.sources.generator)."""

    customers: int = _f(10000, "Number of customers.")
    months: int = _f(24, "Months of history, ending at end_month.")
    end_month: str = _f("2025-12", "Last generated month (YYYY-MM).")
    default_rate: float = _f(0.05, "Target share of customers who default (0.15 = the paper's bank).")
    txn_per_month: float = _f(10.0, "Mean transactions per active customer-month.")
    seed: int = _f(7, "Random seed; the same seed gives the same portfolio.")
    partitions: int = _f(8, "Spark partitions of the generated customers.")
    with_transactions: bool = _f(True, "Generate the transactions table.")
    with_statements: bool = _f(True, "Generate the statements table.")


@dataclass(frozen=True)
class UciConfig:
    """The UCI 'default of credit card clients' adapter (credspark.sources.uci)."""

    input: str = _f(
        "../shared/data/uci_taiwan/UCI_Credit_Card.csv", "Path of the UCI CSV (Kaggle or original layout)."
    )
    as_of: str = _f("2005-09-30", "As-of date whose 1-month-horizon label is the file's target.")


@dataclass(frozen=True)
class Config:
    """Everything a job can be configured with."""

    spark: SparkConfig = field(default_factory=SparkConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    uci: UciConfig = field(default_factory=UciConfig)


# ---------------------------------------------------------------------------------------------- loading


def _check_value(key: str, tp: Any, value: Any) -> Any:
    """Coerce ``value`` to the annotated type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _check_value(key, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key '{key}': null is not allowed")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {type(value).__name__}")
        return tuple(_check_value(f"{key}[{i}]", args[0], v) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__}")
        return {str(k): _check_value(f"{key}.{k}", args[1], v) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        # YAML reads 2025-12 as a string but 2025-12-31 as a date; both mean the text the user wrote.
        return str(value)
    raise ConfigError(f"config key '{key}': unsupported type {tp}")  # pragma: no cover - programming error


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
        kwargs[k] = _check_value(key, hints[k], v)
    return cls(**kwargs)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from a nested mapping (keys absent keep their defaults)."""
    return _build(Config, data)


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``key.path=value`` override (value parsed as YAML) to a nested mapping.

    Args:
        data: The nested mapping so far.
        assignment: Text such as ``features.T=6`` or ``spark.conf.spark.executor.memory=2g``.

    Returns:
        A new mapping with the value set.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    value = yaml.safe_load(raw) if raw.strip() else ""
    # Free-form dict fields (spark.conf) take the rest of the dotted key as one key.
    if len(parts) > 2 and parts[0] == "spark" and parts[1] == "conf":
        parts = ["spark", "conf", ".".join(parts[2:])]
        value = str(value) if not isinstance(value, str) else value
    out = dict(data)
    cur = out
    for p in parts[:-1]:
        nxt = cur.get(p)
        nxt = dict(nxt) if isinstance(nxt, dict) else {}
        cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def default_conf_dir() -> Path:
    """The conf/ folder: $CREDSPARK_CONF_DIR, else the repository's conf/ beside the package, else ./conf."""
    env = os.environ.get("CREDSPARK_CONF_DIR")
    if env:
        return Path(env)
    repo_conf = Path(__file__).resolve().parents[1] / "conf"
    return repo_conf if repo_conf.is_dir() else Path("conf")


def common_parser(job: str, description: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the flags every job accepts."""
    p = argparse.ArgumentParser(prog=job, description=description)
    p.add_argument("--env", default=None, help="overlay conf/env/<ENV>.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable), e.g. --set features.T=6")
    p.add_argument("--warehouse", default=None, help="root folder of the tables (default ./warehouse)")
    p.add_argument("--conf-dir", default=None, help="folder with <job>.yaml and env/ (default: repo conf/)")
    return p


def load_config(
    job: str,
    argv: list[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> tuple[argparse.Namespace, Config]:
    """Parse a job's command line and build its Config.

    Args:
        job: Job name; ``conf/<job>.yaml`` is read when it exists.
        argv: Arguments (None = sys.argv[1:]).
        parser: A parser from :func:`common_parser` with the job's own flags added.

    Returns:
        The parsed arguments and the frozen Config.
    """
    parser = parser or common_parser(job)
    args = parser.parse_args(argv)
    conf_dir = Path(args.conf_dir) if args.conf_dir else default_conf_dir()
    data: dict[str, Any] = {}
    job_file = conf_dir / f"{job}.yaml"
    if job_file.exists():
        data = _deep_merge(data, _read_yaml(job_file))
    if args.env:
        if not args.env.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"--env {args.env!r}: only letters, digits, '-' and '_' are allowed")
        env_file = conf_dir / "env" / f"{args.env}.yaml"
        if not env_file.exists():
            raise ConfigError(f"--env {args.env}: {env_file} does not exist")
        data = _deep_merge(data, _read_yaml(env_file))
    if args.warehouse:
        data = _deep_merge(data, {"warehouse": {"path": args.warehouse}})
    for assignment in args.overrides:
        data = apply_override(data, assignment)
    return args, config_from_dict(data)


def render_reference() -> str:
    """The config reference (docs/config.md) rendered from the dataclasses' field docs."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `python -m credspark.config > docs/config.md` from `credspark/config.py`, where the "
        "defaults live. Every job reads `conf/<job>.yaml`, then `conf/env/<env>.yaml` (`--env`), then "
        "`--warehouse`, then `--set key=value` (repeatable; values are YAML). Unknown keys and wrong types "
        "are errors that name the key.",
        "",
    ]
    hints_root = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints_root[section.name]
        lines += [f"## `{section.name}`", "", (cls.__doc__ or "").strip(), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            tp = str(hints[f.name]).replace("typing.", "").replace("|", "\\|")
            d = "null" if default is None else repr(default).replace("|", "\\|")
            lines.append(f"| `{section.name}.{f.name}` | `{tp}` | `{d}` | {f.metadata.get('doc', '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_reference())
