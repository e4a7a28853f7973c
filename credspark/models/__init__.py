"""Models of the credit-scoring pipeline: ACTGAN / CGAN oversamplers, ResNet-LSTM, focal XGBoost, bundles.

Nothing here imports pyspark. Names are resolved lazily (PEP 562) so that ``import credspark.models`` stays
cheap (torch and xgboost load only when a model is first used) and so that a name whose module is not
present yet is simply not exported.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: Public name -> submodule that defines it. Only the main entry points: step functions stay in their modules
#: (their names clash across modules, e.g. ``generator_step`` in actgan and cgan, ``focal_loss`` in
#: resnet_lstm (torch) and focal_xgb (numpy)).
_EXPORTS: dict[str, str] = {
    "FeatureSpec": "spec",
    "StaticFeature": "spec",
    "SpecMismatchError": "spec",
    "STATIC_KINDS": "spec",
    "ACTGAN": "actgan",
    "CGAN": "cgan",
    "ResNetLSTM": "resnet_lstm",
    "FocalXGBClassifier": "focal_xgb",
    "focal_objective": "focal_xgb",
    "focal_metric": "focal_xgb",
    "Calibrator": "calibration",
    "fit_calibrator": "calibration",
    "Bundle": "bundle",
    "BundleError": "bundle",
    "save_bundle": "bundle",
    "load_bundle": "bundle",
}


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{name}") is not None


__all__ = sorted(name for name, module in _EXPORTS.items() if _module_exists(module))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _module_exists(module):
        raise AttributeError(f"{__name__}.{name} is not available: {__name__}.{module} does not exist yet")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
