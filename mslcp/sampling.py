"""Sampling from the prior implicit in a denoiser.

algorithm1 is Algorithm 1 (Kadkhodaie & Simoncelli 2021) on a batch; its pieces come in as functions: the residual
x_hat(y) - y (residual, which constrained wraps for measurements: inpainting, block_average, random_projection),
the step sizes (ascending, fixed), the noise draws and a callback. sample runs it from a denoiser; synthesize and
super_resolve are Algorithm 2, coarse to fine through a multi-scale model; stopping_level is where Algorithm 1
should stop for a flat net. Settings: the settings of a run; Info: what it did.

Batching: every image has its own sigma_t and stops on its own (converged, or at max_steps), or is flagged as
diverged while the others go on. t (and h_t) is the iteration count, common to the images still running. A stopped
image is no longer passed to the denoiser; its result x_hat(y_T) = y_T + d(y_T) comes from the batched call of the
next iteration, so an image costs steps + 1 denoiser evaluations.

Randomness: `generator` is a torch.Generator, an int seed, None (a seed from torch's global RNG: torch.manual_seed
makes runs reproducible), or a list of these, one per image. One generator: the batch draws its noise together, so
an image depends on its batch. One per image: image i draws only from its own stream and gets what it gets alone
(up to the float rounding of batched matrix products). Generators are consumed in place.
"""
import contextlib
import itertools
import math
import numbers
import warnings
from collections import namedtuple
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .data import check_images
from .wavelets import reconstruct

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


@dataclass
class Settings:
    """Algorithm 1's settings; sigma0, sigma_final, h0 and beta may be sequences of levels+1 values in Algorithm 2
    (index = level, 0 finest, J the low-pass). fixed_step: h_t = h0; relative_stop: stop as the authors' code,
    once sigma_t <= sigma_final std(y_t)."""
    sigma0: float = 1.0
    sigma_final: float = 0.01
    h0: float = 0.01
    beta: float = 0.1
    fixed_step: bool = False
    max_steps: int = 10_000
    relative_stop: bool = False

    def at(self, j=None, J=0):
        """-> the validated scalar settings of level j of J (j=None: a single run, sequences refused)."""
        per = {k: getattr(self, k) for k in ("sigma0", "sigma_final", "h0", "beta")}
        seq = [k for k, v in per.items() if isinstance(v, (list, tuple))] if j is not None else []
        for k in seq:
            if len(per[k]) != J + 1:
                raise ValueError(f"{k}: per-level values need levels+1 = {J + 1} entries (index = level, "
                                 f"{J} = low-pass), got {len(per[k])}")
            per[k] = per[k][j]
        where = f" (level {j})" if seq else ""
        s0 = per["sigma0"]
        _check("sigma0" + where, s0, "a finite number > 0", lambda v: 0 < float(v) < math.inf)
        _check("sigma_final" + where, per["sigma_final"], f"a number with 0 < sigma_final < sigma0 = {s0}",
               lambda v: 0 < float(v) < float(s0))
        _check("h0" + where, per["h0"], "a number with 0 < h0 <= 1", lambda v: 0 < float(v) <= 1)
        _check("beta" + where, per["beta"], "a number with 0 < beta <= 1", lambda v: 0 < float(v) <= 1)
        _check("max_steps", self.max_steps, "a positive integer", lambda v: float(v).is_integer() and v >= 1)
        return replace(self, **{k: float(v) for k, v in per.items()}, max_steps=int(self.max_steps))


@dataclass
class Info:
    """What a run of B images did. status (B): "converged", "max_steps" (result kept), "diverged" (result NaN) or
    "skipped" (not run at this level). Algorithm 1: steps (B,), sigma (B tensors sigma_1..sigma_T), trajectory
    (R,B,...) with record_every, failure (the first divergence). Algorithm 2: levels {j: Info}, lows {j: x_j}.
    """
    status: list
    calls: int = 0
    steps: torch.Tensor = None
    sigma: list = None
    trajectory: torch.Tensor = None
    failure: str = ""
    levels: dict = field(default_factory=dict)
    lows: dict = field(default_factory=dict)


def _check_tensor(name, v):
    """v: a floating-point tensor without NaN or inf (data.check_images: the library's rule for images)."""
    check_images(v, name, kind="any")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or inf values")


def _placement(denoiser, like=None, dtype=None):
    """-> (device, dtype) of a run, taken from its input: the denoiser's (first floating parameter or buffer of an
    nn.Module), else those of the tensor `like` (cond or m), else the cpu and dtype (default torch's)."""
    p = next((p for p in itertools.chain(denoiser.parameters(), denoiser.buffers()) if p.is_floating_point()),
             like) if isinstance(denoiser, nn.Module) else like
    return (torch.device("cpu"), dtype or torch.get_default_dtype()) if p is None else (p.device, p.dtype)


@contextlib.contextmanager
def _eval(denoiser):
    """Run an nn.Module in eval mode and give it back in the mode it was in."""
    training = getattr(denoiser, "training", False)
    if training:
        denoiser.eval()
    try:
        yield
    finally:
        if training:
            denoiser.train()


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


def ascending(h0):
    """The paper's step sizes h_t = h0 t / (1 + h0 (t-1)), t = 1, 2, ...: from h0 towards 1."""
    return lambda t: h0 * t / (1 + h0 * (t - 1))


def fixed(h0):
    """Fixed step sizes h_t = h0."""
    return lambda t: h0


def residual(denoiser, cond=None):
    """-> f(y, idx) = x_hat(y) - y for the running images y (A,...), idx (A,) their rows in the batch (the rows
    cond[idx] of a conditional denoiser, called denoiser(cond, y))."""
    def f(y, idx):
        x = denoiser(y) if cond is None else denoiser(cond[idx], y)
        if x.shape != y.shape:
            raise ValueError(f"denoiser returned shape {tuple(x.shape)} for input of shape {tuple(y.shape)}")
        return x - y
    return f


def constrained(f, measure, m):
    """f constrained to the measurements m = M^T x (B,K): (I - M M^T) f(y) + M (m - M^T y), measure = (M^T, M)."""
    def g(y, idx):
        r = f(y, idx)
        return r - measure.adjoint(measure.forward(r)) + measure.adjoint(m[idx] - measure.forward(y))
    return g


def _why(sigma, drift, sigma0, bound):
    return ("the denoiser returned non-finite values" if not torch.isfinite(sigma) else
            f"y drifted to rms {float(drift):.4g} from mean (limit {bound:g})" if sigma <= 10 * sigma0
            else f"sigma_t={float(sigma):.3g} > 10*sigma0={10 * sigma0:g}")


@torch.no_grad()
def algorithm1(f, y, noise, step, *, beta=0.1, sigma_final=0.01, max_steps=10_000, relative_stop=False,
               sigma0=1.0, mean=0.5, callback=None):
    """Algorithm 1 on a batch y (B,...) of initial noise y_0 (updated in place). f(y, idx): the residual
    x_hat(y) - y of the running images (residual, constrained); noise(idx): z (A,...) ~ N(0, I); step(t): h_t;
    callback(t, y) after every step. An image stops once sigma_t <= sigma_final (times std(y_t) with relative_stop)
    or at max_steps, and diverges (result NaN) if sigma_t is not finite or > 10 sigma0, or if y drifts further than
    10 max(sigma0, 1) (rms) from mean. -> images x_hat(y_T) (B,...) and Info (status, calls, steps, sigma)."""
    B, d, dev = len(y), y[0].numel(), y.device  # d: the dimension (pixels)
    bound = 10 * max(sigma0, 1.0)  # rms distance from mean beyond which y has run away
    out, sigmas, first = torch.full_like(y, math.nan), [], None
    steps = torch.zeros(B, dtype=torch.long, device=dev)
    stop = torch.zeros(B, dtype=torch.bool, device=dev)
    converged, failed = stop.clone(), stop.clone()
    active, t, calls = torch.arange(B, device=dev), 0, 0
    while len(active):
        ya = y[active]
        r = f(ya, active)  # the residual f(y_{t-1}) = x_hat(y_{t-1}) - y_{t-1}
        calls += 1
        sigma = r.flatten(1).norm(dim=1) / math.sqrt(d)  # sigma_t = ||f(y_{t-1})|| / sqrt(d)
        drift = (ya - mean).flatten(1).norm(dim=1) / math.sqrt(d)
        done, live = stop[active], ~stop[active]  # done: stopped at the last step; live: taking step t + 1
        bad = ~torch.isfinite(sigma) | (sigma > 10 * sigma0) | ~(drift <= bound)
        if bad.any():
            i = int(bad.nonzero()[0])
            first = first or f"image {int(active[i])}: {_why(sigma[i], drift[i], sigma0, bound)} at step {t + int(live[i])}"
            failed[active[bad]] = True
        out[active[done & ~bad]] = (ya + r)[done & ~bad]  # x_hat(y_T) = y_T + f(y_T)
        if live.any():
            t += 1
            sigmas.append(torch.full((B,), math.nan, device=dev, dtype=y.dtype))
            sigmas[-1][active[live]] = sigma[live]
            steps[active[live]] = t
        keep = live & ~bad
        active, ya, r, sigma = active[keep], ya[keep], r[keep], sigma[keep]
        if not len(active):
            break
        h = step(t)
        gamma = sigma * math.sqrt((1 - beta * h) ** 2 - (1 - h) ** 2)  # so that sigma_t shrinks by (1 - beta h)
        y[active] = ya + h * r + gamma.view(-1, *[1] * (y.dim() - 1)) * noise(active)
        scale = y[active].flatten(1).std(1) if relative_stop else 1.0  # (A,) or 1
        converged[active] = sigma <= sigma_final * scale
        stop[active] = converged[active] | (t >= max_steps)
        if callback:
            callback(t, y)
    S = torch.stack(sigmas, 1).cpu() if sigmas else torch.zeros(B, 0)
    status = ["diverged" if x else "converged" if c else "max_steps"
              for x, c in zip(failed.tolist(), converged.tolist())]
    return out, Info(status, calls, steps, [S[i, :k] for i, k in enumerate(steps.tolist())], failure=first or "")


@torch.no_grad()
def sample(denoiser, shape, *, generator=None, mean=None, cond=None, measure=None, m=None, record_every=None,
           dtype=None, settings=None, **kw):
    """Algorithm 1: shape[0] samples of shape[1:] (e.g. (B,C,H,W)) from the prior implicit in `denoiser`.

    y_0 ~ N(mean, sigma0^2 I), mean default 0.5 (0 with cond: detail bands), then algorithm1 with steps ascending
    from h0 (fixed if fixed_step). kw: the fields of Settings, or settings=Settings(...). cond (B,...): a conditional
    denoiser, called denoiser(cond, y). measure=(M^T, M) with orthonormal rows and m = M^T x (B,...): y_0's measured
    part starts at m, the residual is constrained and the result satisfies M^T x = m. An nn.Module runs in eval mode
    on its device and dtype; a plain function on those of cond or m, else on the cpu in dtype (default torch's).
    Returns images (shape) and Info; with record_every=k, info.trajectory (R,*shape): y_0 and y every k steps.
    """
    _check("shape", shape, "a sequence of positive ints (B, ...) of length >= 2",
           lambda s: len(s) >= 2 and all(isinstance(k, numbers.Integral) and k >= 1 for k in s))
    s = replace(settings or Settings(), **kw).at()
    _check("record_every", record_every, "None or a positive int",
           lambda v: v is None or isinstance(v, numbers.Integral) and v >= 1)
    B, rest = shape[0], tuple(shape[1:])
    if (measure is None) != (m is None):
        raise ValueError("a constrained run needs both measure=(M^T, M) and the measurements m")
    for name, v in (("cond", cond), ("m", m)):
        if v is not None:
            _check_tensor(name, v)
            if len(v) != B:
                raise ValueError(f"{name} has {len(v)} rows for {B} images")
    device, run_dtype = _placement(denoiser, cond if cond is not None else m, dtype)
    asked = None if dtype is None else torch.empty(0, dtype=dtype, device=device)
    for name, v in (("cond", cond), ("m", m), ("dtype=", asked)):
        if v is not None and (v.dtype != run_dtype or v.device.type != device.type):
            raise ValueError(f"{name} is {v.dtype} on {v.device} but the run is {run_dtype} on {device} (the "
                             "denoiser's, else cond's or m's): convert one to match")
    mean = (0.0 if cond is not None else 0.5) if mean is None else mean
    _check("mean", mean, f"a finite number or tensor broadcastable to {rest}",
           lambda v: torch.isfinite(torch.as_tensor(v)).all() and torch.broadcast_shapes(torch.as_tensor(v).shape,
                                                                                        rest) == rest)
    mean = torch.as_tensor(mean, device=device, dtype=run_dtype)
    gen = _generators(generator, B, device)
    y = mean + s.sigma0 * _randn(gen, range(B), rest, torch.empty(0, device=device, dtype=run_dtype))
    f = residual(denoiser, cond)
    if measure is not None:  # start the measured part at the measurements (as the authors' code)
        y = y + measure.adjoint(m - measure.forward(torch.zeros_like(y) + mean))
        f = constrained(f, measure, m)
    traj = [y.clone()] if record_every else None
    record = (lambda t, y: traj.append(y.clone()) if t % record_every == 0 else None) if record_every else None
    noise = lambda idx: _randn(gen, idx.tolist() if isinstance(gen, list) else idx, rest, y)  # noqa: E731
    with _eval(denoiser):
        x, info = algorithm1(f, y, noise, fixed(s.h0) if s.fixed_step else ascending(s.h0), beta=s.beta,
                             sigma_final=s.sigma_final, max_steps=s.max_steps, relative_stop=s.relative_stop,
                             sigma0=s.sigma0, mean=mean, callback=record)
    info.trajectory = torch.stack(traj) if record_every else None
    _report(info, s)
    return x, info


def _report(info, s):
    """Raise if every image diverged, else warn about the flagged images."""
    B, n_div, n_max = len(info.status), info.status.count("diverged"), info.status.count("max_steps")
    hint = "lower h0, raise beta or check the denoiser (noise range, mean, eval mode)"
    if n_div == B:
        raise RuntimeError(f"sampling diverged for {n_div} of {B} images (first: {info.failure}); {hint}")
    if n_div:
        warnings.warn(f"{n_div} of {B} images diverged and were stopped, their results are NaN (info.status); "
                      f"first: {info.failure}; {hint}")
    if n_max:
        warnings.warn(f"{n_max} of {B} images reached max_steps={s.max_steps} before sigma_final")
    if (quick := sum(st == "converged" and k == 1 for st, k in zip(info.status, info.steps.tolist()))):
        warnings.warn(f"{quick} of {B} images converged at their first step (sigma_1 <= sigma_final): the denoiser "
                      "barely changes its input, so the result is close to the initial noise")


def _widen(info, idx, B):
    """An Info for the images idx of a batch of B -> one for all B (status "skipped": not run)."""
    if len(idx) == B:
        return info
    pos = dict(zip(idx.tolist(), range(len(idx))))
    steps = info.steps.new_zeros(B)
    steps[idx.to(steps.device)] = info.steps
    return replace(info, status=[info.status[pos[i]] if i in pos else "skipped" for i in range(B)], steps=steps,
                   sigma=[info.sigma[pos[i]] if i in pos else torch.zeros(0) for i in range(B)])


def _refine(model, low, level, gen, ok, per, info):
    """Algorithm 2 from low (B,C,h,w) at `level` for the images where ok (B,) is True (the others stay NaN), with the
    settings per[j] of each level; fills info.levels, .lows and .calls. -> the images (B,C,h 2^level,w 2^level)."""
    info.lows[level] = low
    for j in reversed(range(level)):
        B, C, h, w = low.shape
        idx = ok.nonzero()[:, 0]
        g = [gen[i] for i in idx.tolist()] if isinstance(gen, list) else gen
        d, lev = sample(model.conditionals[j], (len(idx), 3 * C, h, w), cond=low[idx], mean=0.0, generator=g,
                        settings=per[j])
        details = low.new_full((B, 3 * C, h, w), math.nan)
        details[idx.to(low.device)] = d
        info.levels[j] = _widen(lev, idx, B)
        ok[idx] = torch.tensor([s != "diverged" for s in lev.status])
        low = info.lows[j] = reconstruct(low, [details], model.wavelet, model.normalize)
        info.calls += lev.calls
    return low


def _overall(info):
    """info.status (B): "diverged" if the image diverged at some level (it is not refined further and its result is
    NaN), else "max_steps" if some level reached max_steps (refined further), else "converged"."""
    if info.levels:
        info.status = ["diverged" if "diverged" in s else "max_steps" if "max_steps" in s else "converged"
                       for s in zip(*(lev.status for lev in info.levels.values()))]
    return info


def _levels(model, fn, need=("conditionals", "levels")):
    """model.levels, or TypeError if it is not a multi-scale model (it lacks an attribute of `need`)."""
    if not all(hasattr(model, k) for k in need):
        raise TypeError(f"{fn}: model must be a multi-scale model (multiscale.MultiScaleDenoiser: .low, "
                        f".conditionals, .levels), got {type(model).__name__}; sample() draws from a flat denoiser")
    return model.levels


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
    x = images.to(*_placement(denoiser, images))
    with _eval(denoiser):
        r = residual(denoiser)(x, None)
    floor = float((r.flatten(1).norm(dim=1) / math.sqrt(r[0].numel())).mean())
    if not math.isfinite(floor):
        raise ValueError("stopping_level: the denoiser returned NaN or inf on the clean images")
    return max(float(minimum), float(factor) * floor)


def super_resolve(model, low, *, level=None, generator=None, **settings):
    """Algorithm 2 from a given low-pass `low` (B,C,h,w) at `level` (0..levels, default model.levels): for
    j = level-1..0 sample the details (B,3C,h,w) from model.conditionals[j] given low, then low <- the level-j
    low-pass. settings: the fields of Settings, sigma0, sigma_final, h0, beta also per level (see synthesize).
    An image that diverges at a level is not refined further (its result is NaN); one that reaches max_steps is.
    Returns images (B,C,h 2^level,w 2^level) and Info: levels {j: Info for all B images, status "skipped" for images
    not run}, lows {j: low-pass at level j}, calls, status (see _overall). If level is 0 there is nothing to do: low
    is returned and info.levels is empty.
    """
    J = _levels(model, "super_resolve")
    level = J if level is None else level
    _check("level", level, f"an int in 0..{J} (the model's levels)",
           lambda v: isinstance(v, numbers.Integral) and 0 <= v <= J)
    _check_tensor("low", low)
    _check("low", low, "a tensor (B,C,h,w)", lambda v: v.ndim == 4 and len(v) >= 1)
    per = [Settings(**settings).at(j, J) for j in range(J + 1)]  # every level validated up front
    gen = _generators(generator, len(low), low.device)
    info = Info(["converged"] * len(low))
    x = _refine(model, low, level, gen, torch.ones(len(low), dtype=torch.bool), per, info)
    return x, _overall(info)


def synthesize(model, n, *, size, generator=None, **settings):
    """Algorithm 2: n images (n,C,H,W), C = model.low.in_channels (1 if it has none), size = H or (H,W) divisible by
    2^levels. The low-pass (n,C,H/2^J,W/2^J) is drawn with Algorithm 1 from model.low (initial mean 0.5), then
    super_resolve. settings: the fields of Settings, where sigma0, sigma_final, h0, beta may be sequences of
    levels+1 values indexed by level (0 finest conditional, J = levels the low-pass). Returns images and Info as
    super_resolve, with info.levels[J] for the low-pass; an image that diverges at a level is not refined further
    (result NaN, info.status "diverged").
    """
    J = _levels(model, "synthesize", ("low", "conditionals", "levels"))
    _check("n", n, "a positive int", lambda v: isinstance(v, numbers.Integral) and v >= 1)
    _check("size", size, f"a positive int or (H, W) pair divisible by 2**levels = {2**J}",
           lambda v: all(isinstance(k, numbers.Integral) and k >= 1 and k % 2**J == 0
                         for k in ((v, v) if isinstance(v, numbers.Integral) else v)) and
           (isinstance(v, numbers.Integral) or len(v) == 2))
    H, W = (size, size) if isinstance(size, numbers.Integral) else size
    per = [Settings(**settings).at(j, J) for j in range(J + 1)]  # every level validated up front
    gen = _generators(generator, n, _placement(model.low)[0])
    channels = getattr(model.low, "in_channels", 1)
    low, info_low = sample(model.low, (n, channels, H >> J, W >> J), mean=0.5, generator=gen, settings=per[J])
    info = Info(info_low.status, calls=info_low.calls)
    x = _refine(model, low, J, gen, torch.tensor([s != "diverged" for s in info_low.status]), per, info)
    info.levels[J] = info_low
    return x, _overall(info)
