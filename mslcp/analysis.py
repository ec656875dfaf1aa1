"""Looking inside a denoiser (Chapters 2, 5): Jacobians, adaptive filters and their locality, effective dimension,
noise level.

A bias-free denoiser is locally linear, D(y) = J(y) y with J(y) = ∂D/∂y (d×d, d = C·H·W): row k of J is the
adaptive filter that computes output pixel k. `denoiser` is any callable (B,C,H,W) -> (B,C,H,W) that treats the
images of a batch independently: put modules in eval mode first.
"""
import math

import torch
from torch.func import jacrev, vjp, vmap

from .wavelets import decompose


def jacobian(denoiser, y, rf=None, chunk_size=None):
    """Full Jacobian (d,d) at one image y (1,C,H,W): J[k, l] = ∂D(y)_k / ∂y_l, pixels flattened in C,H,W order.
    d backward passes (vectorized, chunk_size at a time): small images only. Given the receptive field rf (net.rf),
    J[k, l] = 0 unless pixels k, l are at most rf // 2 apart (in rows and columns), so outputs rf apart share no
    input, and C·rf² backward passes suffice: one per (channel, row % rf, col % rf) class of outputs, summed."""
    if y.ndim != 4 or len(y) != 1:
        raise ValueError(f"jacobian needs one image (1,C,H,W), got shape {tuple(y.shape)}")
    f = lambda v: denoiser(v.view_as(y)).flatten()
    if rf is None:
        return jacrev(f, chunk_size=chunk_size)(y.detach().flatten()).detach()
    _, C, H, W = y.shape
    r, s = rf // 2, rf // 2 * 2 + 1  # radius, class spacing (= rf for the odd rf of convolutional nets)
    c, i, j = torch.meshgrid(*(torch.arange(n, device=y.device) for n in (C, H, W)), indexing="ij")
    color = torch.unique(((c * s + i % s) * s + j % s).flatten(), return_inverse=True)[1]  # (d,) class of k
    probes = torch.nn.functional.one_hot(color).T.to(y.dtype)  # (classes, d)
    pullback = vjp(f, y.detach().flatten())[1]
    sums = vmap(pullback, chunk_size=chunk_size)(probes)[0]  # (classes, d): sums of the rows of each class
    i, j = i.flatten(), j.flatten()
    near = ((i[:, None] - i).abs() <= r) & ((j[:, None] - j).abs() <= r)  # (d,d): output k sees input l
    return (sums[color] * near).detach()


def jacobian_rows(denoiser, y, pixels, channel=0):
    """Rows of J at output pixels [(i, j), ...] of every image of y (B,C,H,W), one vector-Jacobian product per
    pixel: (B,K,C,H,W), entry [b, k] = ∂D(y)[b, channel, i_k, j_k] / ∂y[b], the filter that computes that pixel."""
    y = y.detach().requires_grad_()
    out = denoiser(y)
    rows = [torch.autograd.grad(out[:, channel, int(i), int(j)].sum(), y, retain_graph=True)[0] for i, j in pixels]
    return torch.stack(rows, 1)


def energy_within(rows, pixels, radii):
    """Locality of Jacobian rows: the fraction of a row's energy (squares summed over input channels) that lies
    within distance r of its own pixel, i.e. in the (2r+1)x(2r+1) square centred on it, in the rows' own pixels,
    averaged over rows. rows (B,K,C,H,W) as from jacobian_rows at pixels [(i, j)] * K; radii: ints >= 0.
    -> (len(radii),) float64; the entry for r >= rf // 2 is 1 for a net with receptive field rf."""
    if rows.ndim != 5 or rows.shape[1] != len(pixels):
        raise ValueError(f"rows must be (B,K,C,H,W) with K = len(pixels) = {len(pixels)}, got {tuple(rows.shape)}")
    if any(int(r) != r or r < 0 for r in radii):
        raise ValueError(f"radii must be integers >= 0, got {list(radii)}")
    e = rows.detach().double().square().sum(2)  # (B,K,H,W)
    total = e.sum((-2, -1))
    if (total == 0).any():
        raise ValueError("a Jacobian row is all zeros: its energy cannot be split")
    p = torch.as_tensor(pixels, device=e.device).view(-1, 2, 1, 1)
    i, j = (torch.arange(n, device=e.device) for n in e.shape[-2:])
    dist = torch.maximum((i.view(-1, 1) - p[:, 0]).abs(), (j - p[:, 1]).abs())  # (K,H,W): Chebyshev distance
    return torch.stack([((e * (dist <= r)).sum((-2, -1)) / total).mean() for r in radii]).cpu()


def conditional_locality(cond, x, y, level, pixels, radii, normalize="average"):
    """energy_within for the conditional denoiser `cond` of `level`: the rows of its three output bands w.r.t. the
    noisy details of y (B,C,H,W), the clean x_{level+1} of x held fixed, at the image pixels [(i, j)] divided by
    2^(level+1) (the net's own pixels, in which the radii count). -> (len(radii),) float64."""
    s = 2 ** (level + 1)
    low = decompose(x, level + 1, normalize=normalize)[0]
    noisy = decompose(y, level + 1, normalize=normalize)[1][level]
    p = [(i // s, k // s) for i, k in pixels]
    rows = torch.cat([jacobian_rows(lambda d: cond(low, d), noisy, p, channel=c) for c in range(3)], 1)
    return energy_within(rows, p * 3, radii)


def radius(curve, radii, level=0.95):
    """The smallest of `radii` at which an energy_within curve (aligned with radii) reaches `level`."""
    r = next((r for r, e in zip(radii, curve.tolist()) if e >= level), None)
    if r is None:
        raise ValueError(f"the curve never reaches {level} (max {float(curve.max()):.3f}): extend the radii")
    return r


def trace_estimate(denoiser, y, n=8, seed=0):
    """Hutchinson estimate of tr J(y) at one image y (1,C,H,W) from n random ±1 probes v (E[vᵀJv] = tr J), with one
    batched vector-Jacobian product: no d×d matrix, so it works on large images. -> (estimate, standard error)."""
    g = torch.Generator().manual_seed(seed)
    v = (torch.randint(0, 2, (n, *y.shape[1:]), generator=g) * 2 - 1).to(y)
    ys = y.detach().expand(n, -1, -1, -1).clone().requires_grad_()
    (grad,) = torch.autograd.grad((denoiser(ys) * v).sum(), ys)  # row k: J(y)ᵀ v_k
    q = (grad * v).flatten(1).sum(1).detach()  # v_kᵀ J v_k
    return q.mean().item(), (q.std().item() / math.sqrt(n) if n > 1 else float("nan"))


def noise_level(y, denoised):
    """Noise level estimated from the residual, per image (B,): ‖y − D(y)‖ / √d as in Algorithm 1, from y and
    denoised = D(y), both (B,C,H,W). An MMSE denoiser gives E‖y − D(y)‖² = σ² (d − E tr J): slightly below σ."""
    r = (y - denoised).detach().flatten(1)
    return r.norm(dim=1) / math.sqrt(r.shape[1])
