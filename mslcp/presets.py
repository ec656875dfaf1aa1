"""Two sizes for every chapter: "cpu" (runs the book on a 2-core laptop in minutes, offline, on synthetic
faces) and "gpu" (CelebA, more images). get() picks "gpu" when CUDA is available; MSLCP_PRESET=cpu|gpu
or an explicit name overrides that, keyword arguments override single fields. How models are trained
(the training budgets "book", "colab", "paper") is in mslcp.recipes."""
import dataclasses
import os

import torch

from .train import check_int


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    device: str  # "cuda" when available, else "cpu" (the preset only sets sizes)
    data: str  # "synthetic" (mslcp.synthetic.faces) or "celeba" (mslcp.data.celeba, downloaded once)
    image_size: int  # side of the images a chapter shows and samples
    n_test: int  # held-out images for PSNR curves
    n_samples: int  # images drawn per sampling experiment
    h0: float  # Algorithm 1 initial step size (paper: 0.01; larger is faster and rougher)
    paper_h0: float  # h0 with the authors' large nets (book/06_paper_320, 07_real_faces): the paper's 0.01 on a GPU
    sr_images: int  # chapter 6: held-out faces super-resolved, with sr_samples samples of each
    sr_samples: int
    paper_constrained: int  # book/07_real_faces: constrained samples per image with the authors' nets
    assignment: dict  # chapter 8: width, depth, rfs (receptive fields), steps, batch and n_train of each net

    def __post_init__(self):
        if self.data not in ("synthetic", "celeba"):
            raise ValueError(f"preset data must be 'synthetic' or 'celeba', got {self.data!r}")
        for f in ("image_size", "n_test", "n_samples"):
            check_int(f"preset {f}", getattr(self, f), 1)
        for f in ("h0", "paper_h0"):
            h = getattr(self, f)
            if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h <= 1:
                raise ValueError(f"preset {f} must be a number with 0 < {f} <= 1, got {h!r}")
        for f in ("sr_images", "sr_samples", "paper_constrained"):
            check_int(f"preset {f}", getattr(self, f), 1)
        if not isinstance(self.assignment, dict) or set(self.assignment) != set(ASSIGNMENT_KEYS):
            raise ValueError(f"preset assignment must be a dict with the keys {', '.join(ASSIGNMENT_KEYS)}, got "
                             f"{self.assignment!r}")
        object.__setattr__(self, "assignment", dict(self.assignment))  # a chapter's edits stay its own


ASSIGNMENT_KEYS = ("width", "depth", "rfs", "steps", "batch", "n_train")
PRESETS = {  # every size a chapter takes from its preset is here
    "cpu": dict(data="synthetic", image_size=32, n_test=64, n_samples=4, h0=0.05, paper_h0=0.1,
                sr_images=4, sr_samples=8, paper_constrained=1,
                assignment=dict(width=16, depth=6, rfs=(3, 5, 9, 13), steps=300, batch=16, n_train=512)),
    "gpu": dict(data="celeba", image_size=160, n_test=100, n_samples=16, h0=0.01, paper_h0=0.01,
                sr_images=8, sr_samples=16, paper_constrained=8,
                assignment=dict(width=32, depth=8, rfs=(3, 5, 9, 13, 17), steps=3000, batch=32, n_train=4096)),
}


def get(name=None, **overrides):
    """Preset `name` (else $MSLCP_PRESET, else "gpu" if CUDA is available else "cpu"), fields overridden."""
    if name is None:  # an empty $MSLCP_PRESET counts as unset
        name = os.environ.get("MSLCP_PRESET") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)} (argument or MSLCP_PRESET)")
    fields = [f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "device")]
    if bad := sorted(set(overrides) - set(fields)):
        raise ValueError(f"{', '.join(bad)}: not a field of a preset; fields: {', '.join(fields)} "
                         "(training settings are in mslcp.recipes)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Preset(name=name, device=device, **{**PRESETS[name], **overrides})


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
