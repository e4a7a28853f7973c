"""Model and metric code must run where Spark is absent (executors' plain Python, scoring services)."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import credspark.models

_CHECK = """
import importlib, json, sys
names, resolve_exports = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
if resolve_exports:
    import credspark.models as m
    for attr in m.__all__:  # the lazy exports too
        getattr(m, attr)
print(json.dumps(sorted(k for k in sys.modules if k == "pyspark" or k.startswith("pyspark."))))
"""


def _modules():
    root = Path(credspark.models.__file__).parent
    subs = [f"credspark.models.{info.name}" for info in pkgutil.iter_modules([str(root)])]
    return ["credspark.models", "credspark.metrics", *subs]


def _imported_pyspark(modules, resolve_exports=True):
    out = subprocess.run(
        [sys.executable, "-c", _CHECK, json.dumps([modules, resolve_exports])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_models_and_metrics_do_not_import_pyspark():
    modules = _modules()
    assert "credspark.models.focal_xgb" in modules and "credspark.models.bundle" in modules
    assert _imported_pyspark(modules) == []


def test_models_package_exports_its_public_names():
    exported = set(credspark.models.__all__)
    assert {"FeatureSpec", "FocalXGBClassifier", "focal_objective", "load_bundle", "BundleError"} <= exported
    assert credspark.models.FeatureSpec is credspark.models.spec.FeatureSpec


def test_the_check_would_notice_pyspark():
    # Guards against a check that can never fail (e.g. a wrong module-name filter).
    assert "pyspark.sql" in _imported_pyspark(["credspark.metrics", "pyspark.sql"], resolve_exports=False)
