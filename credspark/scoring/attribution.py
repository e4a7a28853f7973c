"""Per-dimension attribution of the ResNet-LSTM embedding to the model's named inputs (torch, no Spark).

For reason codes an embedding dimension's XGBoost contribution is shared out over the inputs that dimension
reads. The shares come from the sensitivity of the fusion layer's pre-activation ``a_k`` (the embedding
before its ReLU) to each scaled input, at the *reference customer*: every scaled input 0 (the training mean,
since inputs are standardised) and every month observed::

    A[k, g] = sum_{i in g} |d a_k / d x_i|  /  sum_i |d a_k / d x_i|

where a group ``g`` is one static feature (all one-hot positions of a categorical together) or one sequence
channel (all T months together). Scaled inputs have unit variance, so ``|d a_k / d x_i|`` is "how much a_k
moves per standard deviation of input i".

What this is and is not: a global, first-order description of what each embedding dimension is sensitive
to, computed once from the weights (deterministic: every worker gets the same matrix). It is *not* a
per-customer attribution through the network; a customer's reasons differ from another's only through the
per-row XGBoost contributions of the embedding dimensions (and of raw static columns, when used). A per-row
gradient x input attribution would cost about two extra forward passes per row (measured with the prototype's
proportions), so the cheap global version is the default.
"""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_attribution"]


def _static_positions(static_columns: list[dict]) -> list[int]:
    """Static-feature index of every position of the scaled static vector (one-hot blocks expanded)."""
    owner: list[int] = []
    for j, col in enumerate(static_columns):
        width = len(col["categories"]) if col["kind"] == "categorical" else 1
        owner.extend([j] * width)
    return owner


def embedding_attribution(embedder: object) -> np.ndarray | None:
    """Attribution matrix ``(K, n_static + C)`` of a fitted ResNet-LSTM, or None if it is not one.

    Groups are ordered as :func:`credspark.scoring.reasons.reason_groups`: static features, then channels.
    Needs the estimator's ``module_`` (with a ``fuse`` linear layer and ``encode``), ``preprocessor_`` and
    ``spec``; anything else returns None and reason codes fall back to the ``embedding`` group.

    Args:
        embedder: The bundle's embedder.

    Returns:
        Rows summing to 1 (a row of zeros for a dimension insensitive to every input), float64.
    """
    import torch
    from torch import nn

    module = getattr(embedder, "module_", None)
    pre = getattr(embedder, "preprocessor_", None)
    spec = getattr(embedder, "spec", None)
    fuse = getattr(module, "fuse", None)
    if module is None or pre is None or spec is None or not isinstance(fuse, nn.Linear):
        return None
    owner = np.asarray(_static_positions(pre.static_columns_))
    n_groups = spec.n_static + spec.C
    device = next(module.parameters()).device
    xs = torch.zeros(1, int(pre.n_static_out_), device=device, requires_grad=True)
    xd = torch.zeros(1, spec.T, spec.C, device=device, requires_grad=True)
    mask = torch.ones(1, spec.T, dtype=torch.bool, device=device)
    captured: dict[str, torch.Tensor] = {}
    hook = fuse.register_forward_hook(lambda _m, _i, out: captured.__setitem__("a", out))
    was_training = module.training
    try:
        module.eval()  # BatchNorm uses its running statistics, as when scoring
        with torch.enable_grad():
            module.encode(xs, xd, mask)
            a = captured["a"][0]
            K = a.shape[0]
            out = np.zeros((K, n_groups))
            for k in range(K):
                # Static-only (no channels): the network does not read xd, so it has no gradient.
                grads = torch.autograd.grad(a[k], (xs, xd) if spec.C else (xs,), retain_graph=k < K - 1)
                gs = grads[0].abs()[0].double().cpu().numpy()
                out[k, : spec.n_static] = np.bincount(owner, weights=gs, minlength=spec.n_static)
                if spec.C:
                    out[k, spec.n_static :] = grads[1].abs()[0].double().cpu().numpy().sum(axis=0)  # (T, C) summed
    finally:
        hook.remove()
        module.train(was_training)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)
