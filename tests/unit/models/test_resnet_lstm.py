import copy
import json
import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from credspark.metrics import roc_auc
from credspark.models._nn_blocks import ResidualBlock1d
from credspark.models.resnet_lstm import (
    META_FILE,
    PROBE_TOLERANCE,
    WEIGHTS_FILE,
    EarlyStopping,
    FoldedEncoder,
    ResNetLSTM,
    build_module,
    focal_loss,
    iter_batches,
    make_loss,
    train_epoch,
)
from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

T, C = 6, 2
SPEC = FeatureSpec(
    static=(
        StaticFeature("limit", "continuous"),
        StaticFeature("edu", "categorical", categories=(1, 2, 3)),
        StaticFeature("age", "integer"),
        StaticFeature("flag", "binary"),
    ),
    channels=("bill", "delay"),
    T=T,
)
TINY = dict(filters=(4, 8, 8, 16), lstm_hidden=8, embedding_dim=8, batch_size=64)


def make_data(n, seed, min_len=0):
    """Random inputs; label = rising trend of channel 0 over the last three months (static is noise)."""
    rng = np.random.default_rng(seed)
    static = np.c_[
        rng.lognormal(10, 1, n), rng.integers(1, 4, n), rng.integers(20, 70, n), rng.integers(0, 2, n)
    ].astype(float)
    dynamic = rng.normal(size=(n, T, C)) * 0.5
    slope = rng.choice([-1.0, 1.0], n)
    dynamic[:, -3:, 0] += slope[:, None] * np.array([-1.0, 0.0, 1.0])
    y = (slope > 0).astype(int)
    lens = rng.integers(min_len, T + 1, n)
    mask = (np.arange(T)[None] >= T - lens[:, None]).astype(np.uint8)
    return static, dynamic, mask, y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models are dominated by per-op overhead; extra threads only fight over the CI's 2 cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_data(200, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    static, dynamic, mask, y = data
    return ResNetLSTM(spec=SPEC, epochs=2, random_state=0, **TINY).fit(static, dynamic, mask, y)


def module_inputs(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    static = torch.randn(n, 5, generator=g)
    dynamic = torch.randn(n, T, C, generator=g)
    lens = torch.arange(n) % (T + 1)  # every length 0..T, including no observed month
    mask = torch.arange(T).unsqueeze(0) >= (T - lens).unsqueeze(1)
    return static, dynamic, mask


def tiny_module(**kw):
    args = dict(n_static=5, n_channels=C, embedding_dim=8, filters=(4, 8), lstm_hidden=8)
    return build_module(**{**args, **kw})


def test_output_shapes_dtypes_and_batching_do_not_change_results(fitted, data):
    static, dynamic, mask, _ = data
    emb = fitted.embed(static, dynamic, mask)
    p = fitted.predict_proba(static, dynamic, mask)
    assert emb.shape == (200, 8) and emb.dtype == np.float32
    assert p.shape == (200,) and p.dtype == np.float32
    assert ((p > 0) & (p < 1)).all()
    assert (emb >= 0).all()  # post-ReLU
    np.testing.assert_allclose(fitted.embed(static, dynamic, mask, batch_size=7), emb, atol=1e-5)


def test_fit_without_valid_runs_all_epochs(fitted):
    assert len(fitted.history_["train_loss"]) == 2
    assert fitted.history_["valid_auc"] == []
    assert fitted.best_epoch_ == 1
    assert not fitted.module_.training


@pytest.mark.parametrize("spatial,temporal", [(True, True), (False, False)])
def test_gradients_reach_every_parameter(spatial, temporal):
    torch.manual_seed(0)
    module = tiny_module(spatial_attention=spatial, temporal_attention=temporal, dropout=0.0)
    static, dynamic, mask = module_inputs()
    loss = nn.functional.binary_cross_entropy_with_logits(module(static, dynamic, mask), (torch.arange(12) % 2).float())
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_attention_switches_change_the_parameter_set():
    names = {
        (s, t): {n for n, _ in tiny_module(spatial_attention=s, temporal_attention=t).named_parameters()}
        for s in (True, False)
        for t in (True, False)
    }
    assert any(n.startswith("spatial.") for n in names[True, True])
    assert any(n.startswith("temporal.") for n in names[True, True])
    assert not any(n.startswith("spatial.") for n in names[False, True])
    assert not any(n.startswith("temporal.") for n in names[True, False])
    assert names[False, False] < names[True, False] < names[True, True]
    assert names[False, False] < names[False, True] < names[True, True]


def test_masked_months_get_zero_weight_and_do_not_change_the_embedding():
    torch.manual_seed(0)
    module = tiny_module().eval()
    static, dynamic, mask = module_inputs()
    emb, att = module.encode(static, dynamic, mask, return_attention=True)
    alpha = att["temporal"]
    assert alpha.shape == (12, T) and att["spatial"].shape == (12, 5)
    assert (alpha[~mask] == 0).all()
    has_month = mask.any(dim=1)
    torch.testing.assert_close(alpha[has_month].sum(dim=1), torch.ones(int(has_month.sum())))
    assert (alpha[has_month][mask[has_month]] > 0).all()
    junk = dynamic.clone()
    junk[~mask] = 1e6  # raw junk straight into the module, not cleaned by the preprocessor
    torch.testing.assert_close(module.encode(static, junk, mask), emb, rtol=0, atol=1e-6)


def test_masked_month_values_do_not_change_the_estimator_embedding(fitted, data):
    static, dynamic, mask, _ = data
    junk = dynamic.copy()
    junk[mask == 0] = np.nan
    np.testing.assert_array_equal(fitted.embed(static, junk, mask), fitted.embed(static, dynamic, mask))
    att = fitted.attention(static, dynamic, mask)["temporal"]
    assert (att[mask == 0] == 0).all()


def test_customer_with_no_observed_month_gets_a_zero_dynamic_context(fitted, data):
    static, dynamic, mask, _ = data
    s, m = static[:3].copy(), np.zeros((3, T), dtype=np.uint8)
    d1 = dynamic[:3]
    d2 = np.random.default_rng(5).normal(size=(3, T, C)) * 100
    e1 = fitted.embed(s, d1, m)
    assert np.isfinite(e1).all()
    np.testing.assert_array_equal(fitted.embed(s, d2, m), e1)
    assert (fitted.attention(s, d1, m)["temporal"] == 0).all()
    # all-unobserved and fully observed rows mixed in one batch (the packing path)
    mixed = np.r_[m[:1], np.ones((1, T), dtype=np.uint8)]
    assert np.isfinite(fitted.predict_proba(s[:2], d1[:2], mixed)).all()


def test_non_finite_inputs_give_finite_outputs(fitted, data):
    static, dynamic, mask, _ = data
    s, d = static[:4].copy(), dynamic[:4].copy()
    s[0, 0], s[1, 2], s[2, 1] = np.nan, np.inf, np.nan
    d[0, -1, 0], d[1, -1, 1] = np.inf, np.nan
    ones = np.ones((4, T), dtype=np.uint8)
    assert np.isfinite(fitted.embed(s, d, ones)).all()
    assert np.isfinite(fitted.predict_proba(s, d, ones)).all()


def test_same_seed_gives_identical_embeddings_and_another_seed_does_not(data, fitted):
    static, dynamic, mask, y = data
    again = ResNetLSTM(spec=SPEC, epochs=2, random_state=0, **TINY).fit(static, dynamic, mask, y)
    other = ResNetLSTM(spec=SPEC, epochs=2, random_state=1, **TINY).fit(static, dynamic, mask, y)
    emb = fitted.embed(static, dynamic, mask)
    np.testing.assert_array_equal(again.embed(static, dynamic, mask), emb)
    assert not np.allclose(other.embed(static, dynamic, mask), emb)


def test_seeded_fit_leaves_the_global_rng_alone(data):
    static, dynamic, mask, y = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ResNetLSTM(spec=SPEC, epochs=1, random_state=0, **TINY).fit(static[:50], dynamic[:50], mask[:50], y[:50])
    torch.testing.assert_close(torch.rand(3), expected)


def test_save_load_round_trip_is_exact(fitted, data, tmp_path):
    static, dynamic, mask, _ = data
    names = fitted.save(tmp_path / "m")
    assert sorted(names) == sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([META_FILE, WEIGHTS_FILE])
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert meta["params"]["filters"] == [4, 8, 8, 16] and meta["spec"]["T"] == T
    back = ResNetLSTM.load(tmp_path / "m", device="auto")
    np.testing.assert_array_equal(back.embed(static, dynamic, mask), fitted.embed(static, dynamic, mask))
    np.testing.assert_array_equal(
        back.predict_proba(static, dynamic, mask), fitted.predict_proba(static, dynamic, mask)
    )
    assert back.history_ == fitted.history_ and back.best_epoch_ == fitted.best_epoch_
    assert back.filters == (4, 8, 8, 16) and back.spec == SPEC


def test_learns_a_label_that_depends_only_on_the_sequence():
    train = make_data(400, seed=2, min_len=3)
    valid = make_data(200, seed=3, min_len=3)
    model = ResNetLSTM(spec=SPEC, epochs=5, lr=1e-2, patience=5, random_state=0, **{**TINY, "batch_size": 32}).fit(
        *train, valid=valid
    )
    assert max(model.history_["valid_auc"]) > 0.8
    assert roc_auc(valid[3], model.predict_proba(*valid[:3])) > 0.8


def test_early_stopping_keeps_and_restores_the_best_weights():
    module = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    stops = []
    for score in [0.6, 0.8, 0.7, 0.75, 0.9]:
        with torch.no_grad():
            module.weight.fill_(score)  # tag the weights with the epoch's score
        stops.append(stopper.update(score, module))
    assert stops == [False, False, False, True, False]
    assert stopper.best_epoch == 4  # update() only reports; the caller stops
    stopper = EarlyStopping(patience=2)
    for score in [0.6, 0.8, 0.7, math.nan]:
        with torch.no_grad():
            module.weight.fill_(score)
        stop = stopper.update(score, module)
    assert stop and stopper.best_epoch == 1
    stopper.restore(module)
    assert (module.weight == 0.8).all()


def test_fit_with_valid_restores_the_best_epoch(data):
    static, dynamic, mask, y = data
    # Validation labels are coin flips, so the AUC wanders and the best epoch is not the last one
    # (here: best 2, stopped after epoch 4), which makes the restore observable.
    vs, vd, vm, _ = make_data(120, seed=7)
    vy = np.random.default_rng(0).integers(0, 2, 120)
    model = ResNetLSTM(spec=SPEC, epochs=6, lr=1e-2, patience=2, random_state=0, **TINY).fit(
        static, dynamic, mask, y, valid=(vs, vd, vm, vy)
    )
    aucs = model.history_["valid_auc"]
    assert len(aucs) == len(model.history_["train_loss"])
    assert model.best_epoch_ == int(np.argmax(aucs))
    assert len(aucs) in (6, model.best_epoch_ + 2 + 1)  # all epochs, or stopped after `patience` bad ones
    assert roc_auc(vy, model.predict_proba(vs, vd, vm)) == pytest.approx(aucs[model.best_epoch_], abs=1e-6)


def test_focal_loss_with_gamma_0_and_alpha_half_is_half_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=g) * 3
    y = (torch.rand(50, generator=g) > 0.7).float()
    bce = nn.functional.binary_cross_entropy_with_logits(logits, y)
    torch.testing.assert_close(focal_loss(logits, y, alpha=0.5, gamma=0.0), 0.5 * bce)
    torch.testing.assert_close(make_loss("focal", alpha=0.5, gamma=0.0)(logits, y), 0.5 * bce)
    # easy examples are down-weighted: with gamma > 0 the loss is smaller than alpha-weighted BCE
    assert focal_loss(logits, y, alpha=0.5, gamma=2.0) < 0.5 * bce
    with pytest.raises(ValueError):
        make_loss("hinge")


def test_train_epoch_takes_external_batches_and_calls_grad_sync_between_backward_and_step():
    torch.manual_seed(0)
    module = tiny_module()
    static, dynamic, mask = module_inputs(n=20)
    y = (torch.arange(20) % 2).float()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    calls = []

    def grad_sync(m):
        w = m.head.weight
        calls.append((w.grad is not None, w.detach().clone()))

    before = module.head.weight.detach().clone()
    batches = iter_batches([static, dynamic, mask, y], 8)
    loss = train_epoch(module, optimizer, batches, make_loss("bce"), grad_sync=grad_sync)
    assert math.isfinite(loss)
    assert len(calls) == 3  # 20 rows in batches of 8
    assert all(has_grad for has_grad, _ in calls)
    torch.testing.assert_close(calls[0][1], before)  # first hook call sees the weights before any step
    assert not torch.equal(calls[1][1], before)


def test_wrong_shapes_and_labels_are_rejected(data, fitted):
    static, dynamic, mask, y = data
    with pytest.raises(SpecMismatchError):
        fitted.embed(static, dynamic[:, :, :1], mask)
    with pytest.raises(ValueError):
        ResNetLSTM(spec=SPEC, epochs=1, **TINY).fit(static, dynamic, mask, y * 2)
    with pytest.raises(ValueError):
        ResNetLSTM(spec=SPEC, loss="hinge", **TINY).fit(static, dynamic, mask, y)
    with pytest.raises(RuntimeError):
        ResNetLSTM(spec=SPEC).embed(static, dynamic, mask)


# ------------------------------------------------------------------------ folded encoder (scoring path)
def with_random_batch_norms(module, seed=1):
    """Running statistics and affine parameters far from the identity, so that folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm1d)):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
    return module.eval()


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_static=5, embedding_dim=8, filters=(4, 8, 8, 16), lstm_hidden=8),  # projected and identity shortcuts
        dict(n_static=5, embedding_dim=8, filters=(4, 4), blocks_per_stage=2, lstm_hidden=8,
             spatial_attention=False, temporal_attention=False),
        dict(n_static=48),  # the paper-sized library defaults: filters 16/32/64/128, BiLSTM 64, embedding 32
    ],
)  # fmt: skip
def test_folded_encoder_computes_what_the_eager_network_computes(kw):
    torch.manual_seed(0)
    module = with_random_batch_norms(build_module(n_channels=C, **kw))
    g = torch.Generator().manual_seed(3)
    n = 3 * (T + 1)
    static = torch.randn(n, kw["n_static"], generator=g)
    dynamic = torch.randn(n, T, C, generator=g)
    lens = torch.arange(n) % (T + 1)  # every history length, none included: the packed LSTM path
    some = torch.arange(T).unsqueeze(0) >= (T - lens).unsqueeze(1)
    folded = FoldedEncoder(module)
    with torch.inference_mode():
        for mask in (some, torch.ones_like(some)):  # and full histories: the unpacked path
            want = module.encode(static, dynamic, mask)
            got = folded(static, dynamic, mask)
            assert got.shape == want.shape and got.dtype == torch.float32
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # The batch norms matter here (folding them wrongly would show): without them the network differs.
        plain = copy.deepcopy(module)
        for m in plain.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                m.reset_parameters()
        assert (plain.encode(static, dynamic, some) - module.encode(static, dynamic, some)).abs().max() > 1e-2


def test_inference_embedder_gives_the_embeddings_of_embed(fitted, data):
    static, dynamic, mask, _ = data
    embed = fitted.inference_embedder()
    assert embed != fitted.embed  # the folded network, not a fallback
    want = fitted.embed(static, dynamic, mask)
    for batch in (64, 1000):
        np.testing.assert_allclose(embed(static, dynamic, mask, batch_size=batch), want, rtol=1e-5, atol=1e-6)
    assert embed(static[:0], dynamic[:0], mask[:0]).shape == (0, 8)


def test_the_probe_check_tells_a_different_network_apart(fitted):
    module = fitted.module_
    n_static = fitted.module_kwargs_["n_static"]
    assert FoldedEncoder(module).gap_to(module, n_static=n_static, T=T) < 1e-6
    other = with_random_batch_norms(copy.deepcopy(module), seed=5)
    assert FoldedEncoder(other).gap_to(module, n_static=n_static, T=T) > PROBE_TOLERANCE


class DoubledBlock(ResidualBlock1d):
    """A block the folded encoder does not know (its forward differs from ResidualBlock1d's)."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_a_network_the_encoder_cannot_fold_is_scored_eagerly(fitted, data, caplog):
    model = copy.deepcopy(fitted)
    first = model.module_.resnet[0]
    doubled = DoubledBlock(first.conv1.in_channels, first.conv1.out_channels)
    doubled.load_state_dict(first.state_dict())
    model.module_.resnet[0] = doubled.eval()
    with caplog.at_level(logging.WARNING, logger="credspark.models.resnet_lstm"):
        embed = model.inference_embedder()
    assert embed == model.embed
    assert "eager network" in caplog.text and "DoubledBlock" in caplog.text
    static, dynamic, mask, _ = data
    assert not np.allclose(embed(static, dynamic, mask), fitted.embed(static, dynamic, mask))


def test_fit_trains_on_its_torch_threads_and_gives_the_callers_setting_back(data):
    static, dynamic, mask, y = data
    seen = []

    class Probe(ResNetLSTM):
        def loss_fn(self):
            inner = super().loss_fn()

            def loss(*args, **kwargs):
                seen.append(torch.get_num_threads())
                return inner(*args, **kwargs)

            return loss

    torch.set_num_threads(2)
    try:
        Probe(spec=SPEC, epochs=1, random_state=0, **TINY).fit(static[:50], dynamic[:50], mask[:50], y[:50])
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2  # the default: one thread
        seen.clear()
        Probe(spec=SPEC, epochs=1, random_state=0, torch_threads=None, **TINY).fit(
            static[:50], dynamic[:50], mask[:50], y[:50])
        assert seen and set(seen) == {2}  # None: the caller's setting
    finally:
        torch.set_num_threads(1)


# ------------------------------------------------------------------ static-only sources (no channels, T = 0)
STATIC_SPEC = FeatureSpec(static=SPEC.static, channels=(), T=0)


def make_static_data(n, seed):
    """Static-only rows; the label follows the (log) limit and education level 3, plus noise."""
    rng = np.random.default_rng(seed)
    static = np.c_[
        rng.lognormal(10, 1, n), rng.integers(1, 4, n), rng.integers(20, 70, n), rng.integers(0, 2, n)
    ].astype(float)
    logit = 2.0 * (np.log(static[:, 0]) - 10.0) + 1.5 * (static[:, 1] == 3) - 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return static, np.zeros((n, 0, 0)), np.zeros((n, 0), np.uint8), y


def test_a_network_without_channels_has_no_sequence_branch_and_reads_the_static_vector_only():
    torch.manual_seed(0)
    module = build_module(n_static=6, n_channels=0, filters=[4, 8], lstm_hidden=8, embedding_dim=5).eval()
    names = [n for n, _ in module.named_parameters()]
    assert module.lstm is None and module.temporal is None
    assert not any(n.startswith(("lstm.", "temporal.")) for n in names)
    assert module.fuse.in_features == 8  # the last ResNet stage's width, no 2 * lstm_hidden
    with_channels = build_module(n_static=6, n_channels=2, filters=[4, 8], lstm_hidden=8, embedding_dim=5)
    assert sum(p.numel() for p in with_channels.parameters()) > sum(p.numel() for p in module.parameters())
    static = torch.randn(7, 6)
    z, att = module.encode(static, torch.zeros(7, 0, 0), torch.zeros(7, 0, dtype=torch.bool), return_attention=True)
    assert z.shape == (7, 5) and att["temporal"] is None and att["spatial"].shape == (7, 6)
    logits = module(static, torch.zeros(7, 0, 0), torch.zeros(7, 0))
    assert logits.shape == (7,) and torch.isfinite(logits).all()
    # the embedding moves with the static input (the fusion layer reads it)
    assert not torch.allclose(module.encode(static + 1.0, torch.zeros(7, 0, 0), torch.zeros(7, 0)), z)
    folded = FoldedEncoder(module)
    assert folded.gap_to(module, n_static=6, T=0) <= PROBE_TOLERANCE


def test_a_static_only_estimator_learns_the_static_signal_and_round_trips(tmp_path):
    train, valid = make_static_data(1200, 0), make_static_data(600, 1)
    model = ResNetLSTM(spec=STATIC_SPEC, **TINY, epochs=8, lr=3e-3, random_state=0).fit(*train, valid=valid)
    assert model.module_kwargs_["n_channels"] == 0 and model.module_.lstm is None
    assert roc_auc(valid[3], model.predict_proba(*valid[:3])) > 0.7
    assert max(model.history_["valid_auc"]) > 0.7
    emb = model.embed(*valid[:3])
    assert emb.shape == (600, TINY["embedding_dim"]) and np.isfinite(emb).all()
    att = model.attention(*(a[:5] for a in valid[:3]))
    assert att["temporal"] is None and att["spatial"].shape[0] == 5
    np.testing.assert_allclose(model.inference_embedder()(*valid[:3]), emb, atol=1e-5)
    files = model.save(tmp_path)
    assert sorted(files) == sorted([WEIGHTS_FILE, META_FILE])
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["module_kwargs"]["n_channels"] == 0 and meta["preprocessor"]["dynamic_mean"] == []
    loaded = ResNetLSTM.load(tmp_path)
    assert loaded.module_.lstm is None
    np.testing.assert_array_equal(loaded.embed(*valid[:3]), emb)
    with pytest.raises(SpecMismatchError, match="dynamic block"):  # a sequence where the spec has none
        model.embed(valid[0], np.zeros((600, 1, 1)), np.ones((600, 1), np.uint8))
