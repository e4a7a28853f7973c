import pytest

from credspark.errors import ConfigError, MissingDataError
from credspark.io import model_store as ms


def _publish(wh, name, version):
    d = ms.model_dir(wh, name, version)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    return d


def test_current_moves_atomically_and_resolves(tmp_path):
    assert ms.current_version(tmp_path, "pd") is None
    with pytest.raises(MissingDataError, match="nothing published"):
        ms.resolve_bundle_dir(tmp_path, "pd")
    _publish(tmp_path, "pd", "v1")
    _publish(tmp_path, "pd", "v2")
    ms.set_current(tmp_path, "pd", "v1")
    assert ms.resolve_bundle_dir(tmp_path, "pd").name == "v1"
    ms.set_current(tmp_path, "pd", "v2")
    assert ms.current_version(tmp_path, "pd") == "v2"
    assert ms.resolve_bundle_dir(tmp_path, "pd", "v1").name == "v1"
    assert ms.list_versions(tmp_path, "pd") == ["v1", "v2"]
    assert not [p for p in (tmp_path / "models" / "pd").iterdir() if p.name.endswith(".tmp")]


def test_refuses_unknown_and_escaping_versions(tmp_path):
    with pytest.raises(MissingDataError):
        ms.set_current(tmp_path, "pd", "v9")
    for bad in ["../x", "a/b", "..", ""]:
        with pytest.raises(ConfigError):
            ms.model_dir(tmp_path, "pd", bad)
    _publish(tmp_path, "pd", "v1")
    (tmp_path / "models" / "pd" / "current").write_text("../../etc\n")
    with pytest.raises(ConfigError):
        ms.current_version(tmp_path, "pd")
