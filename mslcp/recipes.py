"""Named training recipes: how every model of the book was trained, in one place, and how to run one.

A recipe is a dict: the data (`data`, `image_size`, `n_train`, `n_test`), the architecture (`net`: BFCNN keyword
arguments; `levels` J = 0 for a flat model, else a low-pass net of x_J and one ConditionalBFCNN per level), fields
of `train.TrainConfig` (all but the level, J, wavelet and normalize: `config` makes each net's) and `init_seed`
(torch.manual_seed before the nets are built). A multi-scale recipe overrides any of these for its low-pass net
(`low`) and per level (`level`, a list indexed by j, 0 = finest); `low_from` names a recipe whose trained low-pass
net it reuses.
A training budget (`BUDGETS`) overrides recipes for a machine: "book" (the recipes as the book ships them), "colab"
(about 30 min per model on a T4-class GPU, 1/10 of an H200) and "paper" (the paper's data and network size). Keys
"flat.K" and "multiscale.K" of a budget apply only to that kind of recipe. (A chapter's sizes are mslcp.presets.)
"""
import copy
import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed

from . import data, multiscale, nets, pretrained, synthetic, train as _train

_FLAT = dict(data="synthetic", image_size=32, n_train=8192, n_test=64, levels=0, init_seed=0, steps=4000,
             batch_size=32, lr=1e-3, lr_end=1e-5, sigma_range=(0.0, 1.0), log_sigma=False, patch_size=None, seed=0,
             test_sigmas=(0.05, 0.1, 0.2, 0.4), eval_every=100, checkpoint_every=100, amp=False)
# 32x32 faces, J=2: a low-pass net on 8x8 (rf 13: nearly global; corner to corner needs 15) and conditional nets per
# level. The low-pass net sees sigma/4 when the model denoises an image at sigma, but the whole range when Algorithm 2
# draws x_J: it trains on log-uniform sigma in [0.001, 1] (measured with 6000 steps: uniform sigma gives 28.2 dB at
# sigma = 0.005, where the noisy input has 46 dB; log-uniform 36.8 dB, and 0.6 dB less at sigma = 1). The details are
# small ("average" normalization: a noise sigma on the image is sigma/2^(j+1) on level j's details), so the
# conditional nets train on sigma in [0, 0.1] (a wider range leaves too few examples where the details are visible).
_MULTISCALE = dict(_FLAT, levels=2, steps=3000, batch_size=64, sigma_range=(0.0, 0.1),
                   test_sigmas=(0.0125, 0.025, 0.05, 0.1),
                   low=dict(net=dict(rf=13), steps=6000, sigma_range=(1e-3, 1.0), log_sigma=True,
                            test_sigmas=(0.05, 0.1, 0.2, 0.4), seed=0),
                   level=[dict(seed=1), dict(seed=2)])
_SMALL = dict(width=32, depth=8)
# The real-face family: CelebA 80x80 gray (data.celeba_halfres; train split, 128 test faces to monitor), trained on a
# CPU core. Equal depth and width (not equal parameters): every net has depth 10 and width 32, flat and conditional
# nets train 4000 steps of 32 examples, and the RF is set by the kernel layout alone. Flat nets: 40x40 crops,
# sigma ~ U(0, 1).
# Multi-scale: J = 2, a 20x20 low-pass (RF 21: global), shared by the three models; log-uniform sigma = pixel sigma in
# [0.001, 1] as each net sees it ("average" normalization), since uniform sigma starves the multi-scale nets of
# small-sigma examples. The shared low-pass net gets the compute of one flat net: 16000 steps of 20x20 images = 4000
# of 40x40 crops (with 4000 steps it was 1.1-1.4 dB below the low-pass of flat RF 21's output at sigma 0.1-0.2, and
# cost the models 0.5 dB there).
_C80 = dict(_FLAT, data="celeba80", image_size=80, n_train=None, n_test=128, net=dict(width=32, depth=10),
            steps=4000, batch_size=32, patch_size=40, eval_every=500, checkpoint_every=250)
_C80_MS = dict(_C80, levels=2, patch_size=None, log_sigma=True,
               low=dict(net=dict(rf=21), sigma_range=(1e-3, 1.0), steps=16000),
               level=[dict(sigma_range=(5e-4, 0.5), seed=1), dict(sigma_range=(2.5e-4, 0.25), seed=2)])

RECIPES = {
    # chapter 2: the same net with and without biases, on a limited noise range (sigma <= 0.1 ~ 25/255)
    "bf_small": dict(_FLAT, net=dict(_SMALL, rf=17), steps=700, lr_end=None, sigma_range=(0.0, 0.1)),
    "biased_small": dict(_FLAT, net=dict(_SMALL, rf=17, bias=True), steps=700, lr_end=None, sigma_range=(0.0, 0.1)),
    # chapter 3: flat denoisers on the whole noise range, a small RF and one that covers the 32x32 image
    # (a cosine learning-rate decay to 1e-5: with a constant rate the nets stayed poor at small sigma)
    "flat_rf5": dict(_FLAT, net=dict(_SMALL, rf=5)),
    "flat_rf33": dict(_FLAT, net=dict(width=24, depth=16, rf=33), steps=5000),
    # chapter 4 and later: the multi-scale model of 32x32 faces
    "multiscale_rf5": dict(_MULTISCALE, net=dict(_SMALL, rf=5)),
    # chapter 5: families of equal depth and width (8, 32; the budgets of flat_rf5 / multiscale_rf5); the receptive
    # field is set by the kernel layout alone (nets.kernel_layout); multi-scale ones reuse multiscale_rf5's low-pass
    **{f"flat_rf{rf}": dict(_FLAT, net=dict(_SMALL, rf=rf)) for rf in (9, 13, 17)},
    **{f"multiscale_rf{rf}": dict(_MULTISCALE, net=dict(_SMALL, rf=rf), low_from="multiscale_rf5") for rf in (9, 13)},
    # the real-face family (CPU)
    **{f"celeba80_flat_rf{rf}": dict(_C80, net=dict(_C80["net"], rf=rf)) for rf in (5, 9, 13, 21)},
    "celeba80_multiscale_rf5": dict(_C80_MS, net=dict(_C80["net"], rf=5)),
    **{f"celeba80_multiscale_rf{rf}": dict(_C80_MS, net=dict(_C80["net"], rf=rf), low_from="celeba80_multiscale_rf5")
       for rf in (9, 13)},
    # chapter 5: the flat RF 5 net with sigma drawn as the authors' released code draws it (code/training.py:
    # quadratic noise, sigma = (k/255)^2, k uniform in 0..254) against a control drawn uniformly, everything else as
    # celeba80_flat_rf5 but a quarter of its steps (what a busy shared CPU allowed): the pair isolates the sigma draw
    "celeba80_flat_rf5_short": dict(_C80, net=dict(_C80["net"], rf=5), steps=1000),
    "celeba80_flat_rf5_short_quadratic": dict(_C80, net=dict(_C80["net"], rf=5), steps=1000, quadratic_sigma=True),
}

# the released training (code/training.py): sigma = (k/255)^2, k uniform in 0..254, for every net. Its cap of the
# conditional nets' range at 255 max|detail| sits behind `if args.coarse is False`, which argparse never produces
# (--coarse has no default and parses as a string), so as released every net draws from the whole range.
_RELEASED_SIGMA = {"sigma_range": (0.0, 1.0), "log_sigma": False, "quadratic_sigma": True}
_PAPER_NET = {"net.width": 64, "net.depth": 21, "amp": True, "flat.patch_size": 40, "multiscale.low.net.rf": 41}
BUDGETS = {
    "book": {},
    # estimates, not measurements: a T4 does ~470 images/s of the paper-size net on 40x40 crops (1/10 of an H200),
    # so 4000 steps of 128 take ~18 min (flat, 40x40 crops) or ~27 min (J=2 on whole 80x80 images: ~1.5x the pixels)
    "colab": dict(_PAPER_NET, data="celeba", image_size=80, n_train=50_000, n_test=100, batch_size=128, steps=4000,
                  checkpoint_every=500),
    # H200 ~4,700 images/s: ~36 min (flat, 40x40 crops), ~3.6 h (J=2 on whole 160x160 images: ~6x the pixels)
    "paper": dict(_PAPER_NET, **_RELEASED_SIGMA, data="celeba", image_size=160, n_train=50_000, n_test=100,
                  batch_size=512, steps=20_000,
                  checkpoint_every=1000),
}

_NET_KEYS = {"width", "depth", "rf", "kernel_sizes", "bias"}
_STAGE_KEYS = set(_FLAT) - {"data", "image_size", "n_train", "n_test", "levels", "init_seed"}
_STAGE_KEYS |= {"net", "quadratic_sigma"}


def _set(r, key, value, name):
    """Set dotted `key` in recipe r; a top-level training key also replaces the per-net overrides of it."""
    head, _, rest = key.partition(".")
    multi = r.get("levels", 0) > 0
    if head in ("low", "level") or head.startswith("level"):
        if not multi:
            raise ValueError(f"{name}: {key!r} sets a per-net setting, but {name} is not a multi-scale recipe")
        if head == "low":
            return _set(r.setdefault("low", {}), rest, value, name)
        j = head.removeprefix("level")
        if not j.isdigit() or int(j) >= r["levels"]:
            raise ValueError(f"{name}: {key!r}: levels are level0 ... level{r['levels'] - 1}")
        return _set(r["level"][int(j)], rest, value, name)
    if head == "net" and rest:
        if rest not in _NET_KEYS:
            raise ValueError(f"{name}: unknown net setting {rest!r}: choose from {sorted(_NET_KEYS)}")
        r.setdefault("net", {})[rest] = value
        if rest in ("depth", "rf"):
            r["net"].pop("kernel_sizes", None)  # a layout given as depth and rf replaces an explicit one
        return
    if rest or head not in set(_FLAT) | {"net", "low_from", "quadratic_sigma"}:
        raise ValueError(f"{name}: unknown recipe setting {key!r}: choose from {sorted(set(_FLAT) | {'net'})}, "
                         "net.K, and for multi-scale recipes low.K and levelJ.K")
    r[head] = value
    for sub in [r.get("low", {}), *r.get("level", [])]:  # applies to every net of the recipe
        sub.pop(head, None)


def get(name, budget="book", **overrides):
    """The recipe `name`, with the budget's overrides, then `overrides` (dotted keys: "steps", "net.width",
    "low.steps", "level0.sigma_range"), checked. The result also holds "name" and "budget"."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {sorted(RECIPES)}")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}: choose one of {sorted(BUDGETS)}")
    r = copy.deepcopy(RECIPES[name])
    kind = "multiscale" if r["levels"] else "flat"
    for key, value in BUDGETS[budget].items():
        k, _, rest = key.partition(".")
        if k in ("flat", "multiscale"):
            if k != kind:
                continue
            key = rest
        _set(r, key, value, name)
    for key, value in overrides.items():
        _set(r, key, value, name)
    r.update(name=name, budget=budget)
    _check(r)
    return json.loads(json.dumps(r))  # tuples -> lists: the form it takes in a checkpoint's metadata


def _check(r):
    """The recipe's own settings; each net's training settings are checked by building its TrainConfig (`config`)."""
    name = r["name"]
    if r["data"] not in ("synthetic", "celeba", "celeba80"):
        raise ValueError(f"{name}: data must be 'synthetic', 'celeba' or 'celeba80', got {r['data']!r}")
    for key in ("n_train", "n_test"):
        if r[key] is not None and (not isinstance(r[key], int) or r[key] < 1):
            raise ValueError(f"{name}: {key} must be an int >= 1 (or None: the whole split), got {r[key]!r}")
    for key, low in (("init_seed", 0), ("image_size", 8), ("levels", 0)):
        _train.check_int(f"{name}: {key}", r[key], low)
    if r["levels"] and len(r.get("level", [])) != r["levels"]:
        raise ValueError(f"{name}: levels={r['levels']} needs one entry per level in 'level', got {r.get('level')}")
    for level, sub in stages(r).items():
        try:  # the net's settings, before any data are built (nothing is built: no random draws)
            nets.check_config(**sub["net"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: net.{e}") from None
        try:
            config(r, level)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None


def stages(r):
    """The nets a recipe trains, in order: {None: settings} for a flat model, else {"low": ..., 0: ..., J-1: ...};
    settings = the recipe's training keys with that net's overrides (its "net" merged over the recipe's)."""
    def merge(sub):
        s = {k: r[k] for k in _STAGE_KEYS if k in r}
        s.update({k: v for k, v in sub.items() if k != "net"}, net={**r.get("net", {}), **sub.get("net", {})})
        return s
    if not r["levels"]:
        return {None: merge({})}
    return {"low": merge(r.get("low", {})), **{j: merge(r["level"][j]) for j in range(r["levels"])}}


def describe(name):
    """How recipe `name` trains its nets, one part per net: "low-pass: 6,000 × 64, σ log-uniform in [0.001, 1]; ..."."""
    parts = []
    for key, s in stages(get(name)).items():
        lo, hi = s["sigma_range"]
        law = "quadratic" if s.get("quadratic_sigma") else "log-uniform" if s["log_sigma"] else "uniform"
        net = {None: "", "low": "low-pass: "}.get(key, f"level {key}: ")
        crop = f" crops of {s['patch_size']}²" if s["patch_size"] else ""
        parts.append(f"{net}{s['steps']:,} × {s['batch_size']}{crop}, σ {law} in [{lo:g}, {hi:g}]")
    return "; ".join(parts)


def config(r, level):
    """The TrainConfig of the net `level` of recipe r (None: a flat model's; "low", or a wavelet level j)."""
    kw = {k: v for k, v in stages(r)[level].items() if k != "net"}
    return _train.TrainConfig(**kw, level=level, levels=r["levels"] if level == "low" else None)


def build(r):
    """The untrained model of recipe r (torch.manual_seed(init_seed) first; nets built low-pass, then level 0, 1...)."""
    torch.manual_seed(r["init_seed"])
    st = stages(r)
    if not r["levels"]:
        return nets.BFCNN(**st[None]["net"])
    # low_from: that recipe's model is built first (its low-pass weights are loaded by `run`), as its checkpoint was
    low = build(get(r["low_from"], r["budget"])).low if r.get("low_from") else nets.BFCNN(**st["low"]["net"])
    return multiscale.MultiScaleDenoiser(low, [nets.ConditionalBFCNN(**st[j]["net"]) for j in range(r["levels"])])


def images(r):
    """(train, test) images of recipe r: synthetic faces (seeds 0 and 1) or CelebA (uint8)."""
    size, n, m = r["image_size"], r["n_train"], r["n_test"]
    if r["data"] == "synthetic":
        return synthetic.faces(n, size, seed=0), synthetic.faces(m, size, seed=1)
    if r["data"] == "celeba80":
        size = None if size == 80 else size
        return tuple(data.celeba_halfres(split=s, size=size, n=k, dtype=torch.uint8) for s, k in (("train", n),
                                                                                                  ("test", m)))
    return tuple(data.celeba(split=s, size=size, n=k, download=True, dtype=torch.uint8) for s, k in (("train", n),
                                                                                                ("test", m)))


def _stale(old, r):
    """What differs between recipes old and r -> (dotted names of the settings, the nets of r whose checkpoints
    `old` cannot give: those whose training settings differ where a resume may not change them (`train.changed`),
    and every net from the first whose architecture differs, as the nets are initialized in order from one seed;
    all of them if a setting of the whole recipe differs)."""
    new, was = stages(r), stages(old) if old.get("levels") == r["levels"] else {}
    # (a budget's effect is in the settings it sets; older runs' recipe files name it "preset")
    shared = [k for k in sorted(set(old) | set(r)) if k not in _STAGE_KEYS | {"low", "level", "budget", "preset"}
              and old.get(k) != r.get(k)]
    diff, stale, init = list(shared), [], bool(shared)
    for level, s in new.items():
        prefix = "" if level is None else "low." if level == "low" else f"level{level}."
        keys = ["net"] * (was.get(level, {}).get("net") != s["net"])
        if level in was:
            keys += [k for k, *_ in _train.changed(asdict(config(old, level)), asdict(config(r, level)))]
        diff += [prefix + k for k in sorted(keys)]
        init = init or "net" in keys
        if init or keys or level not in was:
            stale.append(level)
    return diff, stale


def run(r, runs, models=None, device=None, compile=False, progress=True):
    """Train recipe r (a dict from `get`) and return the model; resumable: net checkpoints runs/NAME.pt (flat) or
    runs/NAME.low.pt, runs/NAME.level{j}.pt, and runs/NAME.recipe.json, against which a resumed run is checked: a
    net's checkpoint is reused only if its settings and initial weights are those of r (`_stale`).
    With low_from the low-pass net is that of models/LOW_FROM.safetensors (models: default runs) if it exists, else
    of the shipped checkpoint. compile: `train.train`'s (how a step runs, not what the recipe trains)."""
    runs = Path(runs)
    models = Path(models or runs)
    runs.mkdir(parents=True, exist_ok=True)
    saved = runs / f"{r['name']}.recipe.json"
    tails = {None: "", "low": ".low"}  # then .level0, .level1, ...
    files = {s: runs / f"{r['name']}{tails.get(s, f'.level{s}')}.pt" for s in stages(r)}
    if saved.exists():
        diff, stale = _stale(json.loads(saved.read_text()), r)
        if stale := [str(files[k]) for k in stale if files[k].exists()]:
            raise ValueError(f"{saved} holds another recipe; settings that differ: {', '.join(diff)}. Resume with "
                             f"the same settings, or delete {', '.join(stale)} to train again what they change")
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        Path(f"{saved}.tmp").write_text(json.dumps(r, indent=1))
        Path(f"{saved}.tmp").replace(saved)  # atomic: other ranks may be reading it
    model = build(r)
    x, x_test = images(r)
    for level in stages(r):
        net = model if level is None else model.low if level == "low" else model.conditionals[level]
        if level == "low" and r.get("low_from"):
            own = models / f"{r['low_from']}.safetensors"
            model.low = (pretrained.load(own) if own.exists() else pretrained.shipped(r["low_from"])).low
            continue
        c = config(r, level)
        if progress:
            print(f"{r['name']}: training {'the model' if level is None else f'net {level!r}'} ({c.steps} steps)")
        _train.train(net, x, c, test_data=x_test, checkpoint=files[level], device=device, compile=compile,
                     progress=progress)
    return model.eval()
