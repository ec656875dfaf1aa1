"""The authors' own sampler beside ours on the same work: super-resolution and synthesis at 160x160 and 320x320
with the authors' multi-scale RF-13 models, one image at a time in their code, one batch in ours.

    git clone https://github.com/LabForComputationalVision/local-probability-models-of-images /tmp/peer  # theirs
    MSLCP_WEIGHTS=... python benchmarks/peer.py --peer /tmp/peer --n 2
    MSLCP_PEER=/tmp/peer MSLCP_WEIGHTS=... python benchmarks/peer.py --work sr160 --n 1   # one of the four

Their code (code/algorithm_inv_prob.py: multi_scale_synthesis, which runs one_scale_synthesis per level) is
imported from that local copy, never from this project. The shims, all outside their code:
- their sampler calls `model(y)` (or `model(cat(low, y))` for a conditional net) and expects the noise estimate;
  both samplers run the same nets, ours (mslcp.pretrained, the authors' weights), wrapped as noise predictors
  (`Noise`), which also count the calls;
- their `device` argument is given as torch.device("cpu"/"cuda") (their reconstruct reads device.type);
- their progress prints are silenced.
Both samplers get the same settings: the released demo's (notebooks/demo.ipynb) super-resolution (ascending step,
h0 = 0.01, beta = 0.5, sigma_0 = 1, stop on their signal-to-noise test at sigma_L = 0.01, 0.015 at the finest
level) and synthesis details (the same with beta = 1); ours with relative_stop=True, so both stop on the same
test. The synthesis low-pass: --low (default the ascending step h0 = 0.05, beta = 0.5, to sigma_L = 0.01 relative;
the demo's fixed h = beta = 0.01 to 0.25 takes ~28,000 calls per image), started at mean 0 and rescaled to
[0, 0.8] afterwards, as their multi_scale_synthesis does. The input of super-resolution is the 40x40 low-pass
(4x4 block averages) of data.astronaut(). The two runs draw different random numbers, so the images differ; the
table gives the PSNR of the super-resolved images (2x2 block averages at 320) against the astronaut to show they
do the same work.
"""
import argparse
import contextlib
import io
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from mslcp import data, metrics, pretrained, presets, sampling

WORK = ("sr160", "sr320", "syn160", "syn320")


class Noise(nn.Module):
    """One of our denoisers as the authors' sampler wants it: input -> noise estimate (input - denoised). A
    conditional net (cond=True) gets cat(low, noisy details) (B,1+3,h,w) and returns (B,3,h,w). Counts calls."""

    def __init__(self, net, cond=False):
        super().__init__()
        self.net, self.cond, self.calls = net, cond, 0

    def forward(self, x):
        self.calls += 1
        if self.cond:
            low, y = x[:, :1], x[:, 1:]
            return y - self.net(low, y)
        return x - self.net(x)


def demo_settings(J, beta_details, low):
    """Per-level settings of the demo: dicts keyed 'low', J-1..0 (theirs) -> (theirs, ours: tuples by level)."""
    h0, beta, fixed, sig_l = low
    theirs = dict(sig_0={"low": 1, **{j: 1 for j in range(J)}},
                  sig_L={"low": sig_l, **{j: 0.015 if j == 0 else 0.01 for j in range(J)}},
                  h0={"low": h0, **{j: 0.01 for j in range(J)}},
                  beta={"low": beta, **{j: beta_details for j in range(J)}},
                  freq={"low": 0, **{j: 0 for j in range(J)}},
                  fixed_h={"low": fixed, **{j: False for j in range(J)}})
    ours = dict(sigma0=1.0, sigma_final=tuple(theirs["sig_L"][j] for j in range(J)) + (sig_l,),
                h0=tuple(theirs["h0"][j] for j in range(J)) + (h0,), beta=(beta_details,) * J + (beta,))
    return theirs, ours


def rescale(x, top=0.8):
    """The authors' rescale_image_range per image: min 0, max top."""
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12) * top


def run_theirs(peer, model, work, n, low, settings, device):
    """Their multi_scale_synthesis, one image at a time (seed i for image i) -> (images (n,1,S,S), calls/image)."""
    J = model.levels
    models = {"low": Noise(model.low), **{j: Noise(model.conditionals[j], cond=True) for j in range(J)}}
    out = []
    for i in range(n):
        with contextlib.redirect_stdout(io.StringIO()):
            init = low[0].to(device) if work.startswith("sr") else (1, 40, 40)
            ims, _, _ = peer.multi_scale_synthesis(models, init, device=torch.device(device), orth_forward=True,
                                                   seeds={"low": i, **{j: 1000 * (j + 1) + i for j in range(J)}},
                                                   **settings)
        out.append(ims[-1].detach().reshape(1, 1, *ims[-1].shape[-2:]))
    return torch.cat(out).cpu(), sum(m.calls for m in models.values()) / n


def run_ours(model, work, n, low, settings, fixed_low, device):
    """sampling.super_resolve (and sampling.sample for the low-pass) on one batch -> (images, calls per image)."""
    J, gen = model.levels, list(range(n))
    calls = 0
    if work.startswith("sr"):
        start = low.to(device).repeat(n, 1, 1, 1)
    else:  # the low-pass as their synthesis draws it: mean 0, then rescaled to [0, 0.8]
        start, info = sampling.sample(model.low, (n, 1, 40, 40), sigma0=1.0, mean=0.0, h0=settings["h0"][J],
                                      beta=settings["beta"][J], sigma_final=settings["sigma_final"][J],
                                      fixed_step=fixed_low, relative_stop=True, generator=gen, max_steps=100_000)
        calls += float((info.steps.float() + 1).mean())
        start = rescale(start)
    x, info = sampling.super_resolve(model, start, generator=gen, relative_stop=True, **settings)
    calls += sum(float((lv.steps.float() + 1).mean()) for lv in info.levels.values())
    return x.cpu(), calls


def low_setting(text):
    """--low "H0,BETA,fixed|ascending,SIGMA_L" -> (h0, beta, fixed, sigma_L)."""
    try:
        h0, beta, kind, sig = text.split(",")
        assert kind in ("fixed", "ascending")
        return float(h0), float(beta), kind == "fixed", float(sig)
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"--low takes H0,BETA,fixed|ascending,SIGMA_L, got {text!r}") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", default=os.environ.get("MSLCP_PEER"),
                    help="a local copy of the authors' repository (or set MSLCP_PEER)")
    ap.add_argument("--n", type=int, default=2, help="images per run (default 2)")
    ap.add_argument("--work", nargs="+", default=list(WORK), choices=WORK)
    ap.add_argument("--beta-sr", type=float, default=0.5, help="beta of the super-resolution details (demo: 0.5)")
    ap.add_argument("--low", type=low_setting, default=(0.05, 0.5, False, 0.01),
                    help="synthesis low-pass: H0,BETA,fixed|ascending,SIGMA_L (relative stop; default "
                         "0.05,0.5,ascending,0.01; the demo's: 0.01,0.01,fixed,0.25)")
    args = ap.parse_args()
    if not args.peer or not os.path.isfile(os.path.join(args.peer, "code", "algorithm_inv_prob.py")):
        ap.error(f"--peer (or MSLCP_PEER) must be a local copy of the authors' repository with "
                 f"code/algorithm_inv_prob.py, got {args.peer!r}")
    sys.path.insert(0, os.path.join(args.peer, "code"))
    import algorithm_inv_prob as peer  # their code, from their copy

    torch.set_num_threads(presets.threads())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # CPU: the process's CPU time (one thread), which other programs on a shared machine do not inflate; GPU: wall
    clock = time.perf_counter if device == "cuda" else time.process_time
    x = data.astronaut()
    low = F.avg_pool2d(x, 4)  # (1,1,40,40)
    print(f"peer.py on {device} ({torch.get_num_threads()} thread(s)), {args.n} images per run; theirs one at a "
          "time, ours one batch")
    kind = "wall" if device == "cuda" else "CPU"
    print(f"| work | sampler | calls per image | {kind} seconds | images per {kind} second | PSNR vs astronaut (dB) |")
    print("|---|---|---|---|---|---|")
    ratios = {}
    for work in args.work:
        size = int(work[-3:])
        model = pretrained.paper_multiscale(13, size=size).to(device).eval()
        J = model.levels
        beta_d = args.beta_sr if work.startswith("sr") else 1.0
        theirs_kw, ours_kw = demo_settings(J, beta_d, args.low)
        rows = {}
        for who in ("theirs", "ours"):
            t = clock()
            with torch.no_grad():
                if who == "theirs":
                    im, calls = run_theirs(peer, model, work, args.n, low, theirs_kw, device)
                else:
                    im, calls = run_ours(model, work, args.n, low, ours_kw, args.low[2], device)
            if device == "cuda":
                torch.cuda.synchronize()
            s = clock() - t
            small = F.avg_pool2d(im, size // 160)
            p = (f"{float(metrics.psnr(small, x.expand_as(small)).mean()):.2f}" if work.startswith("sr") else "–")
            rows[who] = s
            print(f"| {work} | {who} | {calls:.0f} | {s:.1f} | {args.n / s:.3f} | {p} |", flush=True)
        ratios[work] = rows["theirs"] / rows["ours"]
    print("images/s, ours / theirs: " + ", ".join(f"{w} {r:.2f}" for w, r in ratios.items()))


if __name__ == "__main__":
    main()
