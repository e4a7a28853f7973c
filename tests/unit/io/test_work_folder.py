"""Where a training run's driver and workers exchange files: io.scratch.work_folder and distributed.work_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from credspark.config import config_from_dict
from credspark.errors import ConfigError
from credspark.io.scratch import work_folder


def test_a_local_warehouse_keeps_the_work_folder_below_it(tmp_path):
    assert work_folder(tmp_path / "wh", "train", "r1", "spark://h:7077") == tmp_path / "wh" / "_work" / "train" / "r1"


def test_a_shared_work_dir_wins_over_the_warehouse_for_every_master(tmp_path):
    for root in ("s3a://bank/credspark", str(tmp_path / "wh")):
        got = work_folder(root, "train", "r1", "spark://h:7077", shared=f"file://{tmp_path}/nfs")
        assert got == tmp_path / "nfs" / "train" / "r1" and not got.exists()


def test_an_object_store_warehouse_on_a_cluster_needs_a_shared_work_dir():
    with pytest.raises(ConfigError, match=r"set distributed.work_dir to a shared local path"):
        work_folder("s3a://bank/credspark", "train", "r1", "spark://h:7077")


def test_an_object_store_warehouse_on_a_local_master_uses_a_private_temp_folder():
    got = work_folder("s3a://bank/credspark", "train", "r1", "local[2]")
    try:
        assert isinstance(got, Path) and got.is_dir() and not any(got.iterdir())
        assert got.name.startswith("credspark-train-r1-")
    finally:
        got.rmdir()


def test_a_work_dir_that_is_not_a_local_path_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"distributed.work_dir='s3a://bank/work'.*not a URI"):
        config_from_dict({"distributed": {"work_dir": "s3a://bank/work"}})
    with pytest.raises(ConfigError, match=r"distributed.work_dir='hdfs://nn/x'"):
        work_folder("s3a://bank/credspark", "train", "r1", "spark://h:7077", shared="hdfs://nn/x")


def test_names_cannot_escape_the_shared_work_dir(tmp_path):
    with pytest.raises(ConfigError):
        work_folder("s3a://bank/credspark", "train", "../../etc", "spark://h:7077", shared=str(tmp_path))
