"""TorchDistributor + arrow feed on two executors (local-cluster), run as ONE subprocess: see
tests/cluster/deep_cluster.py for what it does. The subprocess owns its own JVM, so this test does not
use the suite's ``spark`` fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.harness import run_script

pytestmark = pytest.mark.cluster

SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "deep_cluster.py"


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    return run_script(SCRIPT, tmp_path_factory.mktemp("deep_cluster"), timeout_s=1500)


def test_both_models_train_on_two_executors_with_identical_replicas(cluster_run):
    assert cluster_run["world_size"] == {"resnet_lstm": 2, "actgan": 2}
    for model, hashes in cluster_run["hashes"].items():
        assert len(hashes) == 2 and hashes[0] == hashes[1], model
    assert cluster_run["hashes"]["resnet_lstm"] != cluster_run["hashes"]["actgan"]


def test_generated_rows_reach_the_training_feed_and_models_load_on_the_driver(cluster_run):
    assert cluster_run["n_generated"] > 0
    assert cluster_run["generated_rows"] == cluster_run["n_generated"]
    assert cluster_run["proba_finite"] is True
    assert cluster_run["sample_shape"] == [3, 4, 3]
    assert len(cluster_run["valid_auc"]) == 1


def test_second_run_resumes_at_the_next_epoch(cluster_run):
    resume = cluster_run["resume"]
    assert resume["latest_epoch"] == 1  # epoch 1 trained by the second run, epoch 2 never finished
    assert len(resume["losses"]) == 2
    assert resume["losses"][0] == pytest.approx(resume["first_run_losses"][0])


def test_a_failing_worker_fails_the_run_promptly_with_its_error(cluster_run):
    failure = cluster_run["failure"]
    assert failure["raised"] == "WorkerError", failure
    assert (failure["rank"], failure["type"]) == (1, "RuntimeError")
    assert "injected failure on rank 1 at epoch 2" in failure["message"]
    assert failure["s"] < 300  # well before the configured timeout: cancelled, not waited out
    assert failure["error_to_raise_s"] is not None and failure["error_to_raise_s"] < 60
    assert cluster_run["after_failure_count"] == 10  # the session survives the cancelled stage
