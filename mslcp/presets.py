"""Two sizes for every chapter: "cpu" (runs the book on a 2-core laptop in minutes, offline, on synthetic
faces) and "gpu" (paper-size nets, CelebA). get() picks "gpu" when CUDA is available; MSLCP_PRESET=cpu|gpu
or an explicit name overrides that, keyword arguments override single fields."""
import dataclasses
import os

import torch


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    device: str  # "cuda" when available, else "cpu" (the preset only sets sizes)
    data: str  # "synthetic" (mslcp.data.synthetic_faces) or "celeba" (mslcp.data.celeba, downloaded once)
    image_size: int  # side of the training / sampling images
    n_train: int  # training images
    n_test: int  # held-out images for PSNR curves
    steps: int  # optimizer steps per training run
    batch_size: int
    patch_size: int  # random training crops (paper: 40 for flat nets)
    width: int  # channels per conv layer (paper: 64)
    depth: int  # conv layers (paper: 21)
    n_samples: int  # images drawn per sampling experiment
    h0: float  # Algorithm 1 initial step size (paper: 0.01; larger is faster and rougher)
    amp: bool  # mixed precision in training (CUDA only)


PRESETS = {
    "cpu": dict(data="synthetic", image_size=32, n_train=4096, n_test=64, steps=300, batch_size=32,
                patch_size=32, width=32, depth=8, n_samples=4, h0=0.05, amp=False),
    "gpu": dict(data="celeba", image_size=160, n_train=50_000, n_test=100, steps=20_000, batch_size=128,
                patch_size=40, width=64, depth=21, n_samples=16, h0=0.01, amp=True),
}


def get(name=None, **overrides):
    """Preset `name` (else $MSLCP_PRESET, else "gpu" if CUDA is available else "cpu"), fields overridden."""
    name = name or os.environ.get("MSLCP_PRESET") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)} (argument or MSLCP_PRESET)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return dataclasses.replace(Preset(name=name, device=device, **PRESETS[name]), **overrides)


def threads():
    """CPU threads for torch: $MSLCP_THREADS if set, else half the cores (at least 1).

    Measured on a 2-core machine: the book's tensors are small, and with two OpenMP threads a chapter that
    runs beside one busy process waits on spinning threads (3-25x slower than alone); with one thread it
    keeps its quiet-machine time. On many cores, half of them still speeds up the paper-size nets."""
    env = os.environ.get("MSLCP_THREADS")
    if env is not None:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MSLCP_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return max(1, (os.cpu_count() or 1) // 2)


def setup(name=None, seed=0, **overrides):
    """A chapter's first line: pick the preset, set the CPU thread policy (`threads`), seed torch, print one
    line. Returns (preset, torch.device)."""
    from . import __version__

    preset = get(name, **overrides)
    torch.set_num_threads(threads())
    torch.manual_seed(seed)
    slow = " (no GPU: this will be slow)" if preset.name == "gpu" and preset.device == "cpu" else ""
    print(f"mslcp {__version__} | preset {preset.name!r} on {preset.device}{slow} | torch {torch.__version__}")
    return preset, torch.device(preset.device)
