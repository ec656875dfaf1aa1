"""Sampling from the prior implicit in a denoiser.

sample: Algorithm 1 (Kadkhodaie & Simoncelli 2021), batched, with conditional (cond=) and constrained (measure=, m=)
variants. synthesize / super_resolve: Algorithm 2, coarse to fine through a multi-scale model. stopping_level: where
Algorithm 1 should stop for a flat net, which often does not reach sigma_final = 0.01 (chapters 3 and 6, the CLI).

Batching: every image has its own sigma_t and stops on its own once sigma_t <= sigma_final, or when it fails (diverges,
or reaches max_steps): it is flagged in info["status"] and the others go on, so one bad image never costs the batch
(strict=True raises instead). All images start together, so t (and the step size h_t) is the iteration count, common
to the images still running. An image that stopped is frozen: it is no longer passed to the denoiser (nor are its
cond/m rows). Its result is x_hat(y_T) = y_T + d(y_T), computed in the batched denoiser call of the following
iteration (so an image costs steps + 1 denoiser evaluations).

Randomness: `generator` is a torch.Generator, an int seed, None (a seed drawn from torch's global RNG, so
torch.manual_seed makes runs reproducible), or a list of these, one per image. With one generator the batch draws
its noise together (y_0 for all images, then each iteration one draw for the images still running), so an image's
result depends on the batch it ran in. With one generator per image, image i draws only from its own stream: the
batch gives the same images (up to float rounding of batched matrix products) as running each image alone with the
same stream. Generators are consumed in place; the same list passed to synthesize serves all levels.
"""
import itertools
import math
import numbers
import warnings
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

from .data import check_images

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
    _check("s (block size)", s, "a positive int", lambda v: isinstance(v, numbers.Integral) and v >= 1)
    def forward(x):
        if x.shape[-1] % s or x.shape[-2] % s:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the block size {s}")
        return F.avg_pool2d(x, s) * s
    return Measure(forward, lambda v: v.repeat_interleave(s, -2).repeat_interleave(s, -1) / s)


def random_projection(shape, k, seed=0):
    """k random orthonormal measurements of images of shape (C,H,W) (QR of a seeded Gaussian matrix). -> (B,k)."""
    _check("shape", shape, "a sequence of positive ints (C, H, W)",
           lambda s: len(s) >= 1 and all(isinstance(n, numbers.Integral) and n >= 1 for n in s))
    d = math.prod(shape)
    _check("k", k, f"an int, the number of measurements (not a ratio: e.g. round({d} * ratio))",
           lambda v: isinstance(v, numbers.Integral))
    if not 0 < k <= d:
        raise ValueError(f"need 0 < k <= {d} measurements for images of shape {tuple(shape)}, got k={k}")
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))[0]  # (d,k), orthonormal columns
    return Measure(lambda x: x.flatten(1) @ Q.to(x), lambda v: (v @ Q.to(v).T).view(-1, *shape))


def _check(name, value, allowed, test):
    """Raise ValueError "`name` must be `allowed`" unless test(value) is true (bool, str and errors count as false)."""
    try:
        ok = not isinstance(value, (bool, str)) and bool(test(value))
    except (TypeError, ValueError, OverflowError, RuntimeError):
        ok = False
    if not ok:
        got = f"a {value.dtype} tensor of shape {tuple(value.shape)}" if torch.is_tensor(value) else f"{value!r:.80}"
        raise ValueError(f"{name} must be {allowed}, got {got}")


def _check_params(sigma0, sigma_final, h0, beta, max_steps, where=""):
    """The scalar settings of one run (where: " (level j)" in messages)."""
    _check("sigma0" + where, sigma0, "a finite number > 0", lambda v: 0 < float(v) < math.inf)
    _check("sigma_final" + where, sigma_final, f"a number with 0 < sigma_final < sigma0 = {sigma0}",
           lambda v: 0 < float(v) < float(sigma0))
    _check("h0" + where, h0, "a number with 0 < h0 <= 1", lambda v: 0 < float(v) <= 1)
    _check("beta" + where, beta, "a number with 0 < beta <= 1", lambda v: 0 < float(v) <= 1)
    _check("max_steps", max_steps, "a positive integer", lambda v: float(v).is_integer() and v >= 1)


def _check_tensor(name, v):
    """v: a floating-point tensor without NaN or inf (data.check_images: the library's rule for images)."""
    check_images(v, name, kind="any")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or inf values")


def _placement(denoiser, cond, m, device, dtype):
    """-> (device, dtype) of the run: those of the denoiser (first floating parameter or buffer of an nn.Module), else
    of cond or m, else the arguments (default cpu, torch's default dtype). Any two that differ raise ValueError."""
    found = []
    if isinstance(denoiser, nn.Module):
        p = next((p for p in itertools.chain(denoiser.parameters(), denoiser.buffers()) if p.is_floating_point()), None)
        found += [("the denoiser", p.device, p.dtype)] if p is not None else []
    found += [(k, v.device, v.dtype) for k, v in (("cond", cond), ("m", m)) if v is not None]
    found += [("device=", torch.device(device), None)] if device is not None else []
    found += [("dtype=", None, dtype)] if dtype is not None else []
    same = lambda a, b: a == b or isinstance(a, torch.device) and a.type == b.type and None in (a.index, b.index)
    out = []
    for k, default in ((1, torch.device("cpu")), (2, torch.get_default_dtype())):  # device, dtype
        have = [f for f in found if f[k] is not None]
        for f in have[1:]:
            if not same(have[0][k], f[k]):
                raise ValueError(f"{f[0]} is {f[k]} but {have[0][0]} is {have[0][k]}: convert one to match")
        out.append(have[0][k] if have else default)
    return tuple(out)


def _generators(generator, n, device):
    """-> one torch.Generator, or a list of n of them (one stream per image)."""
    def make(g):
        if isinstance(g, torch.Generator):
            if g.device.type != torch.device(device).type:
                raise ValueError(f"generator is on {g.device} but sampling runs on {device}")
            return g
        if g is not None and (isinstance(g, bool) or not isinstance(g, numbers.Integral)):
            raise TypeError(f"generator must be None, an int seed, a torch.Generator, or a list of these (one per "
                            f"image), got {g!r:.80}")
        _check("generator (seed)", g, "an int in [0, 2**64)", lambda v: v is None or 0 <= v < 2**64)
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
    return x


@torch.no_grad()
def sample(denoiser, shape, *, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1, mean=None, fixed_step=False,
           generator=None, cond=None, measure=None, m=None, max_steps=10_000, record_every=None, device=None,
           dtype=None, strict=False, relative_stop=False):
    """Algorithm 1: draw shape[0] samples of shape[1:] (e.g. (B,C,H,W)) from the prior implicit in `denoiser`.

    y_0 ~ N(mean, sigma0^2 I), mean default 0.5 (0 when cond is given: detail bands). Each step t = 1, 2, ...:
    h_t = h0 t / (1 + h0 (t-1)) (h0 if fixed_step), d_t = x_hat(y_{t-1}) - y_{t-1}, sigma_t = |d_t| / sqrt(N),
    y_t = y_{t-1} + h_t d_t + gamma_t z with gamma_t^2 = ((1 - beta h_t)^2 - (1 - h_t)^2) sigma_t^2, until
    sigma_t <= sigma_final; returns x_hat(y_T) = y_T + d(y_T). relative_stop=True stops as the authors' code does
    (algorithm_inv_prob.one_scale_synthesis), on a signal-to-noise ratio: once sigma_t <= sigma_final * std(y_t),
    the standard deviation of the image's own values after the step.
    cond (B,...): conditional denoiser, called denoiser(cond, y). measure=(M^T, M) with orthonormal rows and
    measurements m = M^T x (B,...): d_t = (I - M M^T) f(y) + M (m - M^T y); y_0's measured part starts at m and
    the result y_T + d_T satisfies M^T x = m exactly.
    Settings: sigma0 > 0 finite, 0 < sigma_final < sigma0, h0 and beta in (0, 1], max_steps a positive integer;
    cond, m and mean finite. device/dtype are the denoiser's (an nn.Module's parameters; it is run in eval mode), else
    those of cond or m, else the arguments; a mismatch raises. A plain function of y works too.
    Per image: an image whose sigma_t is non-finite or exceeds 10 sigma0, or whose y drifts further than
    10 max(sigma0, 1) (rms) from mean, is stopped as "diverged" (result NaN); one still running after max_steps stops
    there as "max_steps" (result x_hat(y_T)); the others go on. Warnings report both, and images that converge at
    their first step (an identity-like denoiser: the result is the initial noise). RuntimeError if every image
    diverged, or with strict=True if any image diverged (at once) or reached max_steps.
    Returns images (shape) and info: "status" (list of B: "converged", "max_steps" or "diverged"), "steps" (B,) last
    step, "sigma_t" (B,) sigma at that step, "converged" (B,) bool, "sigma" (list of (steps_i,) tensors:
    sigma_1..sigma_T per image), "calls" (batched denoiser calls), and with record_every=k "trajectory" (R,*shape):
    y_0 and y after every k-th iteration (finished images frozen).
    """
    _check("shape", shape, "a sequence of positive ints (B, ...) of length >= 2",
           lambda s: len(s) >= 2 and all(isinstance(k, numbers.Integral) and k >= 1 for k in s))
    _check_params(sigma0, sigma_final, h0, beta, max_steps)
    _check("record_every", record_every, "None or a positive int",
           lambda v: v is None or isinstance(v, numbers.Integral) and v >= 1)
    sigma0, sigma_final, h0, beta, max_steps = *map(float, (sigma0, sigma_final, h0, beta)), int(max_steps)
    B, rest = shape[0], tuple(shape[1:])
    N = math.prod(rest)
    if (measure is None) != (m is None):
        raise ValueError("a constrained run needs both measure=(M^T, M) and the measurements m")
    for name, v in (("cond", cond), ("m", m)):
        if v is not None:
            _check_tensor(name, v)
            if len(v) != B:
                raise ValueError(f"{name} has {len(v)} rows for {B} images")
    device, dtype = _placement(denoiser, cond, m, device, dtype)
    mean = (0.0 if cond is not None else 0.5) if mean is None else mean
    _check("mean", mean, f"a finite number or tensor broadcastable to {rest}",
           lambda v: torch.isfinite(torch.as_tensor(v)).all() and torch.broadcast_shapes(torch.as_tensor(v).shape,
                                                                                        rest) == rest)
    mean = torch.as_tensor(mean, device=device, dtype=dtype)
    bound = 10 * max(sigma0, 1.0)  # rms distance from mean beyond which y has run away

    training = getattr(denoiser, "training", False)  # sample in eval mode, restore afterwards
    if training:
        denoiser.eval()
    gen = _generators(generator, B, device)
    y = mean + sigma0 * _randn(gen, range(B), rest, torch.empty(0, device=device, dtype=dtype))
    if measure is not None:  # start the measured part at the measurements (as the authors' code)
        y = y + measure[1](m - measure[0](torch.zeros_like(y) + mean))
    out, hist, traj = torch.full_like(y, math.nan), [], [y.clone()] if record_every else None
    steps = torch.zeros(B, dtype=torch.long, device=device)
    stop = torch.zeros(B, dtype=torch.bool, device=device)
    converged, failed, first = stop.clone(), stop.clone(), None
    active, t, calls = torch.arange(B, device=device), 0, 0
    try:
        while len(active):
            ya = y[active]
            d = _denoise(denoiser, ya, None if cond is None else cond[active]) - ya
            calls += 1
            if measure is not None:
                fwd, adj = measure
                d = d - adj(fwd(d)) + adj(m[active] - fwd(ya))
            sigma = d.flatten(1).norm(dim=1) / math.sqrt(N)
            drift = (ya - mean).flatten(1).norm(dim=1) / math.sqrt(N)
            done, live = stop[active], ~stop[active]  # live: taking step t + 1
            bad = ~torch.isfinite(sigma) | (sigma > 10 * sigma0) | ~(drift <= bound)
            if bad.any():
                i = int(bad.nonzero()[0])
                why = ("the denoiser returned non-finite values" if not torch.isfinite(sigma[i]) else
                       f"y drifted to rms {float(drift[i]):.4g} from mean (limit {bound:g})" if sigma[i] <= 10 * sigma0
                       else f"sigma_t={float(sigma[i]):.3g} > 10*sigma0={10 * sigma0:g}")
                first = first or f"image {int(active[i])}: {why} at step {t + int(live[i])}"
                if strict:
                    raise RuntimeError(f"sampling diverged: {first}; lower h0, raise beta or check the denoiser "
                                       "(noise range, mean, eval mode)")
                failed[active[bad]] = True
            out[active[done & ~bad]] = (ya + d)[done & ~bad]
            if live.any():
                t += 1
                s = torch.full((B,), math.nan, device=device, dtype=dtype)
                s[active[live]] = sigma[live]
                hist.append(s)
                steps[active[live]] = t
            keep = live & ~bad
            active, ya, d, sigma = active[keep], ya[keep], d[keep], sigma[keep]
            if not len(active):
                break
            h = h0 if fixed_step else h0 * t / (1 + h0 * (t - 1))
            gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)
            z = _randn(gen, active.tolist() if isinstance(gen, list) else active, rest, y)
            y[active] = ya + h * d + gamma.view(-1, *[1] * len(rest)) * z
            scale = y[active].flatten(1).std(1) if relative_stop else 1.0  # (A,) or 1
            converged[active] = sigma <= sigma_final * scale
            stop[active] = converged[active] | (t >= max_steps)
            if record_every and t % record_every == 0:
                traj.append(y.clone())
    finally:
        if training:
            denoiser.train()
    converged &= ~failed
    S = torch.stack(hist, 1).cpu() if hist else torch.zeros(B, 0)
    sig = [S[i, :k] for i, k in enumerate(steps.tolist())]
    info = {"status": ["diverged" if f else "converged" if c else "max_steps"
                       for f, c in zip(failed.tolist(), converged.tolist())],
            "steps": steps, "sigma_t": torch.stack([s[-1] if len(s) else S.new_tensor(math.nan) for s in sig]),
            "converged": converged, "sigma": sig, "calls": calls}
    if record_every:
        info["trajectory"] = torch.stack(traj)
    _report(info, B, first, max_steps, strict)
    return out, info


def _report(info, B, first, max_steps, strict):
    """Raise if every image diverged (strict: if any image did not converge), else warn about the flagged images."""
    n_div, n_max = info["status"].count("diverged"), info["status"].count("max_steps")
    hint = "lower h0, raise beta or check the denoiser (noise range, mean, eval mode)"
    if n_div == B or (strict and n_div):
        raise RuntimeError(f"sampling diverged for {n_div} of {B} images (first: {first}); {hint}")
    if strict and n_max:
        raise RuntimeError(f"{n_max} of {B} images reached max_steps={max_steps} before sigma_final (strict=True)")
    if n_div:
        warnings.warn(f"{n_div} of {B} images diverged and were stopped, their results are NaN (info['status']); "
                      f"first: {first}; {hint}")
    if n_max:
        warnings.warn(f"{n_max} of {B} images reached max_steps={max_steps} before sigma_final")
    if (quick := int((info["converged"] & (info["steps"] == 1)).sum())):
        warnings.warn(f"{quick} of {B} images converged at their first step (sigma_1 <= sigma_final): the denoiser "
                      "barely changes its input, so the result is close to the initial noise")


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


def _level_params(params, J, max_steps):
    """Validate the settings of every level up front; -> a function j -> that level's settings."""
    per = any(isinstance(v, (list, tuple)) for v in params.values())
    for j in range(J + 1):
        _check_params(**_per_level(params, j, J), max_steps=max_steps, where=f" (level {j})" if per else "")
    return lambda j: _per_level(params, j, J)


def _up(multiscale, low, details):
    """low_j from low_{j+1} and details_j (normalize "average": 2 idwt2, the same at every level)."""
    from .wavelets import idwt2
    if multiscale.normalize not in ("average", "orthonormal"):
        raise ValueError(f"unknown normalize {multiscale.normalize!r}")
    x = idwt2(low, details, multiscale.wavelet)
    return 2 * x if multiscale.normalize == "average" else x


def _widen(info, idx, B):
    """A sample() info for the images idx of a batch of B -> entries for all B (status "skipped": not run)."""
    if len(idx) == B:
        return info
    pos = dict(zip(idx.tolist(), range(len(idx))))
    out = dict(info, status=[info["status"][pos[i]] if i in pos else "skipped" for i in range(B)],
               sigma=[info["sigma"][pos[i]] if i in pos else torch.zeros(0) for i in range(B)])
    for key, fill in (("steps", 0), ("sigma_t", math.nan), ("converged", False)):
        out[key] = torch.full((B,), fill, dtype=info[key].dtype, device=info[key].device)
        out[key][idx.to(out[key].device)] = info[key]
    return out


def _refine(multiscale, low, level, gen, ok, settings, run):
    """Algorithm 2 from low (B,C,h,w) at `level` for the images where ok (B,) is True (the others stay NaN)."""
    info = {"levels": {}, "lows": {level: low}, "calls": 0}
    for j in reversed(range(level)):
        B, C, h, w = low.shape
        idx = ok.nonzero()[:, 0]
        g = [gen[i] for i in idx.tolist()] if isinstance(gen, list) else gen
        d, lev = sample(multiscale.conditionals[j], (len(idx), 3 * C, h, w), cond=low[idx], mean=0.0,
                        generator=g, **settings(j), **run)
        details = low.new_full((B, 3 * C, h, w), math.nan)
        details[idx.to(low.device)] = d
        info["levels"][j] = _widen(lev, idx, B)
        ok[idx] = torch.tensor([s != "diverged" for s in lev["status"]])
        low = info["lows"][j] = _up(multiscale, low, details)
        info["calls"] += lev["calls"]
    return low, info


def _overall(info):
    """info["status"] (list of B): "diverged" if the image diverged at some level (it is not refined further and its
    result is NaN), else "max_steps" if some level reached max_steps (refined further), else "converged"."""
    per_image = zip(*(lev["status"] for lev in info["levels"].values()))
    info["status"] = ["diverged" if "diverged" in s else "max_steps" if "max_steps" in s else "converged"
                      for s in per_image]
    return info


def _levels(multiscale, fn, need=("conditionals", "levels")):
    """multiscale.levels, or TypeError if it is not a multi-scale model (it lacks an attribute of `need`)."""
    if not all(hasattr(multiscale, k) for k in need):
        raise TypeError(f"{fn}: multiscale must be a multi-scale model (multiscale.MultiScaleDenoiser: .low, "
                        f".conditionals, .levels), got {type(multiscale).__name__}; sample() draws from a flat "
                        "denoiser")
    return multiscale.levels


@torch.no_grad()
def stopping_level(denoiser, images, factor=1.5, minimum=0.01):
    """The stopping level sigma_L of Algorithm 1 for a flat denoiser: max(minimum, factor * floor), where floor is
    the mean over clean images x (B,C,H,W) of ||denoiser(x) - x|| / sqrt(C H W): what the net removes from an image
    that has no noise. A flat net with a small receptive field takes fine texture for noise, so its sigma_t levels
    off near that floor and the run never reaches a sigma_final below it (the images then stop at max_steps or
    diverge); stopping at 1.5 times the floor ends where the noise left is clearly above what the net mistakes
    for it. images: the net's training images (the book uses 64). Returns a float. The denoiser runs in eval mode
    (restored afterwards) on the device and dtype of its parameters."""
    check_images(images, "images", kind="images")
    _check("images", images, "a batch (B,C,H,W) of at least one image", lambda v: v.ndim == 4 and len(v) >= 1)
    _check("factor", factor, "a finite number > 0", lambda v: 0 < float(v) < math.inf)
    _check("minimum", minimum, "a finite number >= 0", lambda v: 0 <= float(v) < math.inf)
    module = isinstance(denoiser, nn.Module)
    device, dtype = _placement(denoiser, None, None, *((None, None) if module else (images.device, images.dtype)))
    x = images.to(device, dtype)
    training = getattr(denoiser, "training", False)
    if training:
        denoiser.eval()
    try:
        r = _denoise(denoiser, x, None) - x
    finally:
        if training:
            denoiser.train()
    floor = float((r.flatten(1).norm(dim=1) / math.sqrt(r[0].numel())).mean())
    if not math.isfinite(floor):
        raise ValueError("stopping_level: the denoiser returned NaN or inf on the clean images")
    return max(float(minimum), float(factor) * floor)


def super_resolve(multiscale, low, *, level=None, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1,
                  fixed_step=False, generator=None, max_steps=10_000, strict=False, relative_stop=False):
    """Algorithm 2 from a given low-pass `low` (B,C,h,w) at `level` (0..levels, default multiscale.levels): for
    j = level-1..0 sample the details (B,3C,h,w) from multiscale.conditionals[j] given low, then low <- the level-j
    low-pass. sigma0, sigma_final, h0, beta: scalars or per-level sequences (see synthesize); strict and
    relative_stop as in sample.
    An image that diverges at a level is not refined further (its result is NaN); one that reaches max_steps is.
    Returns images (B,C,h 2^level,w 2^level) and info {"levels": {j: sample info for all B images, status "skipped"
    for images not run}, "lows": {j: low-pass at level j}, "calls", "status" (list of B, see _overall)}. If level is
    0 there is nothing to do: low is returned and info["levels"] is empty.
    """
    J = _levels(multiscale, "super_resolve")
    level = J if level is None else level
    _check("level", level, f"an int in 0..{J} (the model's levels)",
           lambda v: isinstance(v, numbers.Integral) and 0 <= v <= J)
    _check_tensor("low", low)
    _check("low", low, "a tensor (B,C,h,w)", lambda v: v.ndim == 4 and len(v) >= 1)
    settings = _level_params(dict(sigma0=sigma0, sigma_final=sigma_final, h0=h0, beta=beta), J, max_steps)
    gen = _generators(generator, len(low), low.device)
    run = dict(fixed_step=fixed_step, max_steps=max_steps, strict=strict, relative_stop=relative_stop)
    x, info = _refine(multiscale, low, level, gen, torch.ones(len(low), dtype=torch.bool), settings, run)
    info["status"] = _overall(info)["status"] if info["levels"] else ["converged"] * len(low)
    return x, info


def synthesize(multiscale, n, *, size, sigma0=1.0, sigma_final=0.01, h0=0.01, beta=0.1, fixed_step=False,
               generator=None, max_steps=10_000, strict=False, relative_stop=False):
    """Algorithm 2: n images (n,C,H,W), C = multiscale.low.in_channels (1 if it has none), size = H or (H,W)
    divisible by 2^levels. The low-pass (n,C,H/2^J,W/2^J) is drawn with Algorithm 1 from multiscale.low (initial
    mean 0.5), then super_resolve.
    sigma0, sigma_final, h0, beta: scalars, or sequences of levels+1 values indexed by level (0 finest conditional,
    J = levels is the low-pass); strict and relative_stop as in sample. Returns images and info as super_resolve, with
    info["levels"][J] for the low-pass; an image that diverges at a level is not refined further (result NaN,
    info["status"] "diverged").
    """
    J = _levels(multiscale, "synthesize", ("low", "conditionals", "levels"))
    _check("n", n, "a positive int", lambda v: isinstance(v, numbers.Integral) and v >= 1)
    _check("size", size, f"a positive int or (H, W) pair divisible by 2**levels = {2**J}",
           lambda v: all(isinstance(k, numbers.Integral) and k >= 1 and k % 2**J == 0
                         for k in ((v, v) if isinstance(v, numbers.Integral) else v)) and
           (isinstance(v, numbers.Integral) or len(v) == 2))
    H, W = (size, size) if isinstance(size, numbers.Integral) else size
    settings = _level_params(dict(sigma0=sigma0, sigma_final=sigma_final, h0=h0, beta=beta), J, max_steps)
    ref = next(itertools.chain(multiscale.low.parameters(), multiscale.low.buffers()), None)
    gen = _generators(generator, n, ref.device if ref is not None else "cpu")
    run = dict(fixed_step=fixed_step, max_steps=max_steps, strict=strict, relative_stop=relative_stop)
    channels = getattr(multiscale.low, "in_channels", 1)
    low, info_low = sample(multiscale.low, (n, channels, H >> J, W >> J), mean=0.5, generator=gen, **settings(J),
                           **run)
    ok = torch.tensor([s != "diverged" for s in info_low["status"]])
    x, info = _refine(multiscale, low, J, gen, ok, settings, run)
    info["levels"][J] = info_low
    info["calls"] += info_low["calls"]
    return x, _overall(info)
