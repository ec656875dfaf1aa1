"""Training blind denoisers (flat, low-pass and conditional) with MSE, Adam and resumable checkpoints.

In named parts: `TrainConfig` (the settings, checked once; a checkpoint stores them), `get_batch` (the examples and
noise of one step, a function of the data, the configuration and the step), `learning_rate`, `evaluate` (PSNR per σ:
`metrics.denoising_psnr`), `save_checkpoint` and `load_checkpoint`; `train` is the loop that calls them.
"""
import copy
import dataclasses
import hashlib
import math
import numbers
import os
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as dist_model
from tqdm.auto import tqdm

from . import multiscale
from .data import check_images
from .metrics import denoising_psnr


def _mix(seed: int, step: int) -> int:
    # Per-step RNG seed: the random draws of step s depend only on (seed, s), so a resumed run needs
    # no generator state in the checkpoint (and resumes on any device). 32 bits: CPU mt19937 uses no more.
    return (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + 1) % 2**32


def _sigmas(u, lo, hi, log):
    """Map uniforms u in [0,1) to noise levels: uniform on [lo, hi], or log-uniform (log=True, lo > 0)."""
    return lo * (hi / lo) ** u if log else lo + (hi - lo) * u


def _quadratic_sigmas(u, lo, hi):
    """Map uniforms u in [0,1) to the released code's quadratic noise levels: σ = (k/255)², k a uniform integer in
    [round(255 √lo), round(255 √hi)) (k = round(255 √lo) if the two are equal). For sigma_range (0, 1): k in
    0..254, as `add_noise_torch(..., quadratic=True)` of the authors' code/dataloader_func.py draws it (their
    torch.randint(0, 255)); density ∝ σ^(-1/2), P(σ <= s) ≈ √s."""
    a, b = round(255 * math.sqrt(lo)), round(255 * math.sqrt(hi))
    return ((a + ((b - a) * u).floor()) / 255) ** 2


def examples(images, level=None, levels=None, wavelet="haar", normalize="average"):
    """What a model of `level` trains on, from images (B,C,H,W) (float in [0,1] or uint8): level None -> the
    images; "low" -> x_J (B,C,H/2^J,W/2^J), J = levels; level j -> [x_{j+1}, x̄_j] (B,4C,H/2^(j+1),W/2^(j+1))."""
    if level is None:
        return images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if level == "low":
        return multiscale.lowpass_data(images, levels, wavelet, normalize)
    return multiscale.training_data(images, level, wavelet, normalize)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or inf (the run failed; nothing was saved for that window)."""


def check_sigmas(name, value):
    """A non-empty list of finite noise levels >= 0, else ValueError naming `name` (a bare number is refused)."""
    ok = isinstance(value, (tuple, list)) and len(value) >= 1 and all(
        _real(v) and 0 <= v < math.inf for v in value)
    if not ok:
        raise ValueError(f"{name} must be a non-empty list of noise levels >= 0, got {value!r:.80}"
                         + (f": write [{value}]" if isinstance(value, numbers.Real) else ""))
    return list(value)


def check_int(name, value, low):
    """value, or ValueError naming `name` unless it is an int (not a bool) >= low."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _fingerprint(data):
    """Shape, dtype and a checksum of up to 2^20 evenly spaced elements of data (cheap for any size)."""
    flat, k = data.reshape(-1), min(data.numel(), 2**20)
    sample = flat[(torch.arange(k, device=data.device) * (len(flat) - 1) // max(k - 1, 1))]  # int64: exact
    digest = hashlib.sha256(sample.cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    return [list(data.shape), str(data.dtype).removeprefix("torch."), digest]


@dataclasses.dataclass
class TrainConfig:
    """The settings of a training run (`train`'s keywords), checked when made; a checkpoint stores asdict(config).

    level, what the model learns: None (flat: the data are the examples), "low" (the low-pass x_J of images, J =
    levels) or a wavelet level j (the conditional denoiser of x̄_j given x_{j+1}; wavelet, normalize: those of
    `wavelets.decompose`). σ ~ U(sigma_range), log-uniform (log_sigma, low > 0) or the authors' released draw
    (quadratic_sigma). patch_size: random crops (None: whole images). lr, or a cosine to lr_end (`learning_rate`).
    Every eval_every steps the loss is logged and the test data evaluated at test_sigmas, every checkpoint_every
    steps a checkpoint written. seed: every random draw (`get_batch`). amp (CUDA only): bf16 or fp16 autocast."""
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    lr_end: float = None
    sigma_range: tuple = (0.0, 1.0)
    log_sigma: bool = False
    quadratic_sigma: bool = False
    patch_size: int = None
    level: object = None
    levels: int = None
    wavelet: str = "haar"
    normalize: str = "average"
    test_sigmas: tuple = (0.05, 0.1, 0.2, 0.4)
    eval_every: int = 100
    checkpoint_every: int = 500
    seed: int = 0
    amp: bool = False

    def __post_init__(self):
        for name, low in (("steps", 0), ("batch_size", 1), ("eval_every", 1), ("checkpoint_every", 1), ("seed", 0)):
            check_int(name, getattr(self, name), low)
        self.patch_size = None if self.patch_size is None else check_int("patch_size", self.patch_size, 1)
        ok = isinstance(pair := self.sigma_range, (tuple, list)) and len(pair) == 2
        if not (ok and all(_real(v) and math.isfinite(v) for v in pair)):
            raise ValueError(f"sigma_range must be a pair (low, high) of finite numbers, got {pair!r:.80}")
        lo, hi = self.sigma_range = [float(v) for v in pair]
        if not 0 <= lo <= hi or self.log_sigma and lo == 0:
            raise ValueError(f"sigma_range must satisfy 0 <= low <= high, and with log_sigma low > 0, got {(lo, hi)}")
        log, quad = self.log_sigma, self.quadratic_sigma
        if any(v not in (True, False) for v in (log, quad)) or log and quad:
            raise ValueError(f"log_sigma and quadratic_sigma must be True or False, two ways to draw σ: at most one "
                             f"True, got {log!r}, {quad!r}")
        lr, end, j = self.lr, self.lr_end, self.level
        if not (_real(lr) and lr > 0 and (end is None or _real(end) and 0 <= end <= lr)):
            raise ValueError(f"lr and lr_end must be numbers, lr > 0 and 0 <= lr_end <= lr (lr_end None: constant), "
                             f"got lr={lr!r}, lr_end={end!r}")
        if not (j is None or j == "low" or _real(j) and isinstance(j, int) and j >= 0):
            raise ValueError(f"level must be None (flat), 'low' or a wavelet level j >= 0, got {j!r}")
        self.levels = check_int("levels", self.levels, 1) if j == "low" else None  # J matters to the low-pass only
        self.test_sigmas = check_sigmas("test_sigmas", self.test_sigmas)

    @property
    def align(self):
        """Crop alignment in pixels: whole wavelet blocks (1 flat, 2^J low-pass, 2^(j+1) level j)."""
        return 1 if self.level is None else 2**self.levels if self.level == "low" else 2 ** (self.level + 1)


def _real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


_FREE = {"test_sigmas", "eval_every", "checkpoint_every", "amp"}  # how a run is watched, not what it computes


def changed(old, new):
    """What differs between settings old and new (asdict(TrainConfig), "data") that a resume may not change ->
    [(name, old, new)]; steps only with lr_end. Older checkpoints: the level was `scale`, quadratic_sigma if True."""
    old = {"quadratic_sigma": False, "level": old.get("scale"), **old}
    free = _FREE | ({"steps"} if new.get("lr_end") is None else set())
    return [(k, old.get(k), v) for k, v in new.items() if k not in free and old.get(k) != v]


def _layout(model, config, data, test_data):
    """Check model, configuration and data against each other -> (in_channels, out_channels)."""
    cin, cout = getattr(model, "in_channels", None), getattr(model, "out_channels", None)
    if cin is None or cout is None or cin < cout:
        raise ValueError(f"model needs in_channels >= out_channels attributes, got {cin}, {cout}")
    level, align, channels = config.level, config.align, cin
    if isinstance(level, int):
        channels = cin // 4
        if cin != 4 * cout // 3 or cout % 3:
            raise ValueError(f"level={level} trains a conditional model (in = 4C, out = 3C channels), got a model "
                             f"with {cin} -> {cout}")
    for name, d in [("data", data)] + ([("test_data", test_data)] if test_data is not None else []):
        # the library's rule for images (data.check_images): examples of a flat model need not be images (points,
        # coefficients), but the 0..255 scale is refused, where sigma_range would be 1/255 of what was meant
        check_images(d, name, kind="examples" if level is None else "images", uint8=True)
        if d.dim() != 4 or d.shape[1] != channels or len(d) == 0:
            raise ValueError(f"{name} must be (N, {channels}, H, W) for a model with in_channels={cin} and "
                             f"level={level!r}, got shape {tuple(d.shape)}")
        if d.shape[2] % align or d.shape[3] % align:
            raise ValueError(f"{name}: images {d.shape[2]}x{d.shape[3]} are not divisible by 2^(levels) = {align} "
                             f"for level={level!r}")
    H, W, p = *data.shape[2:], config.patch_size
    if p is not None and (p > H or p > W or p % align):
        raise ValueError(f"patch_size {p} must be at most the {H}x{W} images and a multiple of {align} for "
                         f"level={level!r} (crops aligned to the wavelet blocks)")
    return cin, cout


def get_batch(data, config, step, out_channels=None, device=None, part=slice(None)):
    """The batch of training step `step` (0-based) -> (x, noisy, sigma): clean examples x (B, in, h, w) (random
    crops aligned to the wavelet blocks, as `examples`: a conditional model's condition, then its target, the last
    out_channels channels; default 3C for a level, else all), the noisy target (B, out, h, w) and σ (B, 1, 1, 1).
    A function of its arguments: the draws come from a generator seeded by (config.seed, step) on `device`
    (default the data's). part: the slice of the batch to return (each process of a distributed run its own)."""
    device = data.device if device is None else torch.device(device)
    N, C, H, W = data.shape
    ph, pw = (H, W) if config.patch_size is None else (config.patch_size, config.patch_size)
    align, (lo, hi), B = config.align, config.sigma_range, config.batch_size
    draw = dict(generator=torch.Generator(device).manual_seed(_mix(config.seed, step)), device=device)
    idx = torch.randint(N, (B, 1, 1), **draw)[part]
    rows = torch.randint((H - ph) // align + 1, (B, 1, 1), **draw)[part] * align
    cols = torch.randint((W - pw) // align + 1, (B, 1, 1), **draw)[part] * align
    u = torch.rand(B, 1, 1, 1, **draw)
    sigma = (_quadratic_sigmas(u, lo, hi) if config.quadratic_sigma else _sigmas(u, lo, hi, config.log_sigma))[part]
    rows = rows + torch.arange(ph, device=device).view(1, -1, 1)
    cols = cols + torch.arange(pw, device=device).view(1, 1, -1)
    x = data[idx.to(data.device), :, rows.to(data.device), cols.to(data.device)].permute(0, 3, 1, 2)
    x = examples(x.to(device, non_blocking=True), config.level, config.levels, config.wavelet, config.normalize)
    x = x.contiguous(memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    out = out_channels or (3 * C if isinstance(config.level, int) else x.shape[1])
    noise = torch.randn((B, out, *x.shape[2:]), **draw)[part]
    return x, x[:, x.shape[1] - out:] + sigma * noise, sigma  # noise on the target channels only


def evaluate(model, clean, out_channels, config, autocast=None):
    """Mean PSNR (dB) of model's estimate of the target (the last out_channels channels of the clean examples, the
    others its condition) at each test σ: `metrics.denoising_psnr` with config's seed and batch_size."""
    k = clean.shape[1] - out_channels
    model.eval()
    with torch.autocast(clean.device.type, autocast or torch.bfloat16, enabled=autocast is not None):
        table = denoising_psnr({"model": model}, clean[:, k:], config.test_sigmas, seed=config.seed,
                               cond=clean[:, :k] if k else None, batch_size=config.batch_size)
    model.train()
    return table["model"]


def save_checkpoint(path, model, opt, scaler, step, history, window, settings):
    """Write a training checkpoint atomically: model, Adam, scaler, step, history, loss window, settings."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
             "step": step, "history": history, "window": [window[0].cpu(), window[1]], "settings": settings}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
    except OSError as e:
        raise OSError(f"cannot write the checkpoint {path}: {e}") from None


def load_checkpoint(path, model, opt, scaler, settings):
    """Restore model, opt and scaler from a checkpoint of save_checkpoint (or of earlier versions) -> (step, history,
    window); refused if it is not one, or if its settings differ from `settings` (`changed`), naming them."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        keys = {"model", "optimizer", "scaler", "step", "history", "window"}
        why = None if isinstance(ck, dict) and keys <= ck.keys() else "not a training checkpoint"
    except Exception as e:  # truncated, a safetensors or other foreign file: torch's advice does not apply
        why = type(e).__name__
    if why:
        raise RuntimeError(f"cannot resume from {path} ({why}): it is not a complete checkpoint of "
                           "mslcp.train.train; delete it to restart")
    # checkpoints written before settings were stored: not checked
    if diff := changed(ck["settings"], settings) if "settings" in ck else []:
        raise ValueError(f"checkpoint {path} was written with other settings "
                         f"({'; '.join(f'{k} {a!r} -> {b!r}' for k, a, b in diff)}): pass the same settings to "
                         "resume, or delete it to restart")
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise RuntimeError(f"checkpoint {path} does not match the model: {e}") from None
    fused = opt.param_groups[0].get("fused")
    opt.load_state_dict(ck["optimizer"])
    for group in opt.param_groups:  # a checkpoint of another device: this device's Adam
        group["fused"] = fused
    if ck["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(ck["scaler"])
    return ck["step"], ck["history"], [ck["window"][0].to(next(model.parameters()).device), ck["window"][1]]


def _backward(net, x, noisy, opt, scaler, autocast):
    """The loss of a batch (x: clean condition then target, as get_batch gives it), its gradients in .grad."""
    k = x.shape[1] - noisy.shape[1]
    with torch.autocast(x.device.type, autocast or torch.bfloat16, enabled=autocast is not None):
        out = net(x[:, :k], noisy) if k else net(noisy)
    loss = F.mse_loss(out.float(), x[:, k:])
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    return loss


def _mean_loss(window, world, step, lr):
    """The mean loss of the window [sum, count] (over every process), or TrainingDiverged if it is not finite."""
    if world > 1:  # the mean over the whole batch, as one process would log it
        dist.all_reduce(window[0])
        window[0] /= world
    mean = window[0].item() / window[1]
    if not math.isfinite(mean):
        raise TrainingDiverged(f"training loss is {mean} around step {step} (learning rate {lr} too high? NaN in "
                               "the model?); nothing was saved for this window")
    return mean


def train(model, data, config=None, *, test_data=None, checkpoint=None, device=None, compile=False, progress=True,
          **settings):
    """Train a blind denoiser in place with MSE on x̂ and Adam; returns the history (dict of lists).

    config: a TrainConfig, whose fields the keywords `settings` may give or override (train(model, data, steps=9)).
    data: (N, C, H, W), float in [0, 1] or uint8 (divided by 255 per batch), checked by `data.check_images`
    (images for the levels "low" and j; examples, which may be points or coefficients, for None). A model with
    in_channels > out_channels is conditional, called model(cond, noisy) (`get_batch`); else model(noisy). Every
    eval_every steps the history gets the mean loss ('step', 'loss') and, with test_data (like data), the PSNR
    per test σ ('test_step', 'test_psnr': one list per evaluation; `evaluate`). checkpoint: a path written at step 0
    (an unwritable one fails before any work), every checkpoint_every steps and at the end; if it exists the run
    resumes from it, bit-identical to an uninterrupted run on the same device (other settings, `changed`, or
    data are refused). device: default the model's. compile: torch.compile(model), or the model with a warning
    where that fails. On CUDA the data move to the device if they take at most a quarter of its free memory and
    Adam is fused: a step never waits for the host. Under torchrun each rank draws the same batch and computes its
    slice (DistributedDataParallel); rank 0 evaluates and saves. The model is returned in eval mode."""
    if bad := sorted(set(settings) - set(fields := TrainConfig.__dataclass_fields__)):
        raise TypeError(f"train: unknown settings {bad} (the level, once `scale`, is `level`): choose from {[*fields]}")
    c = dataclasses.replace(config, **settings) if config is not None else TrainConfig(**settings)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    cin, cout = _layout(model, c, data, test_data)
    ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if c.batch_size % world:
        raise ValueError(f"batch_size {c.batch_size} must be divisible by the number of processes {world}")
    mine = slice(rank * c.batch_size // world, (rank + 1) * c.batch_size // world)  # this rank's part of a batch
    settings = {**dataclasses.asdict(c), "data": _fingerprint(data)}
    cuda = device.type == "cuda"
    autocast = (torch.bfloat16 if torch.cuda.is_bf16_supported(False) else torch.float16) if c.amp and cuda else None
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model.to(device, memory_format=fmt)
    if cuda and data.device != device and data.nbytes <= torch.cuda.mem_get_info(device)[0] // 4:
        data = data.to(device)  # crops are then gathered on the device
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, fused=cuda)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)
    start, window = 0, [torch.zeros((), device=device), 0]
    history = {"step": [], "loss": [], "test_step": [], "test_psnr": [], "test_sigmas": c.test_sigmas}
    if checkpoint is not None and Path(checkpoint).exists():
        start, history, window = load_checkpoint(checkpoint, model, opt, scaler, settings)
    if ddp:
        dist.barrier()  # every rank has read the checkpoint before rank 0 writes one
    if checkpoint is not None and start == 0 and rank == 0:
        save_checkpoint(checkpoint, model, opt, scaler, 0, history, window, settings)
    clean = None  # the test examples
    if test_data is not None and rank == 0:
        clean = torch.cat([examples(x.to(device), c.level, c.levels, c.wavelet, c.normalize)
                           for x in test_data.split(256)]).contiguous(memory_format=fmt)
    net = dist_model(model, device_ids=[device.index] if cuda else None) if ddp else model
    eager, net = net, _compiled(net) if compile else net
    model.train()
    bar = tqdm(total=c.steps, initial=min(start, c.steps), disable=not progress or rank > 0, desc="train")
    for step in range(start, c.steps):
        for group in opt.param_groups:  # a function of the step only: a resumed run follows the same schedule
            group["lr"] = learning_rate(step, c.steps, c.lr, c.lr_end)
        x, noisy, _ = get_batch(data, c, step, cout, device, mine)
        try:
            loss = _backward(net, x, noisy, opt, scaler, autocast)
        except Exception as e:  # torch.compile compiles at the first forward and backward: train without it
            if net is eager or step > start:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); training without compiling")
            net = eager
            loss = _backward(net, x, noisy, opt, scaler, autocast)
        scaler.step(opt)
        scaler.update()
        window = [window[0] + loss.detach(), window[1] + 1]
        s = step + 1
        log = s % c.eval_every == 0 or s == c.steps
        ckpt = checkpoint is not None and (s % c.checkpoint_every == 0 or s == c.steps)
        if log or ckpt:
            mean = _mean_loss(window, world, s, c.lr)
        if log:
            psnr = evaluate(model, clean, cout, c, autocast) if clean is not None else []
            if any(math.isnan(v) for v in psnr):
                raise TrainingDiverged(f"the model's outputs on the test data are NaN at step {s} (learning rate "
                                       f"{c.lr} too high?); nothing was saved for this window")
            history["step"].append(s)
            history["loss"].append(mean)
            if clean is not None:
                history["test_step"].append(s)
                history["test_psnr"].append(psnr)
            window = [torch.zeros((), device=device), 0]
            bar.set_postfix(loss=mean, psnr="/".join(f"{v:.1f}" for v in psnr))
        if ckpt and rank == 0:
            save_checkpoint(checkpoint, model, opt, scaler, s, history, window, settings)
        bar.update(1)
    bar.close()
    model.to(memory_format=torch.contiguous_format).eval()
    return history


def _compiled(net):
    """torch.compile(net), or net with a warning where that fails (errors at the first call: caught in train)."""
    try:
        return torch.compile(net)
    except Exception as e:
        warnings.warn(f"torch.compile unavailable ({type(e).__name__}: {e}); training without compiling")
        return net


def learning_rate(step, steps, lr, lr_end=None):
    """The learning rate of `train` at step (0-based) of steps: lr, or a cosine from lr (step 0) to lr_end."""
    if lr_end is None or steps <= 1:
        return lr
    return lr_end + (lr - lr_end) * (1 + math.cos(math.pi * step / (steps - 1))) / 2


def throughput(model, patch_size=40, batch_size=64, steps=10, device=None, amp=False, compile=False) -> float:
    """Training speed in images/s of a copy of `model` on random (batch_size, in, patch, patch) data."""
    model = copy.deepcopy(model)
    data = torch.rand(batch_size, model.in_channels, patch_size, patch_size)
    kw = dict(batch_size=batch_size, device=device, amp=amp, compile=compile, progress=False, eval_every=10**9)
    train(model, data, steps=3, **kw)  # warm-up (allocator, cuDNN autotuning, compiling: cached per architecture)
    t = time.perf_counter()
    train(model, data, steps=steps, **kw)  # ends with .item(): synchronized
    return steps * batch_size / (time.perf_counter() - t)
