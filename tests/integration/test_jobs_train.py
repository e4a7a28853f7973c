"""jobs/train.py end to end on a tiny portfolio in local-cluster mode (two executors, two XGBoost workers),
from the ONE subprocess run of tests/cluster/xgb_cluster.py shared with test_xgb_distributed.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cluster.xgb_cluster import AS_OF, cluster_results

pytestmark = pytest.mark.cluster

GATE_EXIT = 5


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return cluster_results(tmp_path_factory.getbasetemp() / "xgb_cluster")["job"]


def test_the_job_publishes_a_bundle_that_loads_and_predicts(job):
    from credspark.models.bundle import load_bundle
    from credspark.models.inputs import arrays_from_frame
    from tests.fixtures_models import feature_frame, tiny_spec

    assert job["run1_exit"] == 0, job["run1_summary"].get("reason")
    bundle_dir = Path(job["bundle_dir"])
    assert bundle_dir.name == job["run1_version"] and job["run1_version"].startswith("20251231-train-")
    assert (bundle_dir / "report.html").stat().st_size > 50_000
    bundle = load_bundle(bundle_dir, expected_spec=tiny_spec())
    static, dynamic, mask = arrays_from_frame(feature_frame(tiny_spec(), 50, seed=9, as_of=AS_OF), tiny_spec())
    p = bundle.predict_proba(static, dynamic, mask)
    assert p.shape == (50,) and np.all((p > 0) & (p < 1)) and p.std() > 0
    training = bundle.manifest["metadata"]["training_data"]
    dists = training["distributions"]
    assert {"score", "pd"} <= set(dists) and set(training["distribution_order"]) == set(dists)
    assert len([k for k in dists if k not in ("score", "pd")]) == 5  # every static feature of the tiny spec
    for entry in dists.values():
        assert len(entry["shares"]) == len(entry["edges"]) + 1 and abs(sum(entry["shares"]) - 1) < 1e-9
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"focal XGBoost on ResNet-LSTM", "focal XGBoost on ResNet-LSTM, uncalibrated",
                                       "plain XGBoost baseline"}
    assert metrics["gate"]["passed"] is True


def test_the_published_pd_is_calibrated_on_the_validation_part(job):
    from credspark.models.bundle import load_bundle
    from tests.fixtures_models import tiny_spec

    counts = job["run1_summary"]["counts"]
    n_valid = counts["valid_0"] + counts["valid_1"]
    bundle_dir = Path(job["bundle_dir"])
    cal = load_bundle(bundle_dir, expected_spec=tiny_spec()).calibrator
    assert cal.method == "platt" and cal.slope > 0
    assert cal.n_fit == n_valid and cal.positive_rate == pytest.approx(counts["valid_1"] / n_valid)
    assert job["run1_summary"]["details"]["calibration"] == cal.to_dict()
    m = json.loads((bundle_dir / "metrics.json").read_text())["metrics"]
    calibrated, raw = m["focal XGBoost on ResNet-LSTM"], m["focal XGBoost on ResNet-LSTM, uncalibrated"]
    # A strictly increasing map: same ranking on the same test rows, other probabilities.
    assert calibrated["n"] == raw["n"] and calibrated["auc"] == pytest.approx(raw["auc"], abs=1e-9)
    assert calibrated["ks"] == pytest.approx(raw["ks"], abs=1e-9)
    assert calibrated["mean_score"] != pytest.approx(raw["mean_score"], abs=1e-6)


def test_no_generated_row_reaches_validation_or_test(job):
    counts = job["run1_summary"]["counts"]
    assert counts["generated_rows"] > 0
    assert counts["embedded_train_generated"] == counts["generated_rows"]
    assert "embedded_valid_generated" not in counts and "embedded_test_generated" not in counts
    assert counts["embedded_valid_real"] == counts["valid_0"] + counts["valid_1"]
    assert counts["embedded_test_real"] == counts["test_0"] + counts["test_1"]
    # The recorded split holds real customers only, and the test metrics cover exactly the real test rows.
    assert job["split_min_customer_id"] >= 1
    assert job["split_rows"] == {"train": counts["train_0"] + counts["train_1"],
                                 "valid": counts["valid_0"] + counts["valid_1"],
                                 "test": counts["test_0"] + counts["test_1"]}
    assert sum(job["split_rows"].values()) == job["features_rows"]
    bundle_metrics = json.loads((Path(job["bundle_dir"]) / "metrics.json").read_text())
    assert bundle_metrics["metrics"]["focal XGBoost on ResNet-LSTM"]["n"] == counts["test_0"] + counts["test_1"]


def test_the_quality_gate_refuses_and_leaves_current_alone(job):
    assert job["run2_exit"] == GATE_EXIT
    assert job["run2_current"] == job["run1_version"]
    assert len(job["versions"]) == 2  # the refused bundle is stored for inspection, not published
    s = job["run2_summary"]
    assert s["status"] == "failed" and "not published" in s["reason"] and "0.999" in s["reason"]


def test_same_seed_same_metrics(job):
    a, b = job["run1_summary"]["details"], job["run2_summary"]["details"]
    for model, m in a["metrics"].items():
        for key, value in m.items():
            assert b["metrics"][model][key] == pytest.approx(value, abs=1e-9), (model, key)
    assert a["xgb"]["best_iteration"] == b["xgb"]["best_iteration"]
