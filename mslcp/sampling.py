"""Sampling from the prior implicit in a denoiser (DESIGN §1.3, §1.6).

sample: Algorithm 1 (Kadkhodaie & Simoncelli 2021), batched, with conditional (cond=) and constrained (measure=, m=)
variants. synthesize / super_resolve: Algorithm 2, coarse to fine through a multi-scale model.

Batching: every image has its own sigma_t and stops on its own once sigma_t <= sigma_final. All images start together,
so t (and the step size h_t) is the iteration count, common to the images still running. An image that stopped is
frozen: it is no longer passed to the denoiser (nor are its cond/m rows). Its result is x_hat(y_T) = y_T + d(y_T),
computed in the batched denoiser call of the following iteration (so an image costs steps + 1 denoiser evaluations).

Randomness: `generator` is a torch.Generator, an int seed, None (a seed drawn from torch's global RNG, so
torch.manual_seed makes runs reproducible), or a list of these, one per image. With one generator the batch draws
its noise together (y_0 for all images, then each iteration one draw for the images still running), so an image's
result depends on the batch it ran in. With one generator per image, image i draws only from its own stream: the
batch gives the same images (up to float rounding of batched matrix products) as running each image alone with the
same stream. Generators are consumed in place; the same list passed to synthesize serves all levels.
"""
import itertools
import math
import warnings
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

Measure = namedtuple("Measure", "forward adjoint")  # forward = M^T: images -> measurements, adjoint = M


def inpainting(mask):
    """Observe the pixels where mask (C,H,W) or (H,W) (C=1) is True. forward: (B,C,H,W) -> (B,K)."""
    mask = torch.as_tensor(mask, dtype=torch.bool)
    mask = mask[None] if mask.dim() == 2 else mask

    def forward(x):
        if x.shape[1:] != mask.shape:
            raise ValueError(f"images {tuple(x.shape)} do not match the mask {tuple(mask.shape)}")
        return x[:, mask.to(x.device)]

    def adjoint(v):
        x = v.new_zeros(len(v), *mask.shape)
        x[:, mask.to(v.device)] = v
        return x
    return Measure(forward, adjoint)


def block_average(s):
    """Super-resolution by a factor s: block sums divided by s (orthonormal rows). (B,C,H,W) -> (B,C,H/s,W/s)."""
    def forward(x):
        if x.shape[-1] % s or x.shape[-2] % s:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the block size {s}")
        return F.avg_pool2d(x, s) * s
    return Measure(forward, lambda v: v.repeat_interleave(s, -2).repeat_interleave(s, -1) / s)


def random_projection(shape, k, seed=0):
    """k random orthonormal measurements of images of shape (C,H,W) (QR of a seeded Gaussian matrix). -> (B,k)."""
    d = math.prod(shape)
    if not 0 < k <= d:
        raise ValueError(f"need 0 < k <= {d} measurements for images of shape {tuple(shape)}, got k={k}")
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))[0]  # (d,k), orthonormal columns
    return Measure(lambda x: x.flatten(1) @ Q.to(x), lambda v: (v @ Q.to(v).T).view(-1, *shape))


def _generators(generator, n, device):
    """-> one torch.Generator, or a list of n of them (one stream per image)."""
    def make(g):
        if isinstance(g, torch.Generator):
            return g
        seed = int(torch.randint(2**62, ())) if g is None else int(g)
        return torch.Generator(device).manual_seed(seed)
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for {n} images")
        return [make(g) for g in generator]
    return make(generator)


def _randn(gen, idx, shape, y):
    if isinstance(gen, list):
        return torch.cat([torch.randn(1, *shape, generator=gen[i], device=y.device, dtype=y.dtype) for i in idx])
    return torch.randn(len(idx), *shape, generator=gen, device=y.device, dtype=y.dtype)


def _denoise(denoiser, y, cond):
    x = denoiser(y) if cond is None else denoiser(cond, y)
    if x.shape != y.shape:
        raise ValueError(f"denoiser returned shape {tuple(x.shape)} for input of shape {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise RuntimeError("denoiser returned non-finite values")
    return x


@torch.no_grad()
def sample(denoiser, shape, *, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1, mean=None, fixed_step=False,
           generator=None, cond=None, measure=None, m=None, max_steps=10_000, record_every=None, device=None,
           dtype=None):
    """Algorithm 1: draw shape[0] samples of shape[1:] (e.g. (B,C,H,W)) from the prior implicit in `denoiser`.

    y_0 ~ N(mean, sigma0^2 I), mean default 0.5 (0 when cond is given: detail bands). Each step t = 1, 2, ...:
    h_t = h0 t / (1 + h0 (t-1)) (h0 if fixed_step), d_t = x_hat(y_{t-1}) - y_{t-1}, sigma_t = |d_t| / sqrt(N),
    y_t = y_{t-1} + h_t d_t + gamma_t z with gamma_t^2 = ((1 - beta h_t)^2 - (1 - h_t)^2) sigma_t^2, until
    sigma_t <= sigma_final; returns x_hat(y_T) = y_T + d(y_T).
    cond (B,...): conditional denoiser, called denoiser(cond, y). measure=(M^T, M) with orthonormal rows and
    measurements m = M^T x (B,...): d_t = (I - M M^T) f(y) + M (m - M^T y); y_0's measured part starts at m and
    the result y_T + d_T satisfies M^T x = m exactly.
    An image still running after max_steps stops there (warning; info["converged"] False). sigma_t > 10 sigma0 or a
    non-finite sigma_t raises RuntimeError (runaway). device/dtype default to those of cond, m, or the denoiser
    (an nn.Module is run in eval mode; a plain function of y works too).
    Returns images (shape) and info: "sigma" (list of (steps_i,) tensors: sigma_1..sigma_T per image), "steps" (B,),
    "converged" (B,) bool, "calls" (batched denoiser calls), and with record_every=k "trajectory" (R,*shape): y_0 and
    y after every k-th iteration (finished images frozen).
    """
    B, rest = shape[0], tuple(shape[1:])
    N = math.prod(rest)
    if not (0 < beta <= 1 and 0 < h0 <= 1):
        raise ValueError(f"need 0 < beta <= 1 and 0 < h0 <= 1, got beta={beta}, h0={h0}")
    if (measure is None) != (m is None):
        raise ValueError("a constrained run needs both measure=(M^T, M) and the measurements m")
    for name, v in (("cond", cond), ("m", m)):
        if v is not None and len(v) != B:
            raise ValueError(f"{name} has {len(v)} rows for {B} images")
    refs = [cond, m] + (list(itertools.chain(denoiser.parameters(), denoiser.buffers()))
                        if isinstance(denoiser, nn.Module) else [])
    ref = next((r for r in refs if r is not None and r.is_floating_point()), None)
    device = device or (ref.device if ref is not None else "cpu")
    dtype = dtype or (ref.dtype if ref is not None else torch.get_default_dtype())
    mean = (0.0 if cond is not None else 0.5) if mean is None else mean

    training = getattr(denoiser, "training", False)  # sample in eval mode, restore afterwards
    if training:
        denoiser.eval()
    gen = _generators(generator, B, device)
    y = mean + sigma0 * _randn(gen, range(B), rest, torch.empty(0, device=device, dtype=dtype))
    if measure is not None:  # start the measured part at the measurements (as the authors' code)
        y = y + measure[1](m - measure[0](torch.zeros_like(y) + mean))
    out, hist, traj = torch.empty_like(y), [], [y.clone()] if record_every else None
    steps = torch.zeros(B, dtype=torch.long, device=device)
    stop = torch.zeros(B, dtype=torch.bool, device=device)
    converged = stop.clone()
    active, t, calls = torch.arange(B, device=device), 0, 0
    try:
        while len(active):
            ya = y[active]
            d = _denoise(denoiser, ya, None if cond is None else cond[active]) - ya
            calls += 1
            if measure is not None:
                fwd, adj = measure
                d = d - adj(fwd(d)) + adj(m[active] - fwd(ya))
            done = stop[active]
            out[active[done]] = (ya + d)[done]
            active, ya, d = active[~done], ya[~done], d[~done]
            if not len(active):
                break
            t += 1
            h = h0 if fixed_step else h0 * t / (1 + h0 * (t - 1))
            sigma = d.flatten(1).norm(dim=1) / math.sqrt(N)
            bad = ~torch.isfinite(sigma) | (sigma > 10 * sigma0)
            if bad.any():
                i = int(bad.nonzero()[0])
                raise RuntimeError(f"sampling diverged: image {int(active[i])} has sigma_t={float(sigma[i]):.3g} at "
                                   f"step {t} (limit 10*sigma0={10 * sigma0:g}); lower h0, raise beta or check the "
                                   "denoiser (noise range, mean, eval mode)")
            gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)
            z = _randn(gen, active.tolist() if isinstance(gen, list) else active, rest, y)
            y[active] = ya + h * d + gamma.view(-1, *[1] * len(rest)) * z
            s = torch.full((B,), math.nan, device=device, dtype=dtype)
            s[active] = sigma
            hist.append(s)
            steps[active] = t
            converged[active] = sigma <= sigma_final
            stop[active] = converged[active] | (t >= max_steps)
            if record_every and t % record_every == 0:
                traj.append(y.clone())
    finally:
        if training:
            denoiser.train()
    if not converged.all():
        warnings.warn(f"{int((~converged).sum())} images reached max_steps={max_steps} before sigma_final")
    S = torch.stack(hist, 1).cpu() if hist else torch.zeros(B, 0)
    info = {"sigma": [S[i, :n] for i, n in enumerate(steps.tolist())], "steps": steps, "converged": converged,
            "calls": calls}
    if record_every:
        info["trajectory"] = torch.stack(traj)
    return out, info


def _per_level(params, j, J):
    """Scalars pass through; sequences must have J+1 entries indexed by level (j = 0 finest, J = low-pass)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, (list, tuple)):
            if len(v) != J + 1:
                raise ValueError(f"{k}: per-level values need levels+1 = {J + 1} entries (index = level, "
                                 f"{J} = low-pass), got {len(v)}")
            v = v[j]
        out[k] = v
    return out


def _up(multiscale, low, details):
    """low_j from low_{j+1} and details_j (normalize "average": 2 idwt2, the same at every level)."""
    from .wavelets import idwt2
    if multiscale.normalize not in ("average", "orthonormal"):
        raise ValueError(f"unknown normalize {multiscale.normalize!r}")
    x = idwt2(low, details, multiscale.wavelet)
    return 2 * x if multiscale.normalize == "average" else x


def super_resolve(multiscale, low, *, level=None, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1,
                  fixed_step=False, generator=None, max_steps=10_000):
    """Algorithm 2 from a given low-pass `low` (B,C,h,w) at `level` (default multiscale.levels): for j = level-1..0
    sample the details (B,3C,h,w) from multiscale.conditionals[j] given low, then low <- the level-j low-pass.
    sigma0, sigma_final, h0, beta: scalars or per-level sequences (see synthesize). Returns images
    (B,C,h 2^level,w 2^level) and info {"levels": {j: sample info}, "lows": {j: low-pass at level j}, "calls"}.
    """
    J = multiscale.levels
    level = J if level is None else level
    params = dict(sigma0=sigma0, sigma_final=sigma_final, h0=h0, beta=beta)
    gen = _generators(generator, len(low), low.device)
    info = {"levels": {}, "lows": {level: low}, "calls": 0}
    for j in reversed(range(level)):
        B, C, h, w = low.shape
        details, info["levels"][j] = sample(multiscale.conditionals[j], (B, 3 * C, h, w), cond=low, mean=0.0,
                                            fixed_step=fixed_step, generator=gen, max_steps=max_steps,
                                            **_per_level(params, j, J))
        low = info["lows"][j] = _up(multiscale, low, details)
        info["calls"] += info["levels"][j]["calls"]
    return low, info


def synthesize(multiscale, n, *, size, channels=1, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1,
               fixed_step=False, generator=None, max_steps=10_000):
    """Algorithm 2: n images (n,channels,H,W), size = H or (H,W) divisible by 2^levels. The low-pass
    (n,channels,H/2^J,W/2^J) is drawn with Algorithm 1 from multiscale.low (initial mean 0.5), then super_resolve.
    sigma0, sigma_final, h0, beta: scalars, or sequences of levels+1 values indexed by level (0 finest conditional,
    J = levels is the low-pass). Returns images and info as super_resolve, with info["levels"][J] for the low-pass.
    """
    J = multiscale.levels
    H, W = (size, size) if isinstance(size, int) else size
    if H % 2**J or W % 2**J:
        raise ValueError(f"size {(H, W)} is not divisible by 2**levels = {2**J}")
    params = _per_level(dict(sigma0=sigma0, sigma_final=sigma_final, h0=h0, beta=beta), J, J)
    ref = next(itertools.chain(multiscale.low.parameters(), multiscale.low.buffers()), None)
    gen = _generators(generator, n, ref.device if ref is not None else "cpu")
    low, info_low = sample(multiscale.low, (n, channels, H >> J, W >> J), mean=0.5, fixed_step=fixed_step,
                           generator=gen, max_steps=max_steps, **params)
    x, info = super_resolve(multiscale, low, sigma0=sigma0, sigma_final=sigma_final, h0=h0, beta=beta,
                            fixed_step=fixed_step, generator=gen, max_steps=max_steps)
    info["levels"][J] = info_low
    info["calls"] += info_low["calls"]
    return x, info
