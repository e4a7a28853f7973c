"""Shared test helpers: tiny feature rows and a tiny published model bundle (plain functions).

Used by the scoring tests and reusable by the training / reliability tests::

    spec = tiny_spec()
    pdf = feature_frame(spec, 300, seed=0, as_of=dt.date(2025, 12, 31))
    write_feature_partition(spark, cfg, pdf, spec)            # Delta table 'features' + spec properties
    version_dir = publish_tiny_bundle(cfg.warehouse.path, "credspark", "v1", spec, pdf)

The bundle is a real ResNetLSTM (tiny widths, 1 epoch) + FocalXGBClassifier, written with ``save_bundle``
into ``model_store.model_dir`` and made ``current`` with ``set_current``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credspark.models.spec import FeatureSpec, StaticFeature

__all__ = [
    "tiny_spec",
    "feature_frame",
    "feature_schema",
    "write_feature_partition",
    "fit_tiny_models",
    "publish_tiny_bundle",
]



#: Tiny deep models, boosters and a permissive gate for the job tests that train (``--set`` assignments);
#: each test adds its own ``xgb.num_workers`` and session settings.
TINY_TRAIN_SETTINGS = [
    "distributed.backend=local", "distributed.num_workers=1",
    "resnet_lstm.epochs=2", "resnet_lstm.batch_size=64", "resnet_lstm.embedding_dim=6", "resnet_lstm.filters=[4,8]",
    "resnet_lstm.lstm_hidden=4", "resnet_lstm.lr=0.003",
    "actgan.epochs=2", "actgan.batch_size=64", "actgan.noise_dim=8", "actgan.generator_dims=[16]",
    "actgan.discriminator_dims=[16]", "actgan.n_critic=2",
    "xgb.n_estimators=30", "xgb.early_stopping_rounds=5", "xgb.learning_rate=0.2",
    "xgb.timeout_s=120", "train.min_test_auc=0.5", "train.max_auc_below_baseline=0.5",
    # A two-epoch ACTGAN's rows are noise: at the default 0.4 (84 noise rows beside 55 real defaults of
    # feature_frame(600, seed=3)) the paper model learned the noise and ranked validation backwards on one
    # machine (Platt slope -12.85) and not on another; at 0.25 (about 15 rows) it learns the planted signal.
    "distributed.oversample_ratio=0.25",
]  # fmt: skip

def tiny_spec(version: str = "1") -> FeatureSpec:
    """A small FeatureSpec in the feature job's style: profile + behaviour columns, 3 channels, T=4."""
    return FeatureSpec(
        static=(
            StaticFeature("age", "integer", lower=18),
            StaticFeature("sex", "categorical", (1, 2)),
            StaticFeature("credit_limit", "continuous", lower=0),
            StaticFeature("util_mean_3m", "continuous"),
            StaticFeature("months_delinquent_3m", "integer", lower=0),
        ),
        channels=("delinquency", "bill_amount", "utilisation"),
        T=4,
        version=version,
    )


def feature_frame(spec: FeatureSpec, n: int, *, seed: int = 0, as_of: dt.date = dt.date(2025, 12, 31),
                  first_id: int = 1, shift: float = 0.0) -> pd.DataFrame:
    """Feature-table rows (pandas) with a learnable default signal.

    Args:
        spec: The FeatureSpec (built for :func:`tiny_spec`'s columns; other numeric columns get noise).
        n: Rows.
        seed: Random seed.
        as_of: The as_of_date of every row.
        first_id: First customer_id.
        shift: Added to utilisation-like inputs (drift tests).

    Returns:
        customer_id, as_of_date, the static columns, seq (list of float), seq_mask (list of int), label,
        feature_version.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"customer_id": np.arange(first_id, first_id + n, dtype=np.int64),
                            "as_of_date": [as_of] * n}
    risk = rng.normal(size=n) + shift
    for f in spec.static:
        if f.kind == "categorical":
            cols[f.name] = rng.choice(np.asarray(f.categories), size=n).astype(np.int32)
        elif f.kind in ("integer", "binary"):
            hi = 2 if f.kind == "binary" else 60
            lo = 0 if f.kind == "binary" else 18
            cols[f.name] = rng.integers(lo, hi, size=n).astype(np.int32)
        else:
            cols[f.name] = rng.lognormal(8, 1, size=n) if "limit" in f.name else rng.normal(size=n) + 0.5 * risk
    dyn = rng.normal(size=(n, spec.T, spec.C)).astype(np.float32)
    if spec.C:  # a static-only spec (no channels) carries the signal in its static columns only
        dyn[:, :, 0] += risk[:, None].astype(np.float32)
    mask = np.ones((n, spec.T), dtype=np.int8)
    mask[: n // 4, : spec.T // 2] = 0  # some customers are new: leading months unobserved
    dyn[mask == 0] = 0.0
    cols["seq"] = list(dyn.reshape(n, -1))
    cols["seq_mask"] = list(mask)
    cols["label"] = (risk + rng.normal(scale=0.7, size=n) > 1.3).astype(np.int32)
    cols["feature_version"] = [spec.version] * n
    return pd.DataFrame(cols)


def feature_schema(spec: FeatureSpec):
    """The Spark schema of the features table for ``spec`` (as the feature job writes it)."""
    from pyspark.sql import types as T

    fields = [T.StructField("customer_id", T.LongType(), False), T.StructField("as_of_date", T.DateType(), False)]
    for f in spec.static:
        dtype = T.DoubleType() if f.kind == "continuous" else T.IntegerType()
        fields.append(T.StructField(f.name, dtype, True))
    fields += [
        T.StructField("seq", T.ArrayType(T.FloatType(), False), True),
        T.StructField("seq_mask", T.ArrayType(T.ByteType(), False), True),
        T.StructField("label", T.IntegerType(), True),
        T.StructField("feature_version", T.StringType(), True),
    ]
    return T.StructType(fields)


def write_feature_partition(spark, cfg, pdf: pd.DataFrame, spec: FeatureSpec) -> None:
    """Write ``pdf`` as the as-of-date partition(s) of the ``features`` Delta table, with the spec properties."""
    from credspark.features.spec import feature_table_properties
    from credspark.io.tables import overwrite_partitions, set_properties, table_ref

    rows = pdf.copy()
    rows["seq"] = [list(map(float, s)) for s in rows["seq"]]
    rows["seq_mask"] = [list(map(int, m)) for m in rows["seq_mask"]]
    df = spark.createDataFrame(rows, schema=feature_schema(spec))
    ref = table_ref(cfg, cfg.tables.features)
    overwrite_partitions(df, ref, "as_of_date", sorted(set(pdf["as_of_date"])))
    set_properties(spark, ref, feature_table_properties(spec, absent_sources=(), left_out={}, horizon_months=12))


def fit_tiny_models(spec: FeatureSpec, pdf: pd.DataFrame, *, use_raw_static: bool = False, seed: int = 0,
                    n_estimators: int = 20, embedder_kwargs: dict | None = None):
    """Fit a tiny ResNetLSTM (1 epoch) and a focal XGBoost on its embeddings; returns ``(embedder, classifier)``."""
    import torch

    from credspark.models.focal_xgb import FocalXGBClassifier
    from credspark.models.inputs import arrays_from_frame
    from credspark.models.resnet_lstm import ResNetLSTM

    torch.set_num_threads(1)
    static, dynamic, mask, y = arrays_from_frame(pdf, spec, with_label=True)
    kwargs = dict(embedding_dim=6, filters=(4, 8), lstm_hidden=4, epochs=1, batch_size=64, random_state=seed)
    kwargs.update(embedder_kwargs or {})
    embedder = ResNetLSTM(spec=spec, **kwargs).fit(static, dynamic, mask, y)
    emb = embedder.embed(static, dynamic, mask)
    X = np.hstack([emb, static]) if use_raw_static else emb
    names = [f"emb_{i}" for i in range(emb.shape[1])] + (spec.static_names if use_raw_static else [])
    clf = FocalXGBClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed, n_jobs=1,
                             feature_names=names).fit(X, y)
    return embedder, clf


def publish_tiny_bundle(warehouse: str | Path, name: str, version: str, spec: FeatureSpec, pdf: pd.DataFrame, *,
                        use_raw_static: bool = False, seed: int = 0, metadata: dict | None = None,
                        make_current: bool = True, models: tuple | None = None, calibration=None,
                        **fit_kwargs) -> Path:
    """Fit tiny models on ``pdf``, save them as bundle ``models/<name>/<version>`` and (by default) make it current.

    ``models=(embedder, classifier)`` (from :func:`fit_tiny_models`) skips the fit, e.g. to publish the same
    models twice with different metadata. ``calibration`` is a :class:`~credspark.models.calibration.Calibrator`
    stored in the manifest (None: the identity).

    Returns:
        The bundle directory.
    """
    from credspark.io.model_store import model_dir, set_current
    from credspark.models.bundle import save_bundle

    embedder, clf = models or fit_tiny_models(spec, pdf, use_raw_static=use_raw_static, seed=seed, **fit_kwargs)
    target = model_dir(warehouse, name, version)
    save_bundle(target, spec=spec, embedder=embedder, classifier=clf, metadata=dict(metadata or {}),
                use_raw_static=use_raw_static, calibration=calibration, created_at="2026-01-01T00:00:00+00:00")
    if make_current:
        set_current(warehouse, name, version)
    return target
