"""Bring your own data with known effects: a generated application file whose strongest attributes are planted.

    python benchmarks/byod_planted.py                  # 20,000 applicants
    python benchmarks/byod_planted.py --rows 5000

A small generator of application data (numpy, seeded): eight declared attributes, of which ``bureau_score``
(numeric, risk falls as it rises) and ``employment`` (categorical) carry the strongest planted effects,
``debt_ratio`` a weaker one, and five are noise; the label is drawn from a logistic model of them. The file goes
through ``jobs/ingest_table.py`` (a mapping and the attribute declarations written beside it, under
``--workdir``), ``jobs/build_features.py`` and ``jobs/train.py`` (static-only; by default the tree-only
candidates, ``train.candidates=[plain_static,focal_static]``: the ranking reads the booster's gain on the
attributes, which a paper champion's booster spends on the embedding; ``--set`` overrides it). The published
champion's total gain is summed per attribute (a categorical attribute's indicator columns together) and the
attributes ranked. The last line is ONE JSON object with the ranking, ``planted_top2`` and
``recovered`` (the two planted strongest attributes rank first and second), and the champion's test AUC.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import emit_json  # noqa: E402
from benchmarks.champion_uci import _run, _sets  # noqa: E402

AS_OF = "2025-06-30"
#: The ranking reads the champion booster's gain per attribute: a paper champion's booster reads the embedding.
TREES = "train.candidates=[plain_static,focal_static]"
STRONGEST = ("bureau_score", "employment")
EMPLOYMENT = ("salaried", "self_employed", "unemployed", "retired")
NOISE = ("noise_a", "noise_b", "noise_c", "noise_d", "noise_e")


def generate(rows: int, seed: int) -> Any:
    """The application file (pandas): ``app_id``, the attributes, ``applied_on`` and ``bad`` (0/1)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    score = rng.normal(650, 60, rows).clip(300, 850)
    employment = rng.choice(EMPLOYMENT, rows, p=[0.6, 0.2, 0.1, 0.1])
    debt = rng.gamma(2.0, 0.2, rows)
    logit = (-2.2 - 0.03 * (score - 650) + 0.5 * (debt - 0.4)
             + np.select([employment == "unemployed", employment == "self_employed"], [1.8, 0.6], 0.0))
    bad = rng.random(rows) < 1 / (1 + np.exp(-logit))
    out = pd.DataFrame({"app_id": np.arange(1, rows + 1), "bureau_score": score.round(0), "employment": employment,
                        "debt_ratio": debt.round(4)})
    for name in NOISE:
        out[name] = rng.normal(0, 1, rows).round(4)
    out["applied_on"] = "2025-06-15"
    out["bad"] = bad.astype(int)
    return out


def _write_inputs(workdir: Path, rows: int, seed: int) -> tuple[Path, Path, Path]:
    data = generate(rows, seed)
    csv = workdir / "applications.csv"
    data.to_csv(csv, index=False)
    attrs = {"bureau_score": {"kind": "numeric", "lower": 300, "upper": 850},
             "employment": {"kind": "categorical", "categories": list(EMPLOYMENT)},
             "debt_ratio": {"kind": "numeric", "lower": 0}} | {n: {"kind": "numeric"} for n in NOISE}
    conf = workdir / "conf"
    (conf / "env").mkdir(parents=True, exist_ok=True)
    (conf / "env" / "planted.yaml").write_text(json.dumps(
        {"attributes": attrs, "features": {"horizon_months": 12, "behaviour": False}}, indent=1))
    mapping = workdir / "mapping.yaml"
    mapping.write_text(json.dumps({
        "table": "customers", "key": "app_id", "columns": {n: n for n in attrs},
        "label": {"column": "bad", "positive": [1], "observation_date_column": "applied_on",
                  "horizon_months": 12}}, indent=1))
    return csv, conf, mapping


def attribute_gain(gain: dict[str, float], attributes: list[str]) -> dict[str, float]:
    """Total gain per attribute: a feature ``<name>__<category>`` counts for ``<name>``."""
    out = dict.fromkeys(attributes, 0.0)
    for feature, g in gain.items():
        name = feature.split("__")[0]
        if name in out:
            out[name] += g
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=str(REPO / "warehouse" / "bench_byod_planted"))
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra train config, key=value")
    a = p.parse_args()

    from credspark.config import SparkConfig
    from credspark.io.spark import build_session
    from credspark.models.bundle import load_bundle

    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    csv, conf, mapping = _write_inputs(workdir, a.rows, a.seed)
    wh = workdir / "warehouse"
    common = ["--conf-dir", str(conf), "--env", "planted", "--warehouse", str(wh)]
    spark = build_session(SparkConfig(master="local[2]", driver_memory="4g", shuffle_partitions=8),
                          "bench-byod-planted", str(wh))
    out: dict[str, Any] = {"rows": a.rows, "seed": a.seed, "jobs_s": {}}
    try:
        for job, argv in (("ingest_table", ["--input", str(csv), "--format", "csv", "--mapping", str(mapping)]),
                          ("build_features", ["--as-of", AS_OF]),
                          ("train", ["--as-of", AS_OF, *_sets(["train.min_test_auc=0.5", TREES, *a.overrides])])):
            code, out["jobs_s"][job] = _run(f"jobs.{job}", common + argv)
            if code:
                raise SystemExit(f"{job} failed with exit code {code}")
    finally:
        spark.stop()
    summary = json.loads(sorted((wh / "_runs").glob("train-*.json"), key=lambda q: q.stat().st_mtime_ns)[-1]
                         .read_text())
    bundle = load_bundle(summary["details"]["bundle"])
    gain = bundle.classifier.booster_.get_score(importance_type="total_gain")
    attrs = ["bureau_score", "employment", "debt_ratio", *NOISE]
    per_attribute = attribute_gain(gain, attrs)
    ranking = sorted(per_attribute, key=lambda n: -per_attribute[n])
    champion = summary["details"]["champion"]
    out |= {"ranking": ranking, "gain": per_attribute, "planted_top2": list(STRONGEST),
            "recovered": set(ranking[:2]) == set(STRONGEST), "champion": champion["key"],
            "champion_test_auc": summary["details"]["metrics"][champion["name"]]["auc"]}
    emit_json(out)


if __name__ == "__main__":
    main()
