"""The feature table's FeatureSpec: written as table properties, rebuilt from schema + properties.

Properties of the ``features`` table (all strings):

- ``credspark.feature_version``: the feature-set version (also a column in every row);
- ``credspark.T``: months in ``seq``; ``credspark.channels``: the C channel names, comma-joined, in order;
- ``credspark.feature_spec``: the whole :class:`~credspark.models.spec.FeatureSpec` as compact JSON (static
  columns with kinds, categories and bounds, channels, T, version, extra);
- ``credspark.absent_sources``: comma-joined input tables that did not exist (their features are left
  out, never zero-filled); ``credspark.left_out``: JSON ``{source: [feature or channel names]}``;
- ``credspark.horizon_months``: the label horizon.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import types as T

from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

__all__ = [
    "RESERVED_COLUMNS",
    "PROP_SPEC",
    "PROP_T",
    "PROP_CHANNELS",
    "PROP_VERSION",
    "PROP_ABSENT",
    "PROP_LEFT_OUT",
    "PROP_HORIZON",
    "feature_table_properties",
    "spec_from_table",
    "spec_from_table_properties",
]

#: Columns of the features table that are not static features.
RESERVED_COLUMNS: tuple[str, ...] = ("customer_id", "as_of_date", "seq", "seq_mask", "label", "feature_version")

PROP_SPEC = "credspark.feature_spec"
PROP_T = "credspark.T"
PROP_CHANNELS = "credspark.channels"
PROP_VERSION = "credspark.feature_version"
PROP_ABSENT = "credspark.absent_sources"
PROP_LEFT_OUT = "credspark.left_out"
PROP_HORIZON = "credspark.horizon_months"


def feature_table_properties(
    spec: FeatureSpec,
    *,
    absent_sources: Iterable[str],
    left_out: Mapping[str, Sequence[str]],
    horizon_months: int,
) -> dict[str, str]:
    """The table properties describing one feature build.

    Args:
        spec: The FeatureSpec of the rows written.
        absent_sources: Input tables that did not exist.
        left_out: Feature and channel names left out, keyed by their (absent) source.
        horizon_months: The label horizon.

    Returns:
        Property name -> string value.
    """
    compact = {"sort_keys": True, "separators": (",", ":")}
    return {
        PROP_VERSION: spec.version,
        PROP_T: str(spec.T),
        PROP_CHANNELS: ",".join(spec.channels),
        PROP_SPEC: json.dumps(spec.to_dict(), **compact),
        PROP_ABSENT: ",".join(sorted(absent_sources)),
        PROP_LEFT_OUT: json.dumps({k: list(v) for k, v in sorted(left_out.items())}, **compact),
        PROP_HORIZON: str(horizon_months),
    }


def spec_from_table_properties(properties: Mapping[str, str]) -> FeatureSpec:
    """The FeatureSpec stored in ``credspark.feature_spec`` (no schema check).

    Raises:
        SpecMismatchError: The property is missing or not a valid FeatureSpec.
    """
    if PROP_SPEC not in properties:
        raise SpecMismatchError(f"features table: property {PROP_SPEC} is missing")
    try:
        return FeatureSpec.from_dict(json.loads(properties[PROP_SPEC]))
    except (ValueError, KeyError, TypeError) as e:
        raise SpecMismatchError(f"features table: property {PROP_SPEC} is not a valid FeatureSpec: {e}") from e


def _kind_from_type(name: str, dtype: T.DataType) -> str:
    if isinstance(dtype, (T.IntegerType, T.LongType, T.ShortType, T.ByteType)):
        return "integer"
    if isinstance(dtype, (T.DoubleType, T.FloatType, T.DecimalType)):
        return "continuous"
    raise SpecMismatchError(f"features table: column {name!r} of type {dtype.simpleString()} is not numeric")


def spec_from_table(schema: T.StructType, properties: Mapping[str, str]) -> FeatureSpec:
    """Rebuild the FeatureSpec of a features table and check it against the table's columns.

    Uses ``credspark.feature_spec`` when present; otherwise derives the static block from the schema (every
    column not in :data:`RESERVED_COLUMNS`, in table order; integer types -> ``integer``, floating ->
    ``continuous``; categories are then unknown) with T and channels from their own properties.

    Args:
        schema: The features table's schema (``df.schema``).
        properties: Its table properties (``credspark.io.tables.get_properties``).

    Returns:
        The FeatureSpec.

    Raises:
        SpecMismatchError: Properties are missing or disagree with each other or with the columns.
    """
    columns = {f.name: f.dataType for f in schema.fields}
    for needed in ("seq", "seq_mask"):
        if needed not in columns:
            raise SpecMismatchError(f"features table: column {needed!r} is missing")
    if PROP_SPEC in properties:
        spec = spec_from_table_properties(properties)
        missing = [n for n in spec.static_names if n not in columns]
        if missing:
            raise SpecMismatchError(f"features table: static columns {missing} of {PROP_SPEC} are not in the table")
    else:
        if PROP_T not in properties or PROP_CHANNELS not in properties:
            raise SpecMismatchError(f"features table: properties {PROP_T} and {PROP_CHANNELS} are missing")
        static = tuple(
            StaticFeature(name, _kind_from_type(name, dtype))
            for name, dtype in columns.items()
            if name not in RESERVED_COLUMNS
        )
        spec = FeatureSpec(
            static=static,
            channels=tuple(c for c in properties[PROP_CHANNELS].split(",") if c),
            T=int(properties[PROP_T]),
            version=properties.get(PROP_VERSION, "1"),
        )
    if PROP_T in properties and int(properties[PROP_T]) != spec.T:
        raise SpecMismatchError(f"features table: {PROP_T}={properties[PROP_T]} but the spec says T={spec.T}")
    if PROP_CHANNELS in properties and properties[PROP_CHANNELS] != ",".join(spec.channels):
        raise SpecMismatchError(
            f"features table: {PROP_CHANNELS}={properties[PROP_CHANNELS]!r} but the spec lists {spec.channels}"
        )
    return spec
