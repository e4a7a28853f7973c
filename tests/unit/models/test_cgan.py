"""CGAN-specific tests; the fit/sample/oversample/save/load contract runs over CGAN in test_actgan.py."""

import math

import pytest
import torch

from credspark.models._gan_common import ConditionalGenerator, one_hot_labels
from credspark.models._gan_transformer import Span
from credspark.models.actgan import CrossLayer
from credspark.models.cgan import CGAN, CGANDiscriminator, discriminator_step, generator_step
from credspark.models.spec import FeatureSpec, StaticFeature

torch.set_num_threads(1)

SPANS = [Span(0, 1, "tanh"), Span(1, 3, "softmax"), Span(4, 1, "tanh")]
DATA_DIM = 5


def nets(dropout=0.5):
    gen = ConditionalGenerator(8, 2, (16, 16), SPANS)
    disc = CGANDiscriminator(DATA_DIM, 2, dims=(16, 16), dropout=dropout)
    return gen, disc


def test_discriminator_reads_the_condition():
    _, disc = nets(dropout=0.0)
    assert disc.net[0].in_features == DATA_DIM + 2
    assert not any(isinstance(m, CrossLayer) for m in disc.modules())
    x = torch.rand(6, DATA_DIM)
    a = disc(x, one_hot_labels(torch.zeros(6, dtype=torch.long)))
    b = disc(x, one_hot_labels(torch.ones(6, dtype=torch.long)))
    assert a.shape == (6,)
    assert not torch.allclose(a, b)


def test_one_step_each_reaches_every_parameter():
    gen, disc = nets()
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    g_opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    labels = torch.randint(0, 2, (16,))
    synced = []
    out = discriminator_step(gen, disc, d_opt, torch.rand(16, DATA_DIM), labels, noise_dim=8, grad_sync=synced.append)
    assert set(out) == {"d_loss", "wasserstein"}
    for name, p in disc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in gen.parameters())
    generator_step(gen, disc, g_opt, labels, noise_dim=8, grad_sync=synced.append)
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert synced == [disc, gen]


def test_losses_are_binary_cross_entropy():
    # A discriminator that outputs logit 0 everywhere: every BCE term is log(2).
    gen, disc = nets()
    with torch.no_grad():
        disc.net[-1].weight.zero_()
        disc.net[-1].bias.zero_()
    sgd = torch.optim.SGD(disc.parameters(), lr=0.0)
    labels = torch.randint(0, 2, (16,))
    d = discriminator_step(gen, disc, sgd, torch.rand(16, DATA_DIM), labels, noise_dim=8)
    g = generator_step(gen, disc, torch.optim.SGD(gen.parameters(), lr=0.0), labels, noise_dim=8)
    assert d["d_loss"] == pytest.approx(math.log(2.0))
    assert g["g_loss"] == pytest.approx(math.log(2.0))
    assert d["wasserstein"] == pytest.approx(0.0)


def test_defaults_are_the_plain_gan():
    spec = FeatureSpec(static=(StaticFeature("x"),), channels=("a",), T=2)
    params = CGAN(spec=spec).get_params()
    assert params["n_critic"] == 1 and params["lr"] == 2e-4 and params["betas"] == (0.5, 0.9)
    assert "gp_lambda" not in params and "n_cross" not in params
