"""FeatureSpec: the shape and meaning of a model's two input blocks.

A model sees, per customer, a *static* vector (numeric features plus integer-coded categoricals) and a
*dynamic* tensor of ``T`` months x ``C`` channels with a month mask. A static-only spec (a source with no
transactions and no statements) has no channels and ``T = 0``. The spec travels with every model and
bundle so that a model is never fed columns it was not trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FeatureSpec",
    "StaticFeature",
    "SpecMismatchError",
    "STATIC_KINDS",
    "ENCODING_KEY",
    "OTHER_COLUMN",
    "category_column",
    "encoding_columns",
]

#: ``continuous``: real valued; ``integer``: integral values; ``categorical``: integer codes listed in
#: ``categories``; ``binary``: 0/1.
STATIC_KINDS = ("continuous", "integer", "categorical", "binary")


#: Key of ``FeatureSpec.extra`` holding the categorical attributes' encoding ``{attribute: [category, ...]}``
#: (fitted by the training job: :mod:`credspark.features.encoding`).
ENCODING_KEY = "category_encoding"
#: Suffix of the 0/1 feature of the values outside an attribute's encoding (``<name>__other``).
OTHER_COLUMN = "other"

_UNSAFE = re.compile(r"[^a-z0-9_]")


def category_column(name: str, category: str) -> str:
    """The 0/1 feature of one category: ``<name>__<category>``, lower case, other characters written ``_``."""
    return f"{name}__{_UNSAFE.sub('_', category.lower())}"


def encoding_columns(name: str, categories: Sequence[str]) -> list[str]:
    """The 0/1 feature columns of an attribute's encoding: one per category, then ``<name>__other``."""
    return [category_column(name, c) for c in (*categories, OTHER_COLUMN)]


class SpecMismatchError(ValueError):
    """Raised when data or a bundle does not match the expected FeatureSpec."""


@dataclass(frozen=True)
class StaticFeature:
    """One column of the static block.

    Args:
        name: Column name, as in the feature table.
        kind: One of ``STATIC_KINDS``.
        categories: Allowed integer codes for ``categorical`` columns (empty otherwise).
        lower: Lowest valid value (inclusive), or None when unbounded.
        upper: Highest valid value (inclusive), or None when unbounded.
    """

    name: str
    kind: str = "continuous"
    categories: tuple[int, ...] = ()
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STATIC_KINDS:
            raise ValueError(f"static feature {self.name!r}: kind {self.kind!r} not in {STATIC_KINDS}")
        if self.kind == "categorical" and not self.categories:
            raise ValueError(f"static feature {self.name!r}: categorical needs categories")
        object.__setattr__(self, "categories", tuple(int(c) for c in self.categories))


@dataclass(frozen=True)
class FeatureSpec:
    """Names, kinds and shapes of the static and dynamic blocks.

    Args:
        static: The static columns, in the order of the static array's columns.
        channels: Names of the ``C`` dynamic channels, in the order of the last axis.
        T: Number of months in the dynamic block (oldest first, the as-of month last); 0 with no channels.
        version: Feature-set version string written by the feature job.
    """

    static: tuple[StaticFeature, ...]
    channels: tuple[str, ...]
    T: int
    version: str = "1"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "static", tuple(self.static))
        object.__setattr__(self, "channels", tuple(self.channels))
        names = [f.name for f in self.static]
        if len(set(names)) != len(names):
            raise ValueError("FeatureSpec: duplicate static feature names")
        if (self.T < 1 or not self.channels) and not (self.T == 0 and not self.channels):
            raise ValueError("FeatureSpec: T must be >= 1 with at least one channel, or 0 without channels "
                             "(static-only)")

    @property
    def static_only(self) -> bool:
        """Whether the spec has no dynamic block (no channels, ``T = 0``)."""
        return not self.channels

    @property
    def static_names(self) -> list[str]:
        """Names of the static columns in order."""
        return [f.name for f in self.static]

    @property
    def category_encoding(self) -> dict[str, list[str]]:
        """The categorical attributes' encoding the spec records (``{}`` when it has none)."""
        return {n: list(c) for n, c in self.extra.get(ENCODING_KEY, {}).items()}

    @property
    def n_static(self) -> int:
        """Number of static columns."""
        return len(self.static)

    @property
    def C(self) -> int:  # noqa: N802 - the paper's name
        """Number of dynamic channels."""
        return len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe representation (for manifests and table properties)."""
        d = asdict(self)
        d["static"] = [dict(f, categories=list(f["categories"])) for f in d["static"]]
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            static=tuple(StaticFeature(**f) for f in d["static"]),
            channels=tuple(d["channels"]),
            T=int(d["T"]),
            version=str(d.get("version", "1")),
            extra=dict(d.get("extra", {})),
        )

    def check_compatible(self, other: FeatureSpec, what: str = "data") -> None:
        """Raise SpecMismatchError naming the first difference between two specs."""
        mine, theirs = self.extra.get("attributes", {}), other.extra.get("attributes", {})
        if mine != theirs:
            differ = sorted(n for n in set(mine) | set(theirs) if mine.get(n) != theirs.get(n))
            raise SpecMismatchError(f"{what}: declared attributes differ: {differ} (declared here "
                                    f"{sorted(mine)}, there {sorted(theirs)})")
        if self == other:
            return
        if self.static_names != other.static_names:
            a, b = set(self.static_names), set(other.static_names)
            raise SpecMismatchError(
                f"{what}: static columns differ (missing {sorted(a - b)}, unexpected {sorted(b - a)}, "
                "or a different order)"
            )
        for f, g in zip(self.static, other.static):
            if f != g:
                raise SpecMismatchError(f"{what}: static column {f.name!r} differs: {f} vs {g}")
        if self.channels != other.channels:
            raise SpecMismatchError(f"{what}: channels differ: {self.channels} vs {other.channels}")
        if self.T != other.T:
            raise SpecMismatchError(f"{what}: T differs: {self.T} vs {other.T}")
        raise SpecMismatchError(f"{what}: feature version differs: {self.version} vs {other.version}")

    def validate_arrays(
        self,
        static: np.ndarray,
        dynamic: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Check array shapes against the spec; raise SpecMismatchError naming the block.

        Args:
            static: ``(n, n_static)`` array.
            dynamic: ``(n, T, C)`` array, or None.
            mask: ``(n, T)`` array of 0/1, or None.
        """
        if static.ndim != 2 or static.shape[1] != self.n_static:
            raise SpecMismatchError(f"static block: expected (n, {self.n_static}), got {static.shape}")
        n = static.shape[0]
        if dynamic is not None and dynamic.shape != (n, self.T, self.C):
            raise SpecMismatchError(f"dynamic block: expected ({n}, {self.T}, {self.C}), got {dynamic.shape}")
        if mask is not None and mask.shape != (n, self.T):
            raise SpecMismatchError(f"month mask: expected ({n}, {self.T}), got {mask.shape}")
