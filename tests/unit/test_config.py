import dataclasses
from pathlib import Path

import pytest

from credspark.config import Config, apply_override, config_from_dict, load_config, render_reference
from credspark.errors import ConfigError
from credspark.job_requests import JobOptions

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_layering(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "myjob.yaml").write_text("features:\n  T: 9\nspark:\n  app_name: job-app\n")
    (tmp_path / "env" / "prod.yaml").write_text("features:\n  T: 10\n")
    options = JobOptions(conf_dir=str(tmp_path), env="prod", overrides=("features.T=11",), warehouse="/tmp/wh")
    cfg = load_config("myjob", options)
    assert cfg.features.T == 11  # --set wins over env wins over job file
    assert cfg.spark.app_name == "job-app"
    assert cfg.warehouse.path == "/tmp/wh"
    assert cfg.features.windows == (1, 3, 6, 12)  # untouched default


@pytest.mark.parametrize(
    "assignment, key",
    [
        ("features.T=abc", "features.T"),
        ("features.T=true", "features.T"),
        ("features.unknown=1", "features.unknown"),
        ("nosection.x=1", "nosection"),
        ("validation.max_reject_fraction=[1]", "validation.max_reject_fraction"),
        ("spark.delta_jars=maybe", "spark.delta_jars"),
        ("features.windows=[1, x]", "features.windows[1]"),
        ("retention.deleted_files=7 fortnights", "retention.deleted_files"),
        ("retention.deleted_files=1 month", "retention.deleted_files"),
        ("retention.deleted_files=0 hours", "retention.deleted_files"),
        ("retention.log=7", "retention.log"),
        ("retention.log=1 day", "retention.log"),  # shorter than the 7 days of deleted_files
    ],
)
def test_bad_values_name_the_key(assignment, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(apply_override({}, assignment))


def test_frozen_and_types():
    cfg = config_from_dict({"features": {"windows": [3, 6]}, "validation": {"max_reject_fraction": 1}})
    assert cfg.features.windows == (3, 6)
    assert isinstance(cfg.validation.max_reject_fraction, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.features.T = 3  # type: ignore[misc]


def test_retention_intervals_become_delta_table_properties():
    props = config_from_dict({"retention": {"deleted_files": "36 Hours", "log": "interval 2 weeks"}}).retention
    assert props.table_properties() == {"delta.deletedFileRetentionDuration": "interval 36 hours",
                                        "delta.logRetentionDuration": "interval 14 days"}
    assert config_from_dict({}).retention.table_properties() == {
        "delta.deletedFileRetentionDuration": "interval 7 days", "delta.logRetentionDuration": "interval 30 days"}


def test_spark_conf_keys_keep_their_dots():
    data = apply_override({}, "spark.conf.spark.executor.memory=4g")
    assert config_from_dict(data).spark.conf == {"spark.executor.memory": "4g"}


def test_missing_env_and_unsafe_env_name(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("x", JobOptions(conf_dir=str(tmp_path), env="nope"))
    with pytest.raises(ConfigError, match="only letters"):
        load_config("x", JobOptions(conf_dir=str(tmp_path), env="../../etc/passwd"))


def test_yaml_is_loaded_safely(tmp_path):
    (tmp_path / "evil.yaml").write_text("features: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("evil", JobOptions(conf_dir=str(tmp_path)))


def test_repo_conf_files_load():
    for job_file in sorted((REPO / "conf").glob("*.yaml")):
        load_config(job_file.stem, JobOptions(conf_dir=str(REPO / "conf")))
    for env_file in sorted((REPO / "conf" / "env").glob("*.yaml")):
        load_config("none", JobOptions(conf_dir=str(REPO / "conf"), env=env_file.stem))


def test_reference_doc_is_current():
    doc = (REPO / "docs" / "config.md").read_text()
    assert doc.strip() == render_reference().strip(), "regenerate: python -m credspark.config > docs/config.md"
    for f in dataclasses.fields(Config):
        assert f"## `{f.name}`" in doc
