"""Reason codes: which named inputs raised a customer's risk the most (plain numpy, no Spark).

The classifier is a focal XGBoost whose inputs are the ResNet-LSTM embedding ``emb_0..emb_{K-1}`` and, when
the bundle says ``use_raw_static``, the raw static columns. XGBoost gives per-row additive contributions to the
margin (log odds of default) for each input; a positive contribution raised the risk.

Those contributions are mapped to *reason groups* by a matrix ``M`` (classifier inputs x groups):

- a raw static column maps to the group of the same name with weight 1;
- an embedding dimension ``k`` is spread over the model's inputs by the row ``A[k]`` of an attribution
  matrix (see :mod:`credspark.scoring.attribution`): groups are the static feature names and one group per
  sequence channel, ``seq:<channel>``. Without an attribution (an embedder that does not expose its
  network) every embedding dimension maps to the single group ``embedding``.

Those groups are then merged into *reason groups* (:func:`reason_grouping`): a categorical attribute's 0/1
features (``<name>__<category>``) into the attribute's group ``<name>``, and the groups configured in
``score.reason_groups`` (group name -> static features, attribute names or ``seq:<channel>``) into theirs; a
merged group's score is the sum of its members' (contributions are additive). Every other input is its own
group.

A row's group scores are ``contributions @ M``; its reason codes are the ``n`` groups with the largest
*positive* scores (ties broken by group order; fewer than ``n`` positive groups leave the rest None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from credspark.errors import ConfigError
from credspark.models.spec import FeatureSpec, encoding_columns

__all__ = [
    "EMBEDDING_GROUP",
    "SEQ_PREFIX",
    "ReasonMap",
    "build_reason_map",
    "reason_groups",
    "reason_grouping",
    "top_reasons",
]

#: Group of embedding dimensions when no per-input attribution is available.
EMBEDDING_GROUP = "embedding"
#: Prefix of the group of one sequence channel (``seq:bill_amount``).
SEQ_PREFIX = "seq:"


def reason_groups(spec: FeatureSpec) -> list[str]:
    """The input groups of a FeatureSpec: the static names, then ``seq:<channel>`` per channel."""
    return [*spec.static_names, *(SEQ_PREFIX + c for c in spec.channels)]


def reason_grouping(spec: FeatureSpec, configured: Mapping[str, Sequence[str]] = ()) -> dict[str, str]:
    """Which reason group each input group of a spec reports under (only those not reported as themselves).

    Args:
        spec: The bundle's FeatureSpec (its static features, channels and categorical encoding).
        configured: ``score.reason_groups``: group name -> members, each a static feature, a categorical
            attribute (all its 0/1 features) or ``seq:<channel>``.

    Returns:
        ``{input group: reason group}``: a categorical attribute's 0/1 features go to the attribute's name
        unless configured otherwise.

    Raises:
        ConfigError: A member is none of the spec's inputs, or is listed in two groups.
    """
    attributes = {name: encoding_columns(name, cats) for name, cats in spec.category_encoding.items()}
    out = {col: name for name, cols in attributes.items() for col in cols}
    known = set(reason_groups(spec))
    owner: dict[str, str] = {}
    for group, members in dict(configured).items():
        for member in members:
            cols = attributes.get(member, [member])
            if member not in attributes and member not in known:
                raise ConfigError(f"score.reason_groups.{group}: {member!r} is not an input of the model (static "
                                  f"features, categorical attributes {sorted(attributes)} or seq:<channel>)")
            if member in owner:
                raise ConfigError(f"score.reason_groups: {member!r} is in both {owner[member]!r} and {group!r}")
            owner[member] = group
            out.update((c, group) for c in cols)
    return out


@dataclass(frozen=True)
class ReasonMap:
    """How classifier-input contributions become reason-group scores.

    Attributes:
        groups: Reason-group names (the values of the reason columns).
        matrix: ``(n_classifier_inputs, len(groups))`` float64 weights.
        method: ``raw+attribution``, ``raw+embedding``, ``attribution`` or ``embedding`` (for the run summary).
    """

    groups: tuple[str, ...]
    matrix: np.ndarray
    method: str

    def scores(self, contributions: np.ndarray) -> np.ndarray:
        """Group scores ``(n, len(groups))`` from XGBoost contributions ``(n, n_inputs[+1 bias])``."""
        c = np.asarray(contributions, dtype=np.float64)
        n_in = self.matrix.shape[0]
        if c.ndim != 2 or c.shape[1] not in (n_in, n_in + 1):
            raise ValueError(f"contributions: expected (n, {n_in}) or (n, {n_in + 1}), got {c.shape}")
        return c[:, :n_in] @ self.matrix


def build_reason_map(
    feature_names: Sequence[str],
    spec: FeatureSpec,
    attribution: np.ndarray | None,
    grouping: Mapping[str, str] | None = None,
) -> ReasonMap:
    """Build the input -> group map of a bundle.

    Args:
        feature_names: The classifier's input names (``emb_<k>`` then raw static names, as in the manifest).
        spec: The bundle's FeatureSpec.
        attribution: ``(K, len(reason_groups(spec)))`` rows summing to 1 (or 0 for a dimension with no
            sensitivity), or None when the embedder offers none.
        grouping: :func:`reason_grouping`; None = ``reason_grouping(spec)`` (attributes, nothing configured).

    Returns:
        The :class:`ReasonMap`.
    """
    emb_idx = [i for i, n in enumerate(feature_names) if n.startswith("emb_")]
    statics = set(spec.static_names)
    raw_idx = [i for i, n in enumerate(feature_names) if n in statics]
    unknown = [n for i, n in enumerate(feature_names) if i not in set(emb_idx) | set(raw_idx)]
    if unknown:
        raise ValueError(f"reason codes: classifier inputs {unknown} are neither emb_<k> nor static features")
    if attribution is not None:
        groups = reason_groups(spec)
        att = np.asarray(attribution, dtype=np.float64)
        if att.shape != (len(emb_idx), len(groups)):
            raise ValueError(f"attribution: expected ({len(emb_idx)}, {len(groups)}), got {att.shape}")
    else:
        # A tree-only classifier (no emb_<k> input) has no embedding group.
        groups = ([*spec.static_names] if raw_idx else []) + ([EMBEDDING_GROUP] if emb_idx or not raw_idx else [])
        att = np.zeros((len(emb_idx), len(groups)))
        if EMBEDDING_GROUP in groups:
            att[:, groups.index(EMBEDDING_GROUP)] = 1.0
    matrix = np.zeros((len(feature_names), len(groups)))
    matrix[emb_idx] = att
    for i in raw_idx:
        matrix[i, groups.index(feature_names[i])] += 1.0
    method = ("raw+" if raw_idx else "") + ("attribution" if attribution is not None else "embedding")
    if not emb_idx and raw_idx:
        method = "raw"
    grouping = reason_grouping(spec) if grouping is None else grouping
    merged = list(dict.fromkeys(grouping.get(g, g) for g in groups))  # first appearance keeps the order
    into = np.zeros((len(groups), len(merged)))
    for i, g in enumerate(groups):
        into[i, merged.index(grouping.get(g, g))] = 1.0
    return ReasonMap(groups=tuple(merged), matrix=matrix @ into, method=method)


def top_reasons(scores: np.ndarray, groups: Sequence[str], n: int) -> list[np.ndarray]:
    """The ``n`` groups with the largest positive scores per row (vectorised; no per-row loop).

    Args:
        scores: ``(rows, len(groups))`` group scores (positive = raised the risk).
        groups: Group names.
        n: How many reasons per row.

    Returns:
        ``n`` object arrays of length ``rows``: the 1st, 2nd, ... reason; None where fewer groups raised the risk.
    """
    s = np.asarray(scores, dtype=np.float64)
    rows = s.shape[0]
    names = np.asarray(list(groups), dtype=object)
    k = min(n, names.size)
    # Stable sort of the negated scores: equal scores keep the group order, so results are deterministic.
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(s, order, axis=1)
    out = []
    for j in range(n):
        col = np.full(rows, None, dtype=object)
        if j < k:
            keep = top[:, j] > 0
            col[keep] = names[order[keep, j]]
        out.append(col)
    return out
