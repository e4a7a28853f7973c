"""The one-line reasons a failed run gives: readable for JVM errors, and naming a distributed worker that died
without raising (the end-to-end checks are in test_faults.py and test_distributed_faults.py; these pin the
text rules without starting anything).
"""

from __future__ import annotations

import json
from pathlib import Path


class Py4JJavaError(Exception):  # the class name run_job sees for JVM errors; the text is Spark's
    pass


def test_the_one_line_reason_of_a_jvm_error_names_what_failed_and_why():
    from credspark.runner import failure_reason

    text = (
        "An error occurred while calling o699.save.\n"
        ": org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to "
        "file:/wh/scores. SQLSTATE: 58030\n\tat org.apache.spark.sql.errors.QueryExecutionErrors$.x(X.scala:1)\n"
        "Caused by: org.apache.hadoop.fs.FSError: java.io.IOException: No space left on device\n\t... 16 more\n"
        "\tSuppressed: java.io.IOException: Stream closed\n"
        "Caused by: java.io.IOException: No space left on device\n\t... 40 more"
    )
    reason = failure_reason(Py4JJavaError(text))
    assert reason.startswith("Py4JJavaError: An error occurred while calling o699.save.")
    assert "Task failed while writing rows to file:/wh/scores" in reason
    assert reason.endswith("| java.io.IOException: No space left on device") and "\n" not in reason
    assert failure_reason(ValueError("plain\nsecond line")) == "ValueError: plain"


def _record(error_dir: Path, rank: int, error_type: str, message: str, at: float) -> None:
    (error_dir / f"rank-{rank}.json").write_text(
        json.dumps({"rank": rank, "type": error_type, "message": message, "traceback": "", "time": at})
    )


def test_the_error_names_a_rank_that_died_silently_not_its_peers_lost_connection(tmp_path):
    """The diagnosis both launchers (TorchDistributor, Horovod) use, on the error files workers leave."""
    from credspark.distributed.launchers import _worker_error

    reset = "[gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:4242: Connection reset by peer"
    _record(tmp_path, 0, "RuntimeError", reset, 10.0)
    _record(tmp_path, 2, "RuntimeError", reset, 10.1)
    err = _worker_error(str(tmp_path), 4)  # ranks 1 and 3 recorded nothing
    assert (err.rank, err.error_type) == (-1, "WorkerDied")
    assert err.message.startswith("rank 1, 3 ended without raising") and "Connection reset by peer" in err.message
    assert (_worker_error(str(tmp_path), 3).rank, _worker_error(str(tmp_path), 3).error_type) == (1, "WorkerDied")
    # A rank that raised records its error before its peers lose the connection: it stays the cause.
    _record(tmp_path, 1, "ValueError", "bad batch", 9.9)
    err = _worker_error(str(tmp_path), 3)
    assert (err.rank, err.error_type, err.message) == (1, "ValueError", "bad batch")
    (tmp_path / "empty").mkdir()
    assert _worker_error(str(tmp_path / "empty"), 2) is None


def test_horovods_shutdown_on_the_survivor_is_read_as_a_lost_peer(tmp_path):
    # What rank 0 of a Horovod run recorded when rank 1's process was SIGKILLed (seen in
    # test_distributed_faults.py::test_a_horovod_worker_killed_mid_epoch_fails_the_run_naming_it).
    from credspark.distributed.launchers import _worker_error

    shut = ("Horovod has been shut down. This was caused by an exception on one of the ranks or an attempt to "
            "allreduce, allgather or broadcast a tensor after one of the ranks finished execution.")
    _record(tmp_path, 0, "HorovodInternalError", shut, 10.0)
    err = _worker_error(str(tmp_path), 2)
    assert (err.rank, err.error_type) == (1, "WorkerDied") and "HorovodInternalError" in err.message
    # A rank that raised is still the cause: it records its error before Horovod shuts the others down.
    _record(tmp_path, 1, "ValueError", "bad batch", 9.9)
    assert (_worker_error(str(tmp_path), 2).rank, _worker_error(str(tmp_path), 2).error_type) == (1, "ValueError")
