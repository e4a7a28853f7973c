"""Config and session where users run the jobs: the wheel's own conf/ outside the checkout, and spark-submit's
settings winning over credspark's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROBE = HERE / "session_probe.py"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CREDSPARK_CONF_DIR", "SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS")}
    venv_bin = str(Path(sys.executable).parent)
    env |= {"PATH": f"{venv_bin}{os.pathsep}{env['PATH']}", "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1"}  # fmt: skip
    return env | extra


_LOAD = (
    "import json, credspark; from credspark.config import default_conf_dir, load_config; "
    "from credspark.job_requests import JobOptions; "
    "cfg = load_config('score_portfolio', JobOptions(env='cluster')); "
    "print(json.dumps({'file': credspark.__file__, 'conf_dir': str(default_conf_dir()), "
    "'master': cfg.spark.master, 'jars': cfg.spark.delta_jars, 'partitions': cfg.spark.shuffle_partitions}))"
)


@pytest.mark.parametrize("layout", ["unpacked", "zip"])
def test_an_installed_wheel_finds_its_own_conf_outside_the_checkout(wheel, tmp_path, layout):
    if layout == "unpacked":  # what pip installs into site-packages
        site = tmp_path / "site"
        zipfile.ZipFile(wheel).extractall(site)
        path = str(site)
    else:  # what spark-submit --py-files puts on sys.path
        path = str(wheel)
    out = subprocess.run([sys.executable, "-c", _LOAD], cwd=str(tmp_path), env=_clean_env(PYTHONPATH=path),
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    assert found["file"].startswith(path)
    assert found["conf_dir"].startswith(path) and found["conf_dir"].rstrip("/").endswith("credspark/_conf")
    assert (found["master"], found["jars"], found["partitions"]) == (None, "provided", 200)  # conf/env/cluster.yaml


def test_credspark_conf_dir_names_another_conf_folder(wheel, tmp_path):
    conf = tmp_path / "myconf"
    (conf / "env").mkdir(parents=True)
    (conf / "env" / "cluster.yaml").write_text("spark:\n  shuffle_partitions: 17\n")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    out = subprocess.run([sys.executable, "-c", _LOAD], cwd=str(tmp_path),
                         env=_clean_env(PYTHONPATH=str(site), CREDSPARK_CONF_DIR=str(conf)),
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    assert found["conf_dir"] == str(conf) and found["partitions"] == 17 and found["master"] == "local[2]"


def _probe(wheel: Path, cwd: Path, submit_args: list[str], env: dict[str, str], job_args: list[str]) -> dict:
    cmd = ["spark-submit", "--master", "local[1]", *submit_args, "--py-files", str(wheel), str(PROBE), *job_args]
    out = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def test_spark_submit_settings_win_over_credsparks(wheel, tmp_path):
    spark_conf = tmp_path / "spark-conf"
    spark_conf.mkdir()
    (spark_conf / "spark-defaults.conf").write_text("spark.sql.execution.arrow.maxRecordsPerBatch 123\n")
    env = _clean_env(SPARK_CONF_DIR=str(spark_conf))
    given = _probe(wheel, tmp_path, ["--conf", "spark.sql.shuffle.partitions=3", "--conf", "spark.ui.enabled=false",
                                     "--name", "nightly-probe"], env, ["--env", "cluster"])  # fmt: skip
    assert given["spark.sql.shuffle.partitions"] == "3"  # --conf, not cluster.yaml's 200
    assert given["spark.ui.enabled"] == "false" and given["ui_url"] is None
    assert given["spark.sql.execution.arrow.maxRecordsPerBatch"] == "123"  # spark-defaults.conf
    assert given["spark.app.name"] == "nightly-probe" and given["spark.master"] == "local[1]"
    # What nobody gave, credspark fills in; the wheel's own conf/ is used outside the checkout.
    assert given["spark.sql.session.timeZone"] == "UTC"
    assert given["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert given["conf_dir"].startswith(str(wheel))


def test_the_spark_ui_is_on_unless_an_overlay_turns_it_off(wheel, tmp_path):
    env = _clean_env()
    cluster = _probe(wheel, tmp_path, [], env, ["--env", "cluster"])
    assert cluster["spark.ui.enabled"] == "true" and cluster["ui_url"].startswith("http://")
    assert cluster["spark.app.name"] == "credspark-probe" and cluster["spark.sql.shuffle.partitions"] == "200"
    local = _probe(wheel, tmp_path, [], env, ["--env", "local"])
    assert local["spark.ui.enabled"] == "false" and local["ui_url"] is None
    assert local["spark.master"] == "local[1]"  # spark-submit's master wins over local.yaml's local[2]
