"""Closed-form priors for tests and chapters 1 and 3: Gaussian mixtures, a blind Gaussian denoiser, and a
small MLP denoiser of points that learns what the mixture gives in closed form.

Everything works through eigendecompositions C = U diag(lam) U^T computed once, so C + sigma^2 I is diagonal in the
same basis for every sigma (one per sample if wanted). Use float64 tensors for precise checks.
"""
import math

import torch
from torch import nn


def _generator(generator):
    return torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator


class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, C_k) on R^d and its noisy version p_sigma = sum_k w_k N(mu_k, C_k + sigma^2 I).

    means (K,d); covs (K,d,d) covariances, or standard deviations (K,) isotropic / (K,d) diagonal; weights (K,),
    normalized here (default uniform). In all methods y is (n,d) and sigma a float or an (n,) tensor.
    """

    def __init__(self, means, covs, weights=None):
        self.means = torch.as_tensor(means)
        if not self.means.is_floating_point():
            self.means = self.means.to(torch.float64)
        K, d = self.means.shape
        covs = torch.as_tensor(covs, dtype=self.means.dtype)
        if covs.dim() < 3:  # standard deviations
            covs = torch.diag_embed(covs.reshape(K, -1).expand(K, d) ** 2)
        if covs.shape != (K, d, d):
            raise ValueError(f"covs must be (K,d,d)=({K},{d},{d}) or stds (K,)/(K,d), got {tuple(covs.shape)}")
        weights = torch.ones(K) if weights is None else torch.as_tensor(weights)
        self.log_weights = (weights / weights.sum()).to(self.means.dtype).log()
        lam, self.U = torch.linalg.eigh((covs + covs.transpose(1, 2)) / 2)  # U[k] columns = eigenvectors
        self.lam = lam.clamp_min(0)

    def sample(self, n, generator=None):
        """n samples (n,d) of the clean density; generator: torch.Generator or int seed."""
        g = _generator(generator)
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=g)
        z = torch.randn(n, self.means.shape[1], generator=g, dtype=self.means.dtype)
        return self.means[k] + torch.einsum("nij,nj->ni", self.U[k], self.lam[k].sqrt() * z)

    def _components(self, y, sigma):
        """-> coordinates c (n,K,d) of y - mu_k in U_k, variances lam_k + sigma^2 (n|1,K,d), log w_k N_k(y) (n,K)."""
        v = torch.as_tensor(sigma, dtype=y.dtype).reshape(-1, 1, 1) ** 2
        c = torch.einsum("kji,nkj->nki", self.U, y[:, None, :] - self.means)
        var = self.lam + v
        logn = -0.5 * (c**2 / var + var.log() + math.log(2 * math.pi)).sum(-1)
        return c, var, logn + self.log_weights

    def log_prob(self, y, sigma=0.0):
        """log p_sigma(y) (n,)."""
        return self._components(y, sigma)[2].logsumexp(-1)

    def score(self, y, sigma):
        """grad_y log p_sigma(y) (n,d)."""
        c, var, logp = self._components(y, sigma)
        per = torch.einsum("kij,nkj->nki", self.U, c / var)
        return -torch.einsum("nk,nki->ni", logp.softmax(-1), per)

    def denoise(self, y, sigma):
        """Exact posterior mean E[x | y = x + sigma z] (n,d): responsibilities times per-component Wiener estimates."""
        c, var, logp = self._components(y, sigma)
        per = self.means + torch.einsum("kij,nkj->nki", self.U, self.lam / var * c)
        return torch.einsum("nk,nki->ni", logp.softmax(-1), per)

    def ml_sigma(self, y, lo=1e-4, hi=4.0, k=10, rounds=5):
        """Maximum-likelihood noise level of a cloud y (n,d) of points x_i + sigma z_i sharing one sigma:
        argmax over [lo, hi] of sum_i log p_sigma(y_i), on a k-point grid in log sigma refined `rounds` times
        around its best point (a float)."""
        a, b = math.log(lo), math.log(hi)
        for _ in range(rounds):
            log_s = torch.linspace(a, b, k, dtype=y.dtype)
            ll = self.log_prob(y.repeat(k, 1), log_s.exp().repeat_interleave(len(y))).view(k, -1).sum(1)
            i = int(ll.argmax())
            a, b = float(log_s[max(i - 1, 0)]), float(log_s[min(i + 1, k - 1)])
        return math.exp(float(log_s[i]))

    def blind_denoise(self, y, sigmas, weights=None):
        """Exact MMSE denoiser when sigma is unknown, drawn from the prior `weights` (default uniform) over the grid
        `sigmas` (m,): sum_s p(s | y) E[x | y, s], p(s | y) proportional to weights_s p_s(y). (n,d) -> (n,d).
        A fine grid of midpoints of [lo, hi] approximates sigma ~ U(lo, hi), the blind training of mslcp.train."""
        s = torch.as_tensor(sigmas, dtype=y.dtype).flatten()
        w = torch.ones_like(s) if weights is None else torch.as_tensor(weights, dtype=y.dtype)
        n, m = len(y), len(s)
        yy, ss = y.repeat_interleave(m, 0), s.repeat(n)
        post = (self.log_prob(yy, ss).view(n, m) + w.log()).softmax(-1)  # p(s | y) (n,m)
        return torch.einsum("nm,nmd->nd", post, self.denoise(yy, ss).view(n, m, -1))


class MLPDenoiser(nn.Module):
    """Small blind denoiser of points of R^d: x_hat(y) = y + r(y), r an MLP with `depth` hidden layers of `width` SiLU
    units whose output layer starts at zero (an untrained net is the identity). y (B,d) or (B,d,1,1): a batch of
    1x1 "images" with d channels, so mslcp.train.train trains it like the image denoisers. Returns y's shape."""

    def __init__(self, d=2, width=64, depth=3):
        super().__init__()
        self.in_channels = self.out_channels = d
        dims = [d] + [width] * depth
        layers = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], d))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, y):
        return y + self.net(y.flatten(1)).view_as(y)


class GaussianDenoiser(nn.Module):
    """Blind denoiser of the prior N(mu, C): the exact MMSE (Wiener) denoiser at a maximum-likelihood estimate of sigma.

    Given sigma it is exact; blind, it is not the Bayes-optimal average over sigma (GaussianMixture.blind_denoise is),
    but the estimate concentrates as d grows, so for images (d >= 100s) the two agree closely.

    mean: any shape with d entries (e.g. (d,) or an image (1,H,W)); cov (d,d). Input y (B,d) or (B,C,H,W) with
    C*H*W = d. sigma is estimated per image by maximum likelihood under y ~ N(mu, C + sigma^2 I) (bisection on the
    derivative of the log-likelihood in v = sigma^2, vectorized over the batch), or given (float or (B,) tensor).
    Returns mu + C (C + sigma^2 I)^{-1} (y - mu), same shape as y. Computes in y's dtype and device.
    """

    def __init__(self, mean, cov):
        super().__init__()
        mean = torch.as_tensor(mean)
        mean = mean if mean.is_floating_point() else mean.to(torch.float64)
        cov = torch.as_tensor(cov, dtype=mean.dtype)
        d = mean.numel()
        if cov.shape != (d, d):
            raise ValueError(f"cov must be ({d},{d}) for a mean with {d} entries, got {tuple(cov.shape)}")
        lam, U = torch.linalg.eigh((cov + cov.T) / 2)
        self.register_buffer("mean", mean.reshape(d))
        self.register_buffer("lam", lam.clamp_min(0))
        self.register_buffer("U", U)

    def _coords(self, y):
        if y[0].numel() != self.mean.numel():
            raise ValueError(f"input {tuple(y.shape)} has {y[0].numel()} values per item, "
                             f"the prior has {self.mean.numel()}")
        return (y.flatten(1) - self.mean.to(y)) @ self.U.to(y)  # (B,d) coordinates in the eigenbasis

    def _ml_variance(self, c, iters=50):
        """argmax_v sum_i -(c_i^2/(lam_i+v) + log(lam_i+v))/2 over v >= 0, per row of c (B,d) -> (B,)."""
        lam, c2 = self.lam.to(c), c**2
        lo, hi = torch.zeros_like(c[:, 0]), c2.max(1).values  # derivative is >= 0 at a root, <= 0 at hi
        for _ in range(iters):
            mid = (lo + hi) / 2
            var = lam + mid[:, None]
            up = ((c2 - var) / var**2).sum(1) > 0
            lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
        return (lo + hi) / 2

    def estimate_sigma(self, y):
        """Maximum-likelihood noise level (B,) of y."""
        return self._ml_variance(self._coords(y)).sqrt()

    def forward(self, y, sigma=None):
        c = self._coords(y)
        v = self._ml_variance(c) if sigma is None else torch.as_tensor(sigma).to(y).expand(len(y)) ** 2
        lam = self.lam.to(y)
        x = self.mean.to(y) + (lam / (lam + v[:, None]) * c) @ self.U.to(y).T
        return x.view_as(y)
