"""Categorical attributes: the encoding fitted on training rows, stored in the bundle, applied at model input.

The features table holds a categorical attribute as one text column of its own name (the contract's clean
value: with declared categories a value outside them is already ``other``). The encoding is a list of
categories per attribute:

- declared categories (``attributes.<name>.categories``): that list, in its order;
- none declared: the categories seen in the training part, most frequent first (ties by text), at most
  ``max_categories`` of them; ``other`` is never one, nor a category whose feature name another one has.

The training job fits it (:func:`fit_category_encoding`) and records it in the FeatureSpec it trains on
(``extra["category_encoding"]``), so the bundle's manifest stores it as JSON. Training and scoring apply it
with the one transform :func:`with_category_encoding`: one 0/1 static feature per category,
``<name>__<category>``, and ``<name>__other`` for any other value (at scoring: a category the training rows
did not have, counted in the run summary as ``unseen_categories``); a null value sets none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.config import OTHER_CATEGORY
from credspark.features.attributes import SPEC_KEY
from credspark.models.spec import ENCODING_KEY, FeatureSpec, StaticFeature, category_column, encoding_columns

__all__ = [
    "categorical_attributes",
    "choose_categories",
    "fit_category_encoding",
    "encoded_spec",
    "category_code",
    "with_category_encoding",
    "drift_columns",
    "mark_attributes",
]


def categorical_attributes(spec: FeatureSpec) -> dict[str, dict[str, Any]]:
    """The categorical attributes a FeatureSpec declares (``extra["attributes"]``), in declaration order."""
    return {n: a for n, a in spec.extra.get(SPEC_KEY, {}).items() if a.get("kind") == "categorical"}


def choose_categories(counts: Mapping[str, int], declared: Sequence[str], max_categories: int) -> list[str]:
    """The categories of one attribute's encoding.

    Args:
        counts: Training rows per (non-null) value.
        declared: The declared categories (non-empty: they are the encoding, in their order).
        max_categories: Most categories kept when none are declared.

    Returns:
        The declared list, or the seen values most frequent first (ties by text), without ``other``, without a
        value whose feature name an earlier one has, at most ``max_categories``.
    """
    if declared:
        return list(declared)
    out: list[str] = []
    taken = {category_column("x", OTHER_CATEGORY)}
    for value in sorted(counts, key=lambda v: (-counts[v], v)):
        col = category_column("x", value)
        if len(out) == max_categories:
            break
        if value != OTHER_CATEGORY and col not in taken:
            out.append(value)
            taken.add(col)
    return out


def fit_category_encoding(train_rows: DataFrame, spec: FeatureSpec) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Fit the encoding of the spec's categorical attributes on the training rows (one Spark job).

    Args:
        train_rows: The training part's rows, with one text column per categorical attribute.
        spec: The features table's FeatureSpec.

    Returns:
        ``(encoding, summary)``: the encoding, and per attribute the categories, the training rows that encode
        as ``other`` and the declared categories without a training row (for the run summary).
    """
    attrs = categorical_attributes(spec)
    if not attrs:
        return {}, {}
    pairs = F.explode(F.array(*[F.struct(F.lit(n).alias("a"), F.col(n).cast("string").alias("v")) for n in attrs]))
    counts: dict[str, dict[str, int]] = {n: {} for n in attrs}
    for r in (train_rows.select(pairs.alias("p")).where(F.col("p.v").isNotNull())
              .groupBy("p.a", "p.v").count().collect()):  # <= distinct values of a few attributes
        counts[r["a"]][r["v"]] = int(r["count"])
    encoding, summary = {}, {}
    for n, a in attrs.items():
        cats = choose_categories(counts[n], a.get("categories", []), int(a.get("max_categories", 20)))
        encoding[n] = cats
        summary[n] = {"categories": cats, "other_rows": sum(c for v, c in counts[n].items() if v not in cats),
                      "declared_without_rows": [c for c in a.get("categories", []) if c not in counts[n]]}
    return encoding, summary


def encoded_spec(spec: FeatureSpec, encoding: Mapping[str, Sequence[str]]) -> FeatureSpec:
    """The FeatureSpec the models see: the table's static features, then each attribute's 0/1 features.

    The encoding is recorded in ``extra["category_encoding"]`` (and so in the bundle's manifest).
    """
    if not encoding:
        return spec
    extra = {**spec.extra, ENCODING_KEY: {n: list(c) for n, c in encoding.items()}}
    added = tuple(StaticFeature(col, "binary", (), 0.0, 1.0)
                  for n, cats in encoding.items() for col in encoding_columns(n, cats))
    return FeatureSpec(static=(*spec.static, *added), channels=spec.channels, T=spec.T, version=spec.version,
                       extra=extra)


def category_code(name: str, categories: Sequence[str]) -> Column:
    """Which 0/1 feature of an attribute is set: its position in the encoding (``other`` last), null for null.

    A numeric stand-in for the category, binned one bin per category for drift (PSI) monitoring.
    """
    cols = encoding_columns(name, categories)
    return F.coalesce(*[F.when(F.col(c) == 1, F.lit(float(i))) for i, c in enumerate(cols)])


def with_category_encoding(encoding: Mapping[str, Sequence[str]]) -> Callable[[DataFrame], DataFrame]:
    """Add each attribute's 0/1 features (:func:`encoding_columns`) after the existing columns (text kept)."""

    def transform(df: DataFrame) -> DataFrame:
        cols = []
        for name, cats in encoding.items():
            c = F.col(name).cast("string")
            names = encoding_columns(name, cats)
            cols += [F.when(c.isNotNull(), (c == F.lit(cat)).cast("int")).alias(col) for cat, col in zip(cats, names)]
            known = c.isin(*cats) if cats else F.lit(False)
            cols.append(F.when(c.isNotNull(), (~known).cast("int")).alias(names[-1]))
        return df.select("*", *cols)

    return transform


def drift_columns(spec: FeatureSpec, top: Sequence[str]) -> tuple[dict[str, Column], dict[str, list[float]]]:
    """The columns whose training distribution the bundle stores for PSI, and the fixed edges of some.

    Args:
        spec: The FeatureSpec the models were trained on (encoded).
        top: The static features ranked for monitoring (``train.drift_features`` of them).

    Returns:
        ``(columns, fixed_edges)``: ``top`` less the categorical attributes' 0/1 features, then every numeric
        attribute, then every categorical attribute as its :func:`category_code`, binned one bin per category
        (``other`` last) by ``fixed_edges``.
    """
    encoding = spec.category_encoding
    indicators = {c for n, cats in encoding.items() for c in encoding_columns(n, cats)}
    numeric = [n for n, a in spec.extra.get(SPEC_KEY, {}).items() if a.get("kind") == "numeric"]
    cols = {n: F.col(n).cast("double") for n in dict.fromkeys([*(t for t in top if t not in indicators), *numeric])}
    cols |= {n: category_code(n, cats) for n, cats in encoding.items()}
    return cols, {n: [float(i) for i in range(1, len(cats) + 1)] for n, cats in encoding.items()}


def mark_attributes(dists: Mapping[str, dict[str, Any]], spec: FeatureSpec) -> dict[str, dict[str, Any]]:
    """The distributions with each declared attribute's entry marked ``"attribute": true`` (always monitored).

    A categorical attribute's entry also names its bins' ``categories`` (``other`` last); the scoring job bins
    the partition's :func:`category_code` by the same edges.
    """
    declared = spec.extra.get(SPEC_KEY, {})
    encoding = spec.category_encoding
    out = {}
    for n, d in dists.items():
        if n in encoding:
            d = {**d, "categories": [*encoding[n], OTHER_CATEGORY]}
        out[n] = {**d, "attribute": True} if n in declared else dict(d)
    return out
