import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from mslcp.toy import GaussianDenoiser, GaussianMixture, MLPDenoiser
from mslcp.train import train

D = torch.float64


def mixture_2d():
    means = torch.tensor([[-1.0, 0.0], [1.5, 1.0], [0.0, -2.0]], dtype=D)
    covs = torch.tensor([[[0.5, 0.3], [0.3, 0.4]], [[0.2, -0.1], [-0.1, 0.6]], [[0.05, 0.0], [0.0, 0.3]]], dtype=D)
    return GaussianMixture(means, covs, torch.tensor([0.5, 0.3, 0.2])), means, covs


def reference_log_prob(y, means, covs, weights, sigma):
    """Independent: torch.distributions, one component at a time."""
    comps = [MultivariateNormal(m, c + sigma**2 * torch.eye(len(m), dtype=D)).log_prob(y) for m, c in zip(means, covs)]
    return torch.logsumexp(torch.stack(comps, -1) + weights.log(), -1)


def test_log_prob_matches_torch_distributions():
    gm, means, covs = mixture_2d()
    y = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=D) * 2
    for sigma in (0.0, 0.3, 1.0):
        ref = reference_log_prob(y, means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=D), sigma)
        torch.testing.assert_close(gm.log_prob(y, sigma), ref)


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_tweedie_autograd(sigma):
    """Miyasawa: E[x|y] = y + sigma^2 grad log p_sigma(y), the gradient by autograd of log_prob."""
    gm, *_ = mixture_2d()
    y = (torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=D) * 2).requires_grad_()
    (grad,) = torch.autograd.grad(gm.log_prob(y, sigma).sum(), y)
    torch.testing.assert_close(gm.score(y.detach(), sigma), grad)
    torch.testing.assert_close(gm.denoise(y.detach(), sigma), y.detach() + sigma**2 * grad)


def test_per_sample_sigma():
    gm, *_ = mixture_2d()
    y = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=D)
    s = torch.tensor([0.1, 0.5, 1.0], dtype=D)
    joint = gm.denoise(y, s)
    for i in range(3):
        torch.testing.assert_close(joint[i:i + 1], gm.denoise(y[i:i + 1], float(s[i])))


def test_posterior_mean_1d_quadrature():
    """1-D mixture: E[x|y] by quadrature of x p(x) N(y; x, sigma^2) over a fine grid of x."""
    means, stds, w = torch.tensor([-2.0, 0.5, 3.0], dtype=D), torch.tensor([0.3, 1.0, 0.5], dtype=D), [0.2, 0.5, 0.3]
    gm = GaussianMixture(means[:, None], stds, w)
    x = torch.linspace(-12, 12, 200001, dtype=D)
    px = sum(wk * torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
             for wk, m, s in zip(w, means, stds))
    y = torch.linspace(-4, 5, 19, dtype=D)
    for sigma in (0.2, 1.0, 3.0):
        lik = torch.exp(-0.5 * ((y[:, None] - x) / sigma) ** 2) * px  # (ny, nx)
        post = (lik * x).sum(1) / lik.sum(1)
        torch.testing.assert_close(gm.denoise(y[:, None], sigma)[:, 0], post, atol=1e-8, rtol=1e-8)
        py = lik.sum(1) * (x[1] - x[0]) / (sigma * math.sqrt(2 * math.pi))  # p_sigma(y) by quadrature
        torch.testing.assert_close(gm.log_prob(y[:, None], sigma), py.log(), atol=1e-6, rtol=1e-6)


def test_posterior_mean_2d_grid():
    gm, means, covs = mixture_2d()
    g = torch.linspace(-6, 6, 601, dtype=D)
    X = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    logpx = reference_log_prob(X, means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=D), 0.0)
    y = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 1.0], [2.0, 2.0]], dtype=D)
    for sigma in (0.3, 1.0):
        logw = logpx - 0.5 * ((y[:, None] - X) ** 2).sum(-1) / sigma**2
        post = (logw.softmax(1)[..., None] * X).sum(1)
        torch.testing.assert_close(gm.denoise(y, sigma), post, atol=1e-6, rtol=1e-6)


def test_mixture_sample_moments():
    gm, means, covs = mixture_2d()
    w = torch.tensor([0.5, 0.3, 0.2], dtype=D)
    x = gm.sample(20000, generator=0)
    m = (w[:, None] * means).sum(0)
    cov = (w[:, None, None] * (covs + means[:, :, None] * means[:, None, :])).sum(0) - torch.outer(m, m)
    se = (cov.diagonal() / len(x)).sqrt()
    assert ((x.mean(0) - m).abs() < 4.5 * se).all()
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.06, rtol=0.05)
    torch.testing.assert_close(gm.sample(5, generator=3), gm.sample(5, generator=torch.Generator().manual_seed(3)))


def stationary_prior(n, ell=2.0, amp=0.05, nugget=1e-3):
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    p = torch.stack([ii.flatten(), jj.flatten()], 1).to(D)
    C = amp * torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / (2 * ell**2)) + nugget * torch.eye(n * n, dtype=D)
    mu = (0.5 + 0.1 * torch.cos(p[:, 0] / 3)).reshape(1, n, n)
    return mu, C


def test_gaussian_denoiser_wiener_and_shapes():
    mu, C = stationary_prior(6)
    den = GaussianDenoiser(mu, C)
    y = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=D)
    for s in (0.05, 0.5):
        W = C @ torch.linalg.inv(C + s**2 * torch.eye(36, dtype=D))
        ref = mu.flatten() + (y.flatten(1) - mu.flatten()) @ W.T
        torch.testing.assert_close(den(y, sigma=s), ref.view_as(y))
        torch.testing.assert_close(den(y.flatten(1), sigma=s), ref)  # (B,d) vectors too
        gm = GaussianMixture(mu.flatten()[None], C[None])
        torch.testing.assert_close(den(y, sigma=s).flatten(1), gm.denoise(y.flatten(1), s))
    # blind = Wiener at the estimated sigma
    torch.testing.assert_close(den(y), den(y, sigma=den.estimate_sigma(y)))
    assert den(y.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="values per item"):
        den(torch.rand(2, 1, 5, 5, dtype=D))
    with pytest.raises(ValueError, match="cov must be"):
        GaussianDenoiser(mu, C[:-1, :-1])


def test_sigma_estimate_is_max_likelihood():
    mu, C = stationary_prior(6)
    den = GaussianDenoiser(mu, C)
    y = mu + 0.2 * torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=D)
    s = den.estimate_sigma(y)
    for i in range(4):
        ll = lambda v: MultivariateNormal(mu.flatten(), C + v * torch.eye(36, dtype=D)).log_prob(y[i].flatten())
        v = s[i] ** 2
        assert ll(v) >= ll(v * 1.01) and ll(v) >= ll(v * 0.99)


def test_sigma_estimate_large_d():
    """d = 1024: the blind estimate is within a few percent of the true sigma (relative s.e. ~ 1/sqrt(2d))."""
    n = 32
    mu, C = stationary_prior(n, ell=1.5, amp=0.05, nugget=1e-4)
    den = GaussianDenoiser(mu, C)
    g = torch.Generator().manual_seed(0)
    L = torch.linalg.cholesky(C)
    x = mu.flatten() + torch.randn(8, n * n, generator=g, dtype=D) @ L.T
    for sigma in (0.03, 0.1, 0.5, 1.0):
        y = (x + sigma * torch.randn(x.shape, generator=g, dtype=D)).view(8, 1, n, n)
        est = den.estimate_sigma(y)
        assert ((est / sigma - 1).abs() < 0.1).all(), (sigma, est)
        assert abs(float(est.mean()) / sigma - 1) < 0.04


@pytest.mark.parametrize("sigma", [0.01, 0.2, 1.0])
def test_mixture_ml_sigma(sigma):
    """The cloud's noise level maximizes the log-likelihood computed with torch.distributions (a local maximum
    within 0.5%), and lies near the true sigma (n = 4000 points) when sigma is not far below the components' widths
    (sigma = 0.01 against standard deviations >= 0.2 is not identifiable from 4000 points)."""
    mix, means, covs = mixture_2d()
    g = torch.Generator().manual_seed(3)
    y = mix.sample(4000, generator=g) + sigma * torch.randn(4000, 2, generator=g, dtype=D)
    s = mix.ml_sigma(y)
    ll = lambda t: float(reference_log_prob(y, means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=D), t).sum())
    assert ll(s) >= ll(s * 1.005) and ll(s) >= ll(s / 1.005)
    assert sigma < 0.1 or abs(s / sigma - 1) < 0.1


def test_blind_denoise_quadrature():
    """sigma unknown, drawn from weights over a grid: E[x|y] by quadrature over x and that grid jointly."""
    means, stds, w = torch.tensor([-2.0, 0.5, 3.0], dtype=D), torch.tensor([0.3, 1.0, 0.5], dtype=D), [0.2, 0.5, 0.3]
    gm = GaussianMixture(means[:, None], stds, w)
    sig, ws = torch.tensor([0.1, 0.4, 0.8, 1.5], dtype=D), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=D)
    x = torch.linspace(-12, 12, 100001, dtype=D)
    px = sum(wk * torch.exp(-0.5 * ((x - m) / s) ** 2) / s for wk, m, s in zip(w, means, stds))
    y = torch.linspace(-4, 5, 13, dtype=D)
    lik = sum(wj / sj * torch.exp(-0.5 * ((y[:, None] - x) / sj) ** 2) for sj, wj in zip(sig, ws)) * px
    post = (lik * x).sum(1) / lik.sum(1)
    torch.testing.assert_close(gm.blind_denoise(y[:, None], sig, ws)[:, 0], post, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(gm.blind_denoise(y[:, None], [0.4]), gm.denoise(y[:, None], 0.4))  # sigma known


def test_mlp_denoiser_starts_as_identity():
    net = MLPDenoiser(d=3, width=16, depth=2)
    y = torch.randn(5, 3)
    assert torch.equal(net(y), y) and torch.equal(net(y[:, :, None, None]), y[:, :, None, None])
    with torch.no_grad():
        net.net[-1].bias.fill_(0.5)
    torch.testing.assert_close(net(y), y + 0.5)
    torch.testing.assert_close(net(y[:, :, None, None])[:, :, 0, 0], net(y))


def test_mlp_denoiser_learns_blind_mmse():
    """Trained by mslcp.train on samples of a 1-D mixture with sigma ~ U(0.1, 1), its MSE approaches the exact blind
    MMSE (same noisy test points for both) and its curve approaches the exact blind denoiser where the data lie."""
    gm = GaussianMixture(torch.tensor([[-1.5], [1.0]], dtype=D), torch.tensor([0.3, 0.5], dtype=D), [0.4, 0.6])
    torch.manual_seed(0)
    net = MLPDenoiser(d=1, width=32, depth=2)
    x = gm.sample(20000, generator=0).float()[:, :, None, None]
    train(net, x, steps=800, batch_size=256, lr=3e-3, sigma_range=(0.1, 1.0), progress=False)
    g = torch.Generator().manual_seed(1)
    grid = (torch.arange(200, dtype=D) + 0.5) / 200 * 0.9 + 0.1
    xt = gm.sample(20000, generator=g)
    y = xt + (0.1 + 0.9 * torch.rand(len(xt), 1, generator=g, dtype=D)) * torch.randn(xt.shape, generator=g, dtype=D)
    exact = gm.blind_denoise(y, grid)
    with torch.no_grad():
        learned = net(y.float()).double()
    mmse, mse, noisy = [float(((e - xt) ** 2).mean()) for e in (exact, learned, y)]
    assert mmse < mse < 1.05 * mmse < 0.7 * noisy, (mmse, mse, noisy)
    assert float(((learned - exact) ** 2).mean()) < 0.05 * mmse
