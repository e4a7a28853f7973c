"""A distributed training worker *killed* mid-epoch (not raising: SIGKILL, as the out-of-memory killer does).

tests/cluster/deep_cluster.py proves that a worker that raises fails a TorchDistributor run promptly with its
error, and that a re-run resumes from the checkpoint. A killed worker records no error and leaves no
traceback; its peer only sees a lost connection. Here, on the suite's ``local[2]`` session (TorchDistributor
runs its two torchrun workers as barrier tasks): the run must fail within seconds naming the killed rank,
and a re-run must resume at the epoch after the last checkpoint, carrying the history over.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from credspark.distributed._checkpoint import latest_checkpoint
from credspark.distributed.feeds import get_feed
from credspark.distributed.launchers import WorkerError, launch
from credspark.distributed.train_fns import train_resnet_lstm_worker
from tests.fixtures_distributed import TINY_RESNET, feature_dataframe, tiny_spec, worker_options

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _training_processes():
    """This process's descendants that run a TorchDistributor training script (the workers themselves)."""
    import psutil

    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and "train.py" in cmd and "torch.distributed.run" not in cmd \
                    and "torch_run_process_wrapper" not in cmd:
                out.append(p)
        except psutil.Error:
            continue
    return out


def _running(pids):
    """The pids among ``pids`` still running (zombies count as ended)."""
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            continue
    return out


class RankKiller(threading.Thread):
    """SIGKILLs this process's descendant that runs the training of ``rank`` once ``ready()`` is true.

    ``target="wrapper"`` kills that rank's torchrun wrapper (pyspark's ``torch_run_process_wrapper``, the
    Spark task's child) instead of the training process; ``target="middleman"`` kills the Horovod
    ``safe_shell_exec`` middleman above that rank's training process (the Spark task's child).
    """

    def __init__(self, rank: int, ready, env_key: str = "RANK", target: str = "worker") -> None:
        super().__init__(daemon=True)
        self.rank, self.ready, self.env_key, self.target = str(rank), ready, env_key, target
        self.stop, self.killed = threading.Event(), None

    def _find(self):
        import psutil

        if self.target == "wrapper":
            worker = next((p for p in _training_processes() if self._rank_of(p) == self.rank), None)
            try:
                # training process -> torchrun agent -> wrapper
                return None if worker is None else worker.parent().parent()
            except (psutil.Error, AttributeError):
                return None
        if self.env_key == "HOROVOD_RANK":
            worker = self._find_horovod_worker()
            return self._horovod_middleman(worker) if self.target == "middleman" else worker
        for p in psutil.Process(os.getpid()).children(recursive=True):
            try:
                cmd, env = " ".join(p.cmdline()), p.environ()
            except psutil.Error:
                continue
            # The training process itself, not the launchers above it (they carry the same variable).
            if (
                env.get(self.env_key) == self.rank
                and "train.py" in cmd
                and "torch.distributed.run" not in cmd
                and "torch_run_process_wrapper" not in cmd
            ):
                return p
        return None

    def _find_horovod_worker(self):
        """The deepest Python process carrying ``HOROVOD_RANK=rank`` (the one that runs the training)."""
        import psutil

        found = []
        for p in psutil.Process(os.getpid()).children(recursive=True):
            try:
                if p.environ().get(self.env_key) == self.rank and "python" in p.name():
                    found.append(p)
            except psutil.Error:
                continue
        pids = {p.pid for p in found}
        leaves = [p for p in found if not any(c.pid in pids for c in p.children(recursive=True))]
        return leaves[0] if len(leaves) == 1 else None

    @staticmethod
    def _horovod_middleman(worker):
        """The nearest ancestor of ``worker`` started by multiprocessing's spawn: safe_shell_exec's middleman."""
        import psutil

        try:
            for p in [] if worker is None else worker.parents():
                if "multiprocessing" in " ".join(p.cmdline()):
                    return p
        except psutil.Error:
            return None
        return None

    def _rank_of(self, p):
        import psutil

        try:
            return p.environ().get(self.env_key)
        except psutil.Error:
            return None

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                ready = self.ready()
            except (OSError, ValueError):  # a checkpoint being written right now
                ready = False
            if not ready:
                continue
            p = self._find()
            if p is not None:
                cmd = " ".join(p.cmdline())
                # Once their launcher is gone, the processes below it are no longer this process's descendants.
                below = [c.pid for c in p.children(recursive=True)] if self.target != "worker" else []
                p.send_signal(signal.SIGKILL)
                self.killed = {"pid": p.pid, "at": time.time(), "cmd": cmd, "below": below}
                return


@dataclass
class _KilledRun:
    err: WorkerError  # what launch() raised
    killer: RankKiller
    opts: object  # the WorkerOptions
    feed: object
    seconds: float  # how long launch() took


def _launch_and_kill(spark, tmp_path, *, backend, workers, epochs, data_seed=2, rank=1, **killer_kw) -> _KilledRun:
    """Train the tiny ResNet-LSTM over ``backend`` and SIGKILL ``rank``'s process (or launcher, ``target=``) once
    epoch 0 is checkpointed: the rank is then inside epoch 1 (an epoch takes about a second here)."""
    spec = tiny_spec()
    feed = get_feed("arrow")(feature_dataframe(spark, spec, 3000, seed=data_seed), spec=spec, work_dir=str(tmp_path),
                             name="train", num_workers=workers, seed=7, batch_size=32)  # fmt: skip
    opts = worker_options(tmp_path / "run", epochs=epochs, batch_size=32)
    ckpt_dir = Path(opts.checkpoint_dir)
    killer = RankKiller(rank, lambda: latest_checkpoint(ckpt_dir) is not None, **killer_kw)
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(WorkerError) as info:
            launch(train_resnet_lstm_worker, backend=backend, num_workers=workers, timeout_s=300,
                   args=(feed, None, TINY_RESNET, opts))  # fmt: skip
    finally:
        killer.stop.set()
    return _KilledRun(info.value, killer, opts, feed, time.monotonic() - started)


def test_a_torch_distributor_worker_killed_mid_epoch_fails_the_run_naming_it_and_a_rerun_resumes(spark, tmp_path):
    run = _launch_and_kill(spark, tmp_path, backend="torch_distributor", workers=2, epochs=3)
    err, killer, opts, feed = run.err, run.killer, run.opts, run.feed
    ckpt_dir = Path(opts.checkpoint_dir)
    assert killer.killed is not None, "rank 1's training process was never found"
    assert time.time() - killer.killed["at"] < 60, "the run must fail promptly, not wait for the timeout"
    assert run.seconds < 240
    assert (err.rank, err.error_type) == (1, "WorkerDied"), str(err)
    assert "rank 1 ended without raising" in err.message and "lost its connection" in err.message
    ckpt = latest_checkpoint(ckpt_dir)
    assert ckpt.epoch == 0, "the killed epoch must not have been checkpointed"

    # Re-run (on the local launcher: the resume logic is the same training function's) from the checkpoint.
    res = launch(train_resnet_lstm_worker, backend="local", num_workers=1, args=(feed, None, TINY_RESNET, opts))
    assert (res["start_epoch"], res["epochs_run"]) == (1, 2)
    assert res["history"]["train_loss"][0] == pytest.approx(ckpt.extra["history"]["train_loss"][0])
    assert len(res["history"]["train_loss"]) == 3
    feed.cleanup()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_torchrun_wrapper_fails_the_run_and_leaves_no_training_behind(spark, tmp_path, workers):
    # The wrapper is what the Spark task started. Killing it orphaned torchrun and its workers: with one
    # worker (no peer whose loss would stop it) training went on, checkpointing and finally saving the model,
    # after launch() had raised. Now the worker notices within half a second and stops.
    run = _launch_and_kill(spark, tmp_path, backend="torch_distributor", workers=workers, epochs=12, data_seed=3,
                           rank=workers - 1, target="wrapper")  # fmt: skip
    err, killer, opts, feed = run.err, run.killer, run.opts, run.feed
    ckpt_dir = Path(opts.checkpoint_dir)
    assert killer.killed is not None, "the torchrun wrapper was never found"
    assert "torch_run_process_wrapper" in killer.killed["cmd"]
    assert time.time() - killer.killed["at"] < 60, "the run must fail promptly, not wait for the timeout"
    assert "Py4JJavaError" not in str(err) and err.error_type in {"WorkerDied", "LauncherDied"}, str(err)
    # Within seconds no training process is left (the killed wrapper's agent and worker included, though
    # they are no longer this process's descendants), and nothing is written after the failure.
    assert killer.killed["below"], "the wrapper had no torchrun agent below it"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_training_processes() or _running(killer.killed["below"])):
        time.sleep(0.1)
    assert not _running(killer.killed["below"]), "the killed wrapper's torchrun agent or worker kept running"
    assert not _training_processes(), [" ".join(p.cmdline()) for p in _training_processes()]
    files = sorted(str(p) for p in ckpt_dir.rglob("*"))
    time.sleep(3)
    assert sorted(str(p) for p in ckpt_dir.rglob("*")) == files
    assert not any(Path(opts.output_dir).glob("*")), "a final model was written after the run failed"
    feed.cleanup()


def test_a_horovod_worker_killed_mid_epoch_fails_the_run_naming_it(spark, tmp_path):
    pytest.importorskip("horovod.torch", reason="needs Horovod (make horovod)")
    run = _launch_and_kill(spark, tmp_path, backend="horovod", workers=2, epochs=3, env_key="HOROVOD_RANK")
    err, killer, opts, feed = run.err, run.killer, run.opts, run.feed
    ckpt_dir = Path(opts.checkpoint_dir)
    assert killer.killed is not None, "rank 1's Horovod training process was never found"
    assert time.time() - killer.killed["at"] < 60, "the run must fail promptly, not wait for the timeout"
    assert run.seconds < 240
    assert (err.rank, err.error_type) == (1, "WorkerDied"), str(err)
    assert latest_checkpoint(ckpt_dir).epoch == 0, "the killed epoch must not have been checkpointed"
    feed.cleanup()


def _horovod_processes():
    """This process's running descendants that carry ``HOROVOD_RANK`` (a Horovod worker's shell or training)."""
    import psutil

    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "HOROVOD_RANK" in p.environ():
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_a_killed_horovod_launcher_fails_the_run_and_leaves_no_training_behind(spark, tmp_path):
    # Horovod's task service runs each worker's command through a safe_shell_exec middleman, which stops the
    # command when the Spark task dies, but nothing stops the command when the middleman itself is killed:
    # with one worker (no peer whose loss would stop it) the orphan trained on. Now it notices and stops.
    pytest.importorskip("horovod.torch", reason="needs Horovod (make horovod)")
    run = _launch_and_kill(spark, tmp_path, backend="horovod", workers=1, epochs=12, data_seed=3, rank=0,
                           env_key="HOROVOD_RANK", target="middleman")  # fmt: skip
    err, killer, opts, feed = run.err, run.killer, run.opts, run.feed
    assert killer.killed is not None, "the Horovod middleman was never found"
    assert "multiprocessing" in killer.killed["cmd"] and killer.killed["below"]
    assert time.time() - killer.killed["at"] < 60, "the run must fail promptly, not wait for the timeout"
    assert "Py4JJavaError" not in str(err), str(err)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_horovod_processes() or _running(killer.killed["below"])):
        time.sleep(0.1)
    assert not _running(killer.killed["below"]), "the killed middleman's shell or training process kept running"
    assert not _horovod_processes(), [" ".join(p.cmdline())[:200] for p in _horovod_processes()]
    files = sorted(str(p) for p in Path(opts.checkpoint_dir).rglob("*"))
    time.sleep(3)
    assert sorted(str(p) for p in Path(opts.checkpoint_dir).rglob("*")) == files
    assert not any(Path(opts.output_dir).glob("*")), "a final model was written after the run failed"
    feed.cleanup()
