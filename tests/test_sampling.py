"""Algorithms 1 and 2 against exact Gaussian priors (tolerances from the sample size) and a plain reference loop.

What Algorithm 1 does and does not guarantee, measured here with the exact blind denoiser of N(mu, C):
it is exact only in the small-step limit. With the paper's ascending steps (h_t -> 1) and beta = 0.1 the samples are
under-dispersed along high-variance directions (by ~5-25%: a per-step error ~h^2 sigma^2 against a decrease of
2 beta h sigma^2), so the moment test uses fixed steps with h0/(2 beta) = 2%. The constrained variant conditions on
noisy measurements while sigma_t is large, so its samples match the exact Gaussian posterior only approximately; we
test exact measurement consistency and that the posterior mean is recovered far better than the prior mean does.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import pywt
import torch
from torch import nn

from mslcp.sampling import block_average, inpainting, random_projection, sample, super_resolve, synthesize
from mslcp.toy import GaussianDenoiser

D = torch.float64


def grid_prior(n=8, top=(0.1, 0.06, 0.04, 0.03, 0.02, 0.015, 0.01, 0.01), floor=1e-6, amp=0.1):
    """N(mu, C) on n x n images: C = V diag(lam) V^T with V the (smooth) eigenvectors of a stationary kernel,
    len(top) large eigenvalues, the rest = floor. Returns mu (1,n,n), C, lam, V (columns sorted by lam, descending)."""
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    p = torch.stack([ii.flatten(), jj.flatten()], 1).to(D)
    V = torch.linalg.eigh(torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / (2 * 1.5**2)))[1].flip(1)
    lam = torch.full((n * n,), floor, dtype=D)
    lam[:len(top)] = torch.tensor(top, dtype=D)
    mu = (0.5 + amp * torch.sin(p[:, 1] / 2)).reshape(1, n, n)
    return mu, V @ torch.diag(lam) @ V.T, lam, V


def check_moments(x, mu, lam, V, k):
    """x (N,...) samples vs N(mu, V diag(lam) V^T): the k large directions within sampling error, the rest ~ 0."""
    N = len(x)
    c = (x.flatten(1) - mu.flatten()) @ V  # coordinates in the eigenbasis
    z = c[:, :k].mean(0) / (lam[:k] / N).sqrt()
    assert z.abs().max() < 4, z
    r = c[:, :k].var(0) / lam[:k]  # each ~ chi2_{N-1}/(N-1): s.e. sqrt(2/N)
    se = math.sqrt(2 / N)
    assert (r - 1).abs().max() < 4 * se, r
    assert abs(r.mean() - 1) < 4 * se / math.sqrt(k) + 0.03, r.mean()  # 0.03: the 2% discretization bias
    corr = torch.corrcoef(c[:, :k].T) - torch.eye(k, dtype=D)
    assert corr.abs().max() < 4.5 / math.sqrt(N), corr.abs().max()
    # the other directions have variance floor = 1e-6 (x_hat shrinks them further); y_T itself would have ~1e-4
    assert c[:, k:].var(0).max() < 2e-6 and c[:, k:].mean(0).abs().max() < 1e-3


FIXED = dict(fixed_step=True, h0=0.02, beta=0.5)


def test_gaussian_prior_moments():
    mu, C, lam, V = grid_prior()
    x, info = sample(GaussianDenoiser(mu, C), (400, 1, 8, 8), generator=0, mean=mu, **FIXED)
    assert x.shape == (400, 1, 8, 8) and x.dtype == D and info.status == ["converged"] * 400
    check_moments(x, mu, lam, V, 8)
    s = info.sigma[0]
    assert len(s) == info.steps[0] and s[-1] <= 0.01 < s[-2]


def reference(denoiser, y, h0=0.01, beta=0.1, sigma_final=0.01, g=None):
    """Algorithm 1 of Kadkhodaie & Simoncelli (2021), literally, for one image."""
    t, sigmas = 1, []
    while True:
        h = h0 * t / (1 + h0 * (t - 1))
        d = denoiser(y) - y
        sigma = float(d.norm()) / math.sqrt(y.numel())
        gamma = math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2) * sigma
        y = y + h * d + gamma * torch.randn(y.shape, generator=g, dtype=y.dtype)
        sigmas.append(sigma)
        t += 1
        if sigma <= sigma_final:
            return denoiser(y), sigmas


def test_matches_reference_loop_and_batching():
    """Per-image generators: the batch gives each image exactly what it gets alone, and what the plain loop gives."""
    mu, C, *_ = grid_prior()
    den = GaussianDenoiser(mu, C)
    seeds = [3, 7, 11, 2]
    x, info = sample(den, (4, 1, 8, 8), generator=seeds)
    assert len(set(info.steps.tolist())) > 1  # the images stopped at different steps
    for i, s in enumerate(seeds):
        xi, infoi = sample(den, (1, 1, 8, 8), generator=s)
        assert infoi.steps[0] == info.steps[i]
        torch.testing.assert_close(xi[0], x[i], atol=1e-12, rtol=0)
        g = torch.Generator().manual_seed(s)
        y0 = 0.5 + torch.randn(1, 1, 8, 8, generator=g, dtype=D)
        ref, sig = reference(den, y0, g=g)
        torch.testing.assert_close(ref[0], x[i], atol=1e-12, rtol=0)
        torch.testing.assert_close(info.sigma[i], torch.tensor(sig, dtype=D), atol=1e-12, rtol=0)
    assert info.calls == int(info.steps.max()) + 1


def test_seeds_reproducible():
    mu, C, *_ = grid_prior()
    den = GaussianDenoiser(mu, C)
    a, _ = sample(den, (3, 1, 8, 8), generator=5)
    b, _ = sample(den, (3, 1, 8, 8), generator=torch.Generator().manual_seed(5))
    c, _ = sample(den, (3, 1, 8, 8), generator=6)
    assert torch.equal(a, b) and (a - c).abs().max() > 0.05
    torch.manual_seed(0)
    d, _ = sample(den, (3, 1, 8, 8))
    torch.manual_seed(0)
    e, _ = sample(den, (3, 1, 8, 8))
    assert torch.equal(d, e)
    # one generator for the whole batch: images differ from one another
    assert (a[0] - a[1]).abs().max() > 0.05


@pytest.mark.parametrize("op_name", ["inpainting", "block_average", "random_projection"])
def test_constrained_gaussian(op_name):
    mu, *_ = grid_prior()
    ii, jj = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    p = torch.stack([ii.flatten(), jj.flatten()], 1).to(D)
    C = 0.02 * torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 2) + 1e-3 * torch.eye(64, dtype=D)  # stationary
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[2:6, 2:6] = False
    op = {"inpainting": inpainting(mask), "block_average": block_average(2),
          "random_projection": random_projection((1, 8, 8), 16, seed=1)}[op_name]
    A = op.forward(torch.eye(64, dtype=D).view(64, 1, 8, 8)).reshape(64, -1).T  # (K,64) rows = measurements
    torch.testing.assert_close(A @ A.T, torch.eye(len(A), dtype=D))  # orthonormal rows
    x = mu.flatten() + torch.linalg.cholesky(C) @ torch.randn(64, generator=torch.Generator().manual_seed(5), dtype=D)
    m = op.forward(x.view(1, 1, 8, 8))
    v = torch.randn(2, *m.shape[1:], dtype=D)
    torch.testing.assert_close(op.adjoint(v).flatten(1), v.flatten(1) @ A)  # adjoint = A^T
    N = 200
    xs, info = sample(GaussianDenoiser(mu, C), (N, 1, 8, 8), measure=op, m=m.expand(N, *m.shape[1:]), generator=0)
    assert (op.forward(xs) - m).abs().max() < 1e-12  # measurements satisfied exactly
    S = A @ C @ A.T
    cm = mu.flatten() + C @ A.T @ torch.linalg.solve(S, m.flatten() - A @ mu.flatten())  # exact posterior mean
    cv = (C - C @ A.T @ torch.linalg.solve(S, A @ C)).diagonal()  # and variances
    u = cv > 1e-8  # unobserved
    err = xs.flatten(1).mean(0) - cm
    rms = lambda e: float(e[u].pow(2).mean().sqrt())
    assert rms(err) < 0.6 * rms(mu.flatten() - cm), (rms(err), rms(mu.flatten() - cm))
    assert (err[u].abs() / cv[u].sqrt()).max() < 1.2  # in posterior s.d.
    assert 0.5 < float(xs.flatten(1).var(0)[u].sum() / cv[u].sum()) < 1.6


class ConditionalGaussian(nn.Module):
    """Exact blind conditional denoiser of details ~ N(m(low), S), m(low) = b + B low (low (B,...), details (B,...))."""

    def __init__(self, b, Bmat, S):
        super().__init__()
        self.register_buffer("b", b)
        self.register_buffer("B", Bmat)
        self.den = GaussianDenoiser(torch.zeros_like(b), S)

    def mean(self, low):
        return self.b + low.flatten(1) @ self.B.T

    def forward(self, low, y):
        m = self.mean(low).view_as(y)
        return m + self.den(y - m)


def test_conditional_gaussian():
    _, S, lam, V = grid_prior(n=4, top=(0.05, 0.03, 0.02, 0.01))
    S = torch.block_diag(S, S, S)  # 3 detail bands of 4x4, d = 48
    lam, V = torch.linalg.eigh(S)
    lam, V = lam.flip(0), V.flip(1)
    g = torch.Generator().manual_seed(0)
    b, Bmat = 0.02 * torch.randn(48, generator=g, dtype=D), 0.1 * torch.randn(48, 16, generator=g, dtype=D)
    den = ConditionalGaussian(b, Bmat, S)
    lows = torch.rand(2, 1, 4, 4, generator=g, dtype=D)
    cond = lows.repeat_interleave(200, 0)
    x, info = sample(den, (400, 3, 4, 4), cond=cond, generator=1, **FIXED)
    assert x.shape == (400, 3, 4, 4)
    for i in range(2):
        check_moments(x[200 * i:200 * (i + 1)], den.mean(lows[i:i + 1]).view(3, 4, 4), lam, V, 12)


def test_errors_and_guards():
    mu, C, *_ = grid_prior()
    den = GaussianDenoiser(mu, C)
    with pytest.raises(RuntimeError, match="diverged"):
        sample(lambda y: y + 0.5 * (y - 0.5), (2, 1, 8, 8), generator=0, dtype=D)  # pushes away: sigma_t grows
    with pytest.raises(RuntimeError, match="non-finite"):
        sample(lambda y: y * float("nan"), (2, 1, 8, 8), generator=0)
    with pytest.raises(ValueError, match="shape"):
        sample(lambda y: y[:, :, :4], (2, 1, 8, 8), generator=0)
    with pytest.raises(ValueError, match="rows"):
        sample(lambda c, y: y, (2, 1, 8, 8), cond=torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="measurements"):
        sample(den, (2, 1, 8, 8), measure=inpainting(torch.ones(8, 8, dtype=torch.bool)))
    with pytest.raises(ValueError, match="beta"):
        sample(den, (2, 1, 8, 8), beta=0)
    with pytest.raises(ValueError, match="generators"):
        sample(den, (2, 1, 8, 8), generator=[1, 2, 3])
    with pytest.raises(ValueError, match="mask"):
        inpainting(torch.ones(8, 8, dtype=torch.bool)).forward(torch.zeros(1, 1, 8, 4))
    with pytest.raises(ValueError, match="divisible"):
        block_average(3).forward(torch.zeros(1, 1, 8, 8))
    with pytest.warns(UserWarning, match="max_steps"):
        x, info = sample(den, (2, 1, 8, 8), max_steps=5, generator=0, record_every=2)
    assert torch.isfinite(x).all() and (info.steps == 5).all()
    assert info.trajectory.shape == (3, 2, 1, 8, 8) and info.calls == 6
    assert info.status == ["max_steps"] * 2
    with pytest.warns(UserWarning, match="first step"):  # an identity "denoiser": the result is the initial noise
        x, info = sample(lambda y: y, (2, 1, 8, 8), generator=0, dtype=D)
    assert info.status == ["converged"] * 2 and (info.steps == 1).all()


def test_one_diverging_image_does_not_lose_the_batch():
    """Image 2 diverges (its denoiser pushes y away): it is stopped and flagged, the others finish exactly as they do
    without it (per-image generators)."""
    mu, C, *_ = grid_prior()
    den = GaussianDenoiser(mu, C)
    flaky = lambda c, y: torch.where(c.view(-1, 1, 1, 1) > 0, y + 2 * (y - 0.5), den(y))
    flag = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=D).view(4, 1)
    with pytest.warns(UserWarning, match="1 of 4 images diverged .* first: image 2: sigma_t"):
        x, info = sample(flaky, (4, 1, 8, 8), cond=flag, mean=0.5, generator=[3, 7, 11, 2])
    assert info.status == ["converged", "converged", "diverged", "converged"]
    assert torch.isnan(x[2]).all() and info.sigma[2][-1] > 10 and len(info.sigma[2]) == info.steps[2]
    ref, ref_info = sample(den, (3, 1, 8, 8), generator=[3, 7, 2])
    torch.testing.assert_close(x[[0, 1, 3]], ref, atol=1e-12, rtol=0)
    assert torch.equal(info.steps[[0, 1, 3]], ref_info.steps)
    with pytest.raises(RuntimeError, match="diverged for 2 of 2 images"):
        sample(flaky, (2, 1, 8, 8), cond=flag[2:3].expand(2, 1), mean=0.5, generator=0)


# ---------- Algorithm 2 ----------

def haar_maps(n):
    """Linear maps of the paper's Haar step (pywt, normalize="average" at level 0): low (n/2)^2 x n^2, details."""
    rows_l, rows_d = [], []
    for e in torch.eye(n * n, dtype=D).numpy().reshape(-1, n, n):
        a, (h, v, d) = pywt.dwt2(e, "haar", mode="symmetric")
        rows_l.append(a.ravel() / 2)
        rows_d.append([*h.ravel() / 2, *v.ravel() / 2, *d.ravel() / 2])
    return torch.tensor(np.array(rows_l)).T, torch.tensor(np.array(rows_d)).T


def test_synthesize_gaussian():
    """J = 1 on 8x8: the low-pass prior and the detail conditionals are the exact marginal/conditional of N(mu, C)."""
    mu, C, lam, V = grid_prior(amp=0.05)
    L, Dm = haar_maps(8)
    mL, mD = L @ mu.flatten(), Dm @ mu.flatten()
    CLL, CDL, CDD = L @ C @ L.T, Dm @ C @ L.T, Dm @ C @ Dm.T
    Bm = CDL @ torch.linalg.inv(CLL)
    ms = SimpleNamespace(levels=1, wavelet="haar", normalize="average", low=GaussianDenoiser(mL.view(1, 4, 4), CLL),
                         conditionals=[ConditionalGaussian(mD - Bm @ mL, Bm, CDD - Bm @ CDL.T)])
    x, info = synthesize(ms, 400, size=8, generator=0, fixed_step=True, h0=[0.02, 0.02], beta=[0.5, 0.5])
    assert x.shape == (400, 1, 8, 8) and set(info.levels) == {0, 1}
    assert info.calls == info.levels[0].calls + info.levels[1].calls
    assert info.status == ["converged"] * 400
    check_moments(x, mu, lam, V, 8)


def test_synthesize_draws_the_channels_of_its_low_pass_net():
    """No channels argument to get wrong: a 3-channel model gives 3-channel images (mean low-pass, zero details)."""
    class Mean(nn.Module):
        in_channels = 3

        def forward(self, y):
            return torch.full_like(y, 0.5)

    zero = lambda low, y: torch.zeros_like(y)
    ms = SimpleNamespace(levels=1, wavelet="haar", normalize="average", low=Mean(), conditionals=[zero])
    x, info = synthesize(ms, 2, size=8, generator=0)
    assert x.shape == (2, 3, 8, 8) and info.status == ["converged"] * 2
    torch.testing.assert_close(x, torch.full_like(x, 0.5), atol=0.05, rtol=0)  # sigma_final 0.01


def test_super_resolve_oracle_reconstructs():
    """Conditionals that return the true details: super_resolve must rebuild the image exactly (J = 2, pywt truth)."""
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=D)
    coeffs = [pywt.wavedec2(im, "haar", mode="symmetric", level=2) for im in x[:, 0].numpy()]
    lows = {2: torch.tensor(np.array([c[0] for c in coeffs]))[:, None] / 4}
    details = {j: torch.tensor(np.array([list(c[2 - j]) for c in coeffs])) / 2 ** (j + 1) for j in (0, 1)}
    lows[1] = torch.nn.functional.avg_pool2d(x, 2)

    class Oracle(nn.Module):
        def __init__(self, j):
            super().__init__()
            self.j = j

        def forward(self, low, y):
            k = ((low.flatten(1)[:, None] - lows[self.j + 1].flatten(1)[None]) ** 2).sum(-1).argmin(1)
            return details[self.j][k]

    ms = SimpleNamespace(levels=2, wavelet="haar", normalize="average", conditionals=[Oracle(0), Oracle(1)])
    out, info = super_resolve(ms, lows[2], generator=[1, 2], beta=[0.5, 0.3, 0.1])
    torch.testing.assert_close(info.lows[1], lows[1])
    torch.testing.assert_close(out, x)
    from mslcp.wavelets import reconstruct
    torch.testing.assert_close(reconstruct(lows[2], [details[0], details[1]]), x)
    with pytest.raises(ValueError, match="levels"):
        super_resolve(ms, lows[2], h0=[0.01, 0.01])


def test_super_resolve_stops_a_diverged_image():
    """A conditional that diverges for image 1 at level 1: image 1 is not refined at level 0 (NaN, "skipped"), the
    others give exactly what they give alone (per-image generators)."""
    shrink = lambda low, y: torch.where(low.flatten(1).mean(1).view(-1, 1, 1, 1) > 5, 3 * y, 0.5 * y)
    ms = SimpleNamespace(levels=2, wavelet="haar", normalize="average", conditionals=[shrink, shrink])
    lows = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=D)
    lows[1] += 10
    with pytest.warns(UserWarning, match="1 of 3 images diverged"):
        x, info = super_resolve(ms, lows, generator=[1, 2, 3])
    assert info.levels[1].status == ["converged", "diverged", "converged"]
    assert info.levels[0].status == ["converged", "skipped", "converged"]
    assert info.status == ["converged", "diverged", "converged"] and info.levels[0].steps[1] == 0
    assert torch.isnan(x[1]).all() and torch.isfinite(x[[0, 2]]).all()
    ref, ref_info = super_resolve(ms, lows[[0, 2]], generator=[1, 3])
    torch.testing.assert_close(x[[0, 2]], ref, atol=1e-12, rtol=0)
    assert ref_info.status == ["converged"] * 2


def test_stopping_level_against_an_independent_computation():
    """stopping_level = max(minimum, factor * mean_i ||f(x_i) - x_i|| / sqrt(d)), the rule chapters 3 and 6 compute
    inline for flat nets; here against a numpy loop over images and pixels, for an affine denoiser and the shipped
    flat_rf5 on its training faces."""
    from mslcp import pretrained, synthetic
    from mslcp.sampling import stopping_level

    x = synthetic.faces(8, 16, seed=4)
    xs = x.double().numpy()

    def reference(out, factor=1.5, minimum=0.01):
        norms = [math.sqrt(sum((o - v) ** 2 for o, v in zip(oi.ravel(), xi.ravel()))) / math.sqrt(xi.size)
                 for oi, xi in zip(out, xs)]
        return max(minimum, factor * sum(norms) / len(norms))

    affine = lambda y: 0.9 * y + 0.03  # residual 0.03 - 0.1 y, known in closed form  # noqa: E731
    want = reference(0.9 * xs + 0.03)
    assert stopping_level(affine, x) == pytest.approx(want, rel=1e-5) and want > 0.01
    assert stopping_level(affine, x, factor=3.0) == pytest.approx(reference(0.9 * xs + 0.03, 3.0), rel=1e-5)
    assert stopping_level(lambda y: y, x) == 0.01  # no residual: the minimum
    assert stopping_level(lambda y: y, x, minimum=0.002) == 0.002

    net = pretrained.shipped("flat_rf5")
    faces = synthetic.faces(64, 32, seed=0)  # the training faces chapters 3 and 6 measure it on
    with torch.no_grad():
        out = net(faces).double().numpy()
    xs = faces.double().numpy()
    assert stopping_level(net, faces) == pytest.approx(reference(out), rel=1e-5)
    net.train()  # a net in train mode is measured in eval mode and given back in train mode
    assert stopping_level(net, faces) == pytest.approx(reference(out), rel=1e-5) and net.training
