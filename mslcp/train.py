"""Training blind denoisers (flat, low-pass and conditional) with MSE, Adam and resumable checkpoints."""
import copy
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
from tqdm.auto import tqdm

from . import multiscale
from .data import check_images
from .metrics import psnr


def _mix(seed: int, step: int) -> int:
    # Per-step RNG seed: the random draws of step s depend only on (seed, s), so a resumed run needs
    # no generator state in the checkpoint (and resumes on any device). 32 bits: CPU mt19937 uses no more.
    return (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + 1) % 2**32


def _split(net, k, x, sigma, noise):
    """x = [cond, target] (cond: the first k channels, none for a flat model) -> (target, net's estimate of it)."""
    target = x[:, k:]
    noisy = target + sigma * noise  # noise only on the target channels
    return target, (net(x[:, :k], noisy) if k else net(noisy))


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


def _float(x):
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def examples(images, scale=None, levels=None, wavelet="haar", normalize="average"):
    """What a model of `scale` trains on, from images (B,C,H,W) (float in [0,1] or uint8): scale None -> the
    images; "low" -> x_J (B,C,H/2^J,W/2^J), J = levels; level j -> [x_{j+1}, x̄_j] (B,4C,H/2^(j+1),W/2^(j+1))."""
    if scale is None:
        return _float(images)
    if scale == "low":
        return multiscale.lowpass_data(images, levels, wavelet, normalize)
    return multiscale.training_data(images, scale, wavelet, normalize)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or inf (the run failed; nothing was saved for that window)."""


def _pair(name, value):
    """(low, high) from a pair of finite numbers, else ValueError naming `name`."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise ValueError(f"{name} must be a pair (low, high) of finite numbers, got {value!r:.80}")
    return float(value[0]), float(value[1])


def check_sigmas(name, value):
    """A non-empty list of finite noise levels >= 0, else ValueError naming `name` (a bare number is refused)."""
    ok = isinstance(value, (tuple, list)) and len(value) >= 1 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < math.inf for v in value)
    if not ok:
        raise ValueError(f"{name} must be a non-empty list of noise levels >= 0, got {value!r:.80}"
                         + (f": write [{value}]" if isinstance(value, numbers.Real) else ""))
    return list(value)


def check_int(name, value, low):
    """Raise ValueError naming `name` unless value is an int (not a bool) >= low."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _fingerprint(data):
    """Shape, dtype and a checksum of up to 2^20 evenly spaced elements of data (cheap for any size)."""
    flat, k = data.reshape(-1), min(data.numel(), 2**20)
    sample = flat[(torch.arange(k, device=data.device) * (len(flat) - 1) // max(k - 1, 1))]  # int64: exact
    digest = hashlib.sha256(sample.cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    return [list(data.shape), str(data.dtype).removeprefix("torch."), digest]


def _load(path):
    """A checkpoint written by train(), or an error that names the file and says how to restart."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(ck, dict) and {"model", "optimizer", "scaler", "step", "history", "window"} <= ck.keys()
    except Exception as e:  # truncated, a safetensors or other foreign file: torch's advice does not apply
        ok, why = False, type(e).__name__
    else:
        why = "not a training checkpoint"
    if not ok:
        raise RuntimeError(f"cannot resume from {path} ({why}): it is not a complete checkpoint of "
                           "mslcp.train.train; delete it to restart")
    return ck


def _layout(model, scale, levels, data, test_data):
    """Check model, scale and data against each other -> (in_channels, out_channels, crop alignment in pixels)."""
    cin, cout = getattr(model, "in_channels", None), getattr(model, "out_channels", None)
    if cin is None or cout is None or cin < cout:
        raise ValueError(f"model needs in_channels >= out_channels attributes, got {cin}, {cout}")
    if scale is None:
        align, channels = 1, cin
    elif scale == "low":
        check_int("levels", levels, 1)
        align, channels = 2**levels, cin
    elif isinstance(scale, int) and not isinstance(scale, bool) and scale >= 0:
        align, channels = 2 ** (scale + 1), cin // 4
        if cin != 4 * cout // 3 or cout % 3:
            raise ValueError(f"scale={scale} trains a conditional model (in = 4C, out = 3C channels), got a model "
                             f"with {cin} -> {cout}")
    else:
        raise ValueError(f"scale must be None (flat), 'low' or a wavelet level j >= 0, got {scale!r}")
    for name, d in (("data", data), ("test_data", test_data)):
        if d is None:
            continue
        # the library's rule for images (data.check_images): examples of a flat model need not be images (points,
        # coefficients), but the 0..255 scale is refused, where sigma_range would be 1/255 of what was meant
        check_images(d, name, kind="examples" if scale is None else "images", uint8=True)
        if d.dim() != 4 or d.shape[1] != channels or len(d) == 0:
            raise ValueError(f"{name} must be (N, {channels}, H, W) for a model with in_channels={cin} and "
                             f"scale={scale!r}, got shape {tuple(d.shape)}")
        if d.shape[2] % align or d.shape[3] % align:
            raise ValueError(f"{name}: images {d.shape[2]}x{d.shape[3]} are not divisible by 2^(levels) = {align} "
                             f"for scale={scale!r}")
    return cin, cout, align


def train(model, data, *, steps, batch_size=64, lr=1e-3, lr_end=None, sigma_range=(0.0, 1.0), log_sigma=False,
          patch_size=None, scale=None, levels=None, wavelet="haar", normalize="average", test_data=None,
          test_sigmas=(0.05, 0.1, 0.2, 0.4), eval_every=100, checkpoint=None, checkpoint_every=500, device=None,
          amp=False, compile=False, seed=0, progress=True, quadratic_sigma=False):
    """Train a blind denoiser in place with MSE on x̂ and Adam; returns the history (dict of lists).

    data: (N, C, H, W), float in [0, 1] or uint8 (0..255, divided by 255 per batch); other integer tensors and
    images on the 0..255 scale are refused with the fix (`data.check_images`: images for the scales "low" and j,
    examples, which may be points or coefficients, for None). What the model learns is `scale`:
    None: data are the examples themselves (C = model.in_channels); "low": data are images and the model
    denoises their low-pass x_J (J = levels); level j (int): data are images and the model is the
    conditional denoiser of x̄_j given x_{j+1} (`examples`; wavelet and normalize as `wavelets.decompose`).
    Coefficients are computed per batch on the device, from crops aligned to the wavelet blocks. If
    model.in_channels > model.out_channels the model is conditional: the first in-out channels of an
    example are the clean condition, the last out_channels the target, called model(cond, noisy); else
    model(noisy). Each example gets σ ~ U(sigma_range) (the paper's choice), or with log_sigma
    log σ ~ U(log sigma_range) (needs low > 0: as many examples per octave at small σ as at large, which
    the mean squared error would otherwise neglect), or with quadratic_sigma the authors' released
    draw, σ = (k/255)² with k a uniform integer (`_quadratic_sigmas`: density ∝ σ^(-1/2), median about
    0.25 on (0, 1)), and a random patch_size crop of the data (None:
    whole images). The learning rate is lr throughout, or with lr_end a cosine from lr at step 0 to lr_end
    at the last step (`learning_rate`). Every eval_every steps the history gets the mean loss of the window
    ('step', 'loss') and, with test_data (like data), the mean PSNR (dB) of the target at each of
    test_sigmas on a fixed noisy copy ('test_step', 'test_psnr': one list per evaluation).

    checkpoint: path written atomically at step 0 (so an unwritable path fails before any work, and a run
    interrupted before its first save restarts from the initial weights), every checkpoint_every steps and
    at the end. If it exists the run resumes from it (bit-identical to an uninterrupted run on the same
    device), and if it is already at >= steps the model gets its weights and its history is returned without
    training. The checkpoint stores the run's settings (seed, learning-rate schedule, batch, patch, σ range
    and sampling, scale, data fingerprint); a resume with other settings is refused.
    device: default the model's; amp (CUDA only): bfloat16 autocast where supported, else float16
    with a GradScaler. compile: the training step runs torch.compile(model) (once per architecture: about
    20-60 s, then fused batch-norm/ReLU kernels), or the model itself, with a warning, where compiling
    fails (no compiler, an old GPU). On CUDA the data are moved to the device when they take at most a
    quarter of its free memory, the random draws are made there and Adam is fused, so that a step never
    waits for the host. The model is trained in train mode and returned in eval mode.

    Under torchrun (torch.distributed initialized) the model is wrapped in DistributedDataParallel: every
    rank draws the same global batch of batch_size examples and computes its own slice, so N ranks compute
    what one process computes; rank 0 alone evaluates and writes the checkpoint.
    """
    check_int("steps", steps, 0)
    for name, value in (("batch_size", batch_size), ("eval_every", eval_every),
                        ("checkpoint_every", checkpoint_every)):
        check_int(name, value, 1)
    if patch_size is not None:
        check_int("patch_size", patch_size, 1)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    cin, cout, align = _layout(model, scale, levels, data, test_data)
    N, _, H, W = data.shape
    ph, pw = (H, W) if patch_size is None else (patch_size, patch_size)
    if ph > H or pw > W:
        raise ValueError(f"patch_size {patch_size} is larger than the {H}x{W} images")
    if ph % align:
        raise ValueError(f"patch_size {patch_size} must be a multiple of {align} for scale={scale!r} "
                         "(crops aligned to the wavelet blocks)")
    lo, hi = _pair("sigma_range", sigma_range)
    if not 0 <= lo <= hi:
        raise ValueError(f"sigma_range must satisfy 0 <= low <= high, got {sigma_range}")
    if log_sigma and lo == 0:
        raise ValueError(f"log_sigma needs sigma_range with low > 0, got {sigma_range}")
    if log_sigma and quadratic_sigma:
        raise ValueError("log_sigma and quadratic_sigma are two ways to draw σ: set at most one of them")
    if not (lr > 0 and (lr_end is None or 0 <= lr_end <= lr)):
        raise ValueError(f"need lr > 0 and 0 <= lr_end <= lr, got lr={lr}, lr_end={lr_end}")
    ddp = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
    mine = slice(rank * batch_size // world, (rank + 1) * batch_size // world)  # this rank's part of each batch
    settings = dict(seed=seed, lr=lr, lr_end=lr_end, steps=steps if lr_end is not None else None,
                    batch_size=batch_size, patch_size=patch_size, sigma_range=[lo, hi], log_sigma=log_sigma,
                    scale=scale, levels=levels if scale == "low" else None, wavelet=wavelet, normalize=normalize,
                    data=_fingerprint(data), **({"quadratic_sigma": True} if quadratic_sigma else {}))

    cuda = device.type == "cuda"
    amp = amp and cuda
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported(False) else torch.float16
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model.to(device, memory_format=fmt)
    if cuda and data.device != device and data.nbytes <= torch.cuda.mem_get_info(device)[0] // 4:
        data = data.to(device)  # crops are then gathered on the device
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=cuda)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    history = {"step": [], "loss": [], "test_step": [], "test_psnr": [],
               "test_sigmas": check_sigmas("test_sigmas", test_sigmas)}
    start, window = 0, [torch.zeros((), device=device), 0]
    if checkpoint is not None and Path(checkpoint).exists():
        ck = _load(checkpoint)
        old = ck.get("settings", settings)  # checkpoints written before settings were stored: not checked
        if diff := [f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v]:
            raise ValueError(f"checkpoint {checkpoint} was written with other settings ({'; '.join(diff)}): "
                             "pass the same settings to resume, or delete it to restart")
        try:
            model.load_state_dict(ck["model"])
        except RuntimeError as e:
            raise RuntimeError(f"checkpoint {checkpoint} does not match the model: {e}") from None
        opt.load_state_dict(ck["optimizer"])
        for group in opt.param_groups:  # a checkpoint of another device: this device's Adam
            group["fused"] = cuda
        if ck["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(ck["scaler"])
        start, history, window = ck["step"], ck["history"], [ck["window"][0].to(device), ck["window"][1]]

    def save(step):
        if rank:
            return
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                 "step": step, "history": history, "window": [window[0].cpu(), window[1]], "settings": settings}
        try:
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, str(checkpoint) + ".tmp")
            os.replace(str(checkpoint) + ".tmp", checkpoint)
        except OSError as e:
            raise OSError(f"cannot write the checkpoint {checkpoint}: {e}") from None

    if ddp:
        dist.barrier()  # every rank has read the checkpoint before rank 0 writes one
    if checkpoint is not None and start == 0:
        save(0)

    tests = []  # fixed noisy test set: (σ, noise) pairs for the clean test examples
    if test_data is not None and rank == 0:
        tg = torch.Generator().manual_seed(seed)
        clean = torch.cat([examples(x.to(device), scale, levels, wavelet, normalize) for x in test_data.split(256)])
        clean = clean.contiguous(memory_format=fmt)
        tests = [(s, torch.randn(clean[:, cin - cout:].shape, generator=tg).to(device)) for s in test_sigmas]

    def evaluate():  # mean PSNR of the estimated target at each test σ
        model.eval()
        res = []
        with torch.no_grad(), torch.autocast(device.type, amp_dtype, enabled=amp):
            for s, noise in tests:
                p = [psnr(*_split(model, cin - cout, clean[i:i + batch_size], s, noise[i:i + batch_size])[::-1])
                     for i in range(0, len(clean), batch_size)]
                res.append(torch.cat(p).mean().item())
        model.train()
        return res

    net = model
    if ddp:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    eager = net
    if compile:
        net = _compiled(net)

    def backward(net, x, sigma, noise):  # the loss of a batch, its gradients in .grad
        with torch.autocast(device.type, amp_dtype, enabled=amp):
            target, out = _split(net, cin - cout, x, sigma, noise)
        loss = F.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        return loss

    g = torch.Generator(device)  # every draw of a step on the device: no host work inside the step
    model.train()
    bar = tqdm(total=steps, initial=min(start, steps), disable=not progress or rank > 0, desc="train")
    for step in range(start, steps):
        for group in opt.param_groups:  # a function of the step only: a resumed run follows the same schedule
            group["lr"] = learning_rate(step, steps, lr, lr_end)
        g.manual_seed(_mix(seed, step))
        # the whole batch's draws on every rank (crops aligned to the wavelet blocks); each rank keeps its slice
        draw = dict(generator=g, device=device)
        idx = torch.randint(N, (batch_size, 1, 1), **draw)[mine]
        rows = torch.randint((H - ph) // align + 1, (batch_size, 1, 1), **draw)[mine] * align
        cols = torch.randint((W - pw) // align + 1, (batch_size, 1, 1), **draw)[mine] * align
        u = torch.rand(batch_size, 1, 1, 1, **draw)
        sigma = (_quadratic_sigmas(u, lo, hi) if quadratic_sigma else _sigmas(u, lo, hi, log_sigma))[mine]
        rows = rows + torch.arange(ph, device=device).view(1, -1, 1)
        cols = cols + torch.arange(pw, device=device).view(1, 1, -1)
        x = data[idx.to(data.device), :, rows.to(data.device), cols.to(data.device)].permute(0, 3, 1, 2)
        x = examples(x.to(device, non_blocking=True), scale, levels, wavelet, normalize).contiguous(memory_format=fmt)
        noise = torch.randn((batch_size, cout, *x.shape[2:]), **draw)[mine]
        try:
            loss = backward(net, x, sigma, noise)
        except Exception as e:  # torch.compile compiles at the first forward and backward: train without it
            if net is eager or step > start:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); training without compiling")
            net = eager
            loss = backward(net, x, sigma, noise)
        scaler.step(opt)
        scaler.update()
        window = [window[0] + loss.detach(), window[1] + 1]
        s = step + 1
        log = s % eval_every == 0 or s == steps
        ckpt = checkpoint is not None and (s % checkpoint_every == 0 or s == steps)
        if log or ckpt:
            if ddp:  # the mean over the whole batch, as one process would log it
                dist.all_reduce(window[0])
                window[0] /= world
            mean = window[0].item() / window[1]
            if not math.isfinite(mean):
                raise TrainingDiverged(f"training loss is {mean} around step {s} (learning rate {lr} too high? "
                                   "NaN in the model?); nothing was saved for this window")
        if log:
            history["step"].append(s)
            history["loss"].append(mean)
            window = [torch.zeros((), device=device), 0]
            if tests:
                history["test_step"].append(s)
                history["test_psnr"].append(evaluate())
                if any(math.isnan(v) for v in history["test_psnr"][-1]):
                    raise TrainingDiverged(f"the model's outputs on the test data are NaN at step {s} (learning "
                                           f"rate {lr} too high?); nothing was saved for this window")
            bar.set_postfix(loss=mean, psnr="/".join(f"{v:.1f}" for v in history["test_psnr"][-1]) if tests else "")
        if ckpt:
            save(s)
        bar.update(1)
    bar.close()
    model.to(memory_format=torch.contiguous_format).eval()
    return history


def _compiled(net):
    """torch.compile(net), or net with a warning where torch.compile itself fails (errors at the first call are
    caught in train)."""
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
