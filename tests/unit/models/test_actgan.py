"""ACTGAN tests, plus the contract shared by every tabular GAN (run over ACTGAN and CGAN)."""

import json
import logging

import numpy as np
import pytest
import torch

from credspark.models._gan_common import (
    ConditionalBatchSampler,
    ConditionalGenerator,
    n_new_minority,
    one_hot_labels,
    train_epoch,
)
from credspark.models._gan_transformer import Span, mask_from_counts
from credspark.models.actgan import (
    ACTGAN,
    ACTGANDiscriminator,
    CrossLayer,
    critic_step,
    generator_step,
    gradient_penalty,
    interpolate,
)
from credspark.models.cgan import CGAN
from credspark.models.spec import FeatureSpec, StaticFeature

torch.set_num_threads(1)

T, C = 3, 2
SPEC = FeatureSpec(
    static=(
        StaticFeature("x", "continuous"),  # separates the classes: N(0, 1) vs N(4, 1)
        StaticFeature("cat", "categorical", categories=(0, 1, 2)),
        StaticFeature("age", "integer", lower=18, upper=99),
        StaticFeature("flag", "binary"),
    ),
    channels=("amount", "status"),
    T=T,
)
TINY = dict(epochs=2, batch_size=64, noise_dim=8, generator_dims=(16, 16), discriminator_dims=(16, 16))


def toy_problem(n=300, minority=0.25, seed=0):
    """An easy two-class problem: static column 0 and the amount channel shift with the label."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < minority).astype(np.int64)
    static = np.column_stack(
        [rng.normal(0, 1, n) + 4 * y, rng.integers(0, 3, n), rng.integers(20, 60, n), rng.integers(0, 2, n)]
    ).astype(np.float64)
    mask = mask_from_counts(rng.integers(0, T + 1, n), T)
    dynamic = np.stack([rng.normal(0, 1, (n, T)) + 2 * y[:, None], rng.integers(-1, 3, (n, T))], axis=2)
    dynamic = (dynamic * mask[:, :, None]).astype(np.float32)
    return static, dynamic, y, mask


def assert_valid(static, dynamic, mask, n):
    assert static.shape == (n, SPEC.n_static) and static.dtype == np.float64
    assert dynamic.shape == (n, T, C) and dynamic.dtype == np.float32
    assert mask.shape == (n, T) and mask.dtype == np.uint8
    assert set(np.unique(static[:, 1])) <= {0, 1, 2}
    assert set(np.unique(static[:, 3])) <= {0, 1}
    assert np.all(static[:, 2] == np.round(static[:, 2])) and np.all((static[:, 2] >= 18) & (static[:, 2] <= 99))
    np.testing.assert_array_equal(mask, mask_from_counts(mask.sum(axis=1), T))
    assert np.all(dynamic[mask == 0] == 0)
    status = dynamic[:, :, 1][mask == 1]
    assert np.all(status == np.round(status)) and status.min() >= -1 and status.max() <= 2


# ---------------------------------------------------------------- building blocks
def test_cross_layer_matches_hand_computation():
    layer = CrossLayer(3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x0 = torch.tensor([[1.0, 2.0, 3.0]])
    xl = torch.tensor([[0.5, 0.0, -1.0]])
    # xl . w = 0.25 + 0 - 2 = -1.75; x0 * -1.75 + b + xl
    expected = torch.tensor([[1.0 * -1.75 + 0.1 + 0.5, 2.0 * -1.75 + 0.2 + 0.0, 3.0 * -1.75 + 0.3 - 1.0]])
    torch.testing.assert_close(layer(x0, xl), expected)


def test_discriminator_stacks_three_cross_layers_beside_the_tower():
    disc = ACTGANDiscriminator(5, dims=(7, 6), n_cross=3, dropout=0.0)
    assert len(disc.cross) == 3
    x = torch.randn(4, 5)
    c = x
    for layer in disc.cross:
        c = layer(x, c)
    emb = disc.embed(x)
    assert emb.shape == (4, 5 + 6)
    torch.testing.assert_close(emb[:, :5], c)
    scores, logits = disc(x)
    assert scores.shape == (4,) and logits.shape == (4, 2)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in disc.modules())


def test_gradient_penalty_of_a_linear_critic_is_known():
    critic = torch.nn.Linear(4, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))  # ||w|| = 5
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    points = interpolate(real, fake)
    gp = gradient_penalty(critic(points).squeeze(1), points, gp_lambda=10.0)
    torch.testing.assert_close(gp, torch.tensor(10.0 * (5.0 - 1.0) ** 2))
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.0, 0.8, 0.0]]))  # ||w|| = 1: no penalty
    gp = gradient_penalty(critic(points).squeeze(1), points, gp_lambda=10.0)
    assert gp.item() < 1e-6
    # the penalty is differentiable in the critic's weights (double backward)
    with torch.no_grad():
        critic.weight.mul_(2.0)
    gradient_penalty(critic(points).squeeze(1), points, gp_lambda=10.0).backward()
    assert critic.weight.grad.abs().sum() > 0


def test_interpolates_lie_between_real_and_fake():
    real, fake = torch.zeros(100, 3), torch.ones(100, 3)
    points = interpolate(real, fake, generator=torch.Generator().manual_seed(0))
    assert points.requires_grad
    assert torch.all((points >= 0) & (points <= 1))
    assert torch.allclose(points[:, 0], points[:, 2])  # one weight per row


SPANS = [Span(0, 1, "tanh"), Span(1, 3, "softmax"), Span(4, 2, "softmax"), Span(6, 1, "tanh")]


def test_generator_outputs_follow_the_spans():
    gen = ConditionalGenerator(8, 2, (16, 16), SPANS, tau=0.2)
    out = gen(torch.randn(32, 8), one_hot_labels(torch.randint(0, 2, (32,))))
    assert out.shape == (32, 7)
    assert torch.all(out[:, [0, 6]].abs() <= 1)
    torch.testing.assert_close(out[:, 1:4].sum(1), torch.ones(32))
    torch.testing.assert_close(out[:, 4:6].sum(1), torch.ones(32))
    # tau 0.2 makes the relaxed one-hot nearly one-hot
    assert out[:, 1:4].max(1).values.mean() > 0.8


def test_one_step_each_reaches_every_parameter():
    gen = ConditionalGenerator(8, 2, (16, 16), SPANS)
    disc = ACTGANDiscriminator(7, dims=(16, 16), n_cross=3)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    g_opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    real, labels = torch.rand(32, 7), torch.randint(0, 2, (32,))
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    out = critic_step(gen, disc, d_opt, real, labels, noise_dim=8, gp_lambda=10.0)
    assert set(out) >= {"d_loss", "wasserstein", "gradient_penalty", "aux_loss"}
    for name, p in disc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert not torch.equal(p.detach(), before[name]), name
    assert all(p.grad is None for p in gen.parameters())  # the critic step leaves the generator alone
    generator_step(gen, disc, g_opt, labels, noise_dim=8)
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.requires_grad for p in disc.parameters())  # unfrozen again


def test_critic_loss_adds_up():
    torch.manual_seed(0)
    gen = ConditionalGenerator(8, 2, (16,), SPANS)
    disc = ACTGANDiscriminator(7, dims=(16,), dropout=0.0)
    out = critic_step(
        gen, disc, torch.optim.SGD(disc.parameters(), lr=0.0), torch.rand(16, 7), torch.randint(0, 2, (16,)),
        noise_dim=8, gp_lambda=10.0, aux_weight=2.0,
    )  # fmt: skip
    expected = -out["wasserstein"] + out["gradient_penalty"] + 2.0 * out["aux_loss"]
    assert out["d_loss"] == pytest.approx(expected, rel=1e-5)


def test_train_epoch_groups_critic_steps_and_calls_grad_sync_before_step():
    calls = []

    def d_step(real, labels, grad_sync):
        grad_sync("D")
        return {"d_loss": float(real.sum()), "wasserstein": 1.0}

    def g_step(labels, grad_sync):
        grad_sync("G")
        return {"g_loss": float(labels.sum())}

    batches = [(torch.full((2, 1), float(i)), torch.full((2,), i)) for i in range(7)]
    records = train_epoch(
        iter(batches), d_step, g_step, n_critic=3, grad_sync=calls.append, epoch=4, start_iteration=10
    )
    assert calls == ["D", "D", "D", "G", "D", "D", "D", "G", "D", "G"]
    assert [r["iteration"] for r in records] == [10, 11, 12]
    assert all(r["epoch"] == 4 for r in records)
    assert [r["d_loss"] for r in records] == [2.0, 8.0, 12.0]  # mean of each group's critic losses
    assert [r["g_loss"] for r in records] == [4.0, 10.0, 12.0]  # labels of the group's last batch


def test_grad_sync_sees_gradients_before_the_optimizer_step():
    gen = ConditionalGenerator(8, 2, (16,), SPANS)
    disc = ACTGANDiscriminator(7, dims=(16,))
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in disc.state_dict().items()}

    def zero_grads(module):  # stands in for an all-reduce: whatever it does to .grad is what gets applied
        assert module is disc
        for p in module.parameters():
            p.grad.zero_()

    critic_step(gen, disc, d_opt, torch.rand(8, 7), torch.randint(0, 2, (8,)), noise_dim=8, grad_sync=zero_grads)
    for k, v in disc.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_batch_sampler_balances_labels_and_draws_matching_rows():
    labels = np.array([0] * 90 + [1] * 10)
    data = torch.as_tensor(labels, dtype=torch.float32)[:, None]  # the row's value is its label
    sampler = ConditionalBatchSampler(data, labels, 400, 0.5, np.random.default_rng(0))
    rows, lab = sampler.batch()
    assert rows.shape == (400, 1) and lab.dtype == torch.int64
    torch.testing.assert_close(rows[:, 0], lab.float())
    assert 0.4 < lab.float().mean() < 0.6
    natural = ConditionalBatchSampler(data, labels, 2000, None, np.random.default_rng(0))
    assert natural.batch()[1].float().mean() < 0.15
    with pytest.raises(ValueError, match="both labels"):
        ConditionalBatchSampler(data, np.zeros(100), 10, 0.5, np.random.default_rng(0))


# ---------------------------------------------------------------- oversampling arithmetic
@pytest.mark.parametrize(
    ("minority", "majority", "ratio", "expected"),
    [(100, 1000, 0.4, 300), (70, 100, 0.7, 0), (69, 100, 0.7, 1), (10, 7, 0.4, 0), (0, 5, 0.5, 3), (5, 10, 0.0, 0)],
)
def test_n_new_minority(minority, majority, ratio, expected):
    assert n_new_minority(minority, majority, ratio) == expected


# ---------------------------------------------------------------- contract shared by the GANs
GANS = [ACTGAN, CGAN]


@pytest.fixture(scope="module")
def data():
    return toy_problem()


@pytest.fixture(scope="module", params=GANS, ids=lambda c: c.__name__)
def fitted(request, data):
    static, dynamic, y, mask = data
    return request.param(spec=SPEC, random_state=3, **TINY).fit(static, dynamic, y, mask)


def test_samples_are_valid_rows_with_input_dtypes(fitted):
    static, dynamic, mask = fitted.sample(150, label=1)
    assert_valid(static, dynamic, mask, 150)
    empty = fitted.sample(0)
    assert [a.shape for a in empty] == [(0, SPEC.n_static), (0, T, C), (0, T)]


def test_history_has_one_record_per_iteration(fitted, data):
    iterations = len(data[0]) // TINY["batch_size"]
    assert len(fitted.history_) == TINY["epochs"] * iterations
    assert [r["iteration"] for r in fitted.history_] == list(range(len(fitted.history_)))
    assert [r["epoch"] for r in fitted.history_] == [e for e in range(TINY["epochs"]) for _ in range(iterations)]
    assert all(set(r) == {"iteration", "epoch", "g_loss", "d_loss", "wasserstein"} for r in fitted.history_)
    assert all(np.isfinite(r["g_loss"]) and np.isfinite(r["d_loss"]) for r in fitted.history_)


def test_sampling_is_seeded(fitted):
    a, b = fitted.sample(40), fitted.sample(40)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    other = fitted.sample(40, random_state=123)
    assert not np.array_equal(a[0], other[0])


def test_same_seed_gives_identical_models_and_samples(fitted, data):
    static, dynamic, y, mask = data
    cls = type(fitted)
    again = cls(spec=SPEC, random_state=3, **TINY).fit(static, dynamic, y, mask)
    assert again.history_ == fitted.history_
    for u, v in zip(again.sample(60, label=1), fitted.sample(60, label=1)):
        np.testing.assert_array_equal(u, v)
    other = cls(spec=SPEC, random_state=4, **TINY).fit(static, dynamic, y, mask)
    assert not np.array_equal(other.sample(60)[0], fitted.sample(60)[0])


def test_save_load_round_trip_samples_identically(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "discriminator.safetensors",
        "generator.safetensors",
        "model.json",
    ]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["class"] == type(fitted).__name__
    assert meta["params"]["noise_dim"] == TINY["noise_dim"]
    assert FeatureSpec.from_dict(meta["spec"]) == SPEC
    assert meta["transformer"]["output_info"][0] == [0, 1, "tanh"]  # column "x": scalar, then its modes
    assert all("means" in c for c in meta["transformer"]["columns"])
    loaded = type(fitted).load(tmp_path / "m")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.history_ == fitted.history_
    for label in (0, 1):
        for u, v in zip(loaded.sample(80, label=label), fitted.sample(80, label=label)):
            np.testing.assert_array_equal(u, v)
    wrong = CGAN if isinstance(fitted, ACTGAN) else ACTGAN
    with pytest.raises(ValueError, match="not a saved"):
        wrong.load(tmp_path / "m")


@pytest.mark.parametrize("cls", GANS, ids=lambda c: c.__name__)
def test_oversample_reaches_the_ratio_exactly(cls, data):
    static, dynamic, y, mask = data
    n_min, n_maj = int(y.sum()), int((y == 0).sum())
    ratio = (n_min + 40) / n_maj  # 40 rows to add
    s, d, m, yy = cls(spec=SPEC, random_state=0, **dict(TINY, epochs=1)).oversample(
        static, dynamic, y, mask, ratio=ratio
    )
    assert len(s) == len(static) + 40
    assert yy.sum() / (yy == 0).sum() == pytest.approx(ratio, abs=0)
    np.testing.assert_array_equal(s[: len(static)], static)
    np.testing.assert_array_equal(d[: len(static)], dynamic)
    np.testing.assert_array_equal(m[: len(static)], mask)
    np.testing.assert_array_equal(yy, np.concatenate([y, np.ones(40, dtype=y.dtype)]))
    assert_valid(s, d, m, len(s))


def test_oversample_adds_nothing_when_the_ratio_is_met_and_says_so(data, caplog):
    static, dynamic, y, _ = data
    model = ACTGAN(spec=SPEC, **TINY)
    with caplog.at_level(logging.WARNING, logger="credspark.models"):
        s, d, m, yy = model.oversample(static, dynamic, y, ratio=0.1)
    assert len(s) == len(static) and np.all(m == 1) and m.dtype == np.uint8
    np.testing.assert_array_equal(yy, y)
    assert not hasattr(model, "generator_")  # no training needed
    n_min, n_maj = int(y.sum()), int((y == 0).sum())
    assert [r.getMessage() for r in caplog.records] == [
        f"ACTGAN.oversample: minority / majority is already {n_min} / {n_maj} = {n_min / n_maj:.4f}, at or above "
        "the ratio 0.1000; nothing generated, the model is not fitted"]


@pytest.mark.parametrize("cls", GANS, ids=lambda c: c.__name__)
def test_verbose_logs_progress(cls, data, caplog):
    static, dynamic, y, mask = data
    with caplog.at_level(logging.INFO, logger="credspark.models"):
        cls(spec=SPEC, random_state=0, verbose=True, log_every=1, **dict(TINY, epochs=2, batch_size=150)).fit(
            static, dynamic, y, mask
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "credspark.models"]
    assert len(lines) == 2 and "epoch 2/2" in lines[-1]


def test_rejects_bad_input(data):
    static, dynamic, y, mask = data
    model = ACTGAN(spec=SPEC, **TINY)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample(3)
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.fit(static, dynamic, y + 1, mask)
    with pytest.raises(ValueError, match="both labels"):
        model.fit(static, dynamic, np.zeros_like(y), mask)
    with pytest.raises(ValueError, match="static block"):
        model.fit(static[:, :2], dynamic, y, mask)
    assert not hasattr(model, "generator_")


def test_constructor_stores_params_verbatim():
    model = ACTGAN(spec=SPEC, generator_dims=[8], betas=(0.1, 0.2), random_state=7)
    params = model.get_params()
    assert params["generator_dims"] == [8] and params["betas"] == (0.1, 0.2) and params["random_state"] == 7
    assert params["n_cross"] == 3 and params["n_critic"] == 5 and params["gp_lambda"] == 10.0
    with pytest.raises(TypeError):
        ACTGAN(SPEC)  # keyword-only


# ---------------------------------------------------------------- learning
def test_actgan_learns_the_class_conditional_shift():
    static, dynamic, y, mask = toy_problem(n=400, seed=1)
    real_min, real_maj = static[y == 1, 0].mean(), static[y == 0, 0].mean()
    model = ACTGAN(
        spec=SPEC, epochs=15, batch_size=50, noise_dim=16, generator_dims=(32, 32), discriminator_dims=(32, 32),
        lr=1e-3, random_state=0,
    )  # fmt: skip
    model.fit(static, dynamic, y, mask)
    fake = model.sample(400, label=1)[0][:, 0].mean()
    assert abs(fake - real_min) < abs(fake - real_maj), (fake, real_min, real_maj)
    fake0 = model.sample(400, label=0)[0][:, 0].mean()
    assert abs(fake0 - real_maj) < abs(fake0 - real_min), (fake0, real_min, real_maj)


# ---------------------------------------------------------------- static-only sources (no channels, T = 0)
STATIC_SPEC = FeatureSpec(static=SPEC.static, channels=(), T=0)


def test_actgan_on_static_only_rows_generates_valid_rows_of_the_class_and_round_trips(tmp_path):
    static, _, y, _ = toy_problem(n=400, seed=1)
    dynamic, mask = np.zeros((400, 0, 0), np.float32), np.zeros((400, 0), np.uint8)
    model = ACTGAN(
        spec=STATIC_SPEC, epochs=15, batch_size=50, noise_dim=16, generator_dims=(32, 32),
        discriminator_dims=(32, 32), lr=1e-3, random_state=0,
    )  # fmt: skip
    model.fit(static, dynamic, y, mask)
    assert len(model.discriminator_.cross) == 3  # the cross layers and the auxiliary head still run
    assert all(np.isfinite(r["g_loss"]) and np.isfinite(r["d_loss"]) for r in model.history_)
    s, d, m = model.sample(300, label=1)
    assert s.shape == (300, 4) and d.shape == (300, 0, 0) and m.shape == (300, 0)
    assert s.dtype == np.float64 and d.dtype == np.float32 and m.dtype == np.uint8
    assert set(np.unique(s[:, 1])) <= {0, 1, 2} and set(np.unique(s[:, 3])) <= {0, 1}
    assert np.all(s[:, 2] == np.round(s[:, 2])) and np.all((s[:, 2] >= 18) & (s[:, 2] <= 99))
    real_min, real_maj = static[y == 1, 0].mean(), static[y == 0, 0].mean()
    assert abs(s[:, 0].mean() - real_min) < abs(s[:, 0].mean() - real_maj)  # conditioned on the minority
    out_s, out_d, out_m, out_y = model.oversample(static, dynamic, y, mask, ratio=0.5)
    assert out_d.shape == (len(out_s), 0, 0) and out_m.shape == (len(out_s), 0)
    assert out_y.sum() == n_new_minority(int(y.sum()), int((y == 0).sum()), 0.5) + y.sum()
    model.save(tmp_path / "m")
    loaded = ACTGAN.load(tmp_path / "m")
    for u, v in zip(loaded.sample(50, label=1), model.sample(50, label=1)):
        np.testing.assert_array_equal(u, v)
