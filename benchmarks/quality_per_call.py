"""Sample quality against denoiser calls for Algorithm 2 (mslcp.sampling.synthesize): the ascending step schedule
for several h0 and beta, against fixed steps: the authors' demo settings (h = 0.01, beta = 0.01) and larger ones.

    python benchmarks/quality_per_call.py             # the shipped multiscale_rf5, 32x32 synthetic faces (CPU)
    python benchmarks/quality_per_call.py --n 16 --quick
    python benchmarks/quality_per_call.py --model celeba80_multiscale_rf9 --n 16   # real faces, 80x80
    python benchmarks/quality_per_call.py --model paper13 --n 16      # the authors' RF-13 model, 160x160 (a GPU)
    python benchmarks/quality_per_call.py --model paper13 --n 8 --quick --h0 0.01 --beta 0.05 0.02 --fixed 0.05,0.05

Quality: metrics.sample_distance(samples, data)["total"] against 2048 training faces of the model's recipe
(synthetic, or CelebA 80x80 from the half-resolution copy; lower is better). The authors' model (paper13, weights
from $MSLCP_WEIGHTS or downloaded) draws 160x160 faces; they are compared at 80x80 (2x2 block averages) with the
half-resolution CelebA faces, the same crop at half the resolution, so its finest level is not measured. Each
setting runs twice with disjoint seeds; the table gives both values, so the run-to-run noise of the measure is
visible next to the differences between settings. Calls: denoiser calls per image, summed over the levels (each
image stops on its own; a batched call serves every image still running). Every run stops at sigma_t <= 0.01
(the authors' code stops on a signal-to-noise test instead; with this stop the fixed step needs more calls).
"""
import argparse
import time

import torch
import torch.nn.functional as F

from mslcp import data, metrics, pretrained, presets, recipes, sampling


FIXED = dict(h0=0.01, beta=0.01, fixed_step=True, max_steps=100_000)  # the authors' demo settings


def calls_per_image(info):
    """Mean over images of the denoiser evaluations summed over levels (steps + 1 per level)."""
    return sum((lv["steps"].float() + 1).mean().item() for lv in info["levels"].values())


def measure(model, size, shrink, reference, seeds, **kw):
    """Draw one image per seed with Algorithm 2 (kw: its settings) -> (distance to reference after shrink x shrink
    block averages, denoiser calls per image)."""
    with torch.no_grad():
        x, info = sampling.synthesize(model, len(seeds), size=size, generator=list(seeds), **kw)
    x = F.avg_pool2d(x.cpu(), shrink)
    ok = torch.isfinite(x).flatten(1).all(1)
    return metrics.sample_distance(x[ok], reference)["total"], calls_per_image(info)


def step_and_beta(text):
    """argparse type of --fixed: "H,BETA" -> (H, BETA), both in (0, 1]."""
    try:
        h, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fixed takes H,BETA (two numbers), got {text!r}") from None
    if not (0 < h <= 1 and 0 < b <= 1):
        raise argparse.ArgumentTypeError(f"--fixed H,BETA must both be in (0, 1], got {text!r}")
    return h, b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="images per run (default 64)")
    ap.add_argument("--quick", action="store_true", help="skip the authors' demo (the slow fixed-step run)")
    ap.add_argument("--h0", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2],
                    help="initial step sizes of the ascending schedule (default 0.01 0.05 0.1 0.2)")
    ap.add_argument("--beta", type=float, nargs="+", default=[0.1, 0.5],
                    help="noise-injection factors of the ascending schedule (default 0.1 0.5)")
    ap.add_argument("--fixed", type=step_and_beta, nargs="*", default=[(0.1, 0.1)], metavar="H,BETA",
                    help="fixed-step settings besides the authors' demo (default 0.1,0.1)")
    ap.add_argument("--model", default="multiscale_rf5",
                    help="a shipped multi-scale model (default multiscale_rf5), or paper13: the authors' RF 13")
    args = ap.parse_args()
    torch.set_num_threads(presets.threads())
    if args.model == "paper13":  # 160x160 faces, compared at 80x80
        model, size, shrink, source = pretrained.paper_multiscale(13), 160, 2, "celeba80"
    else:
        r = recipes.get(args.model)
        model, size, shrink, source = pretrained.shipped(args.model), r["image_size"], 1, r["data"]
    reference = (data.synthetic_faces(2048, size, seed=0) if source == "synthetic" else
                 data.celeba_halfres(split="train", n=2048))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    settings = {f"ascending h0={h0}, beta={b}": dict(h0=h0, beta=b)
                for h0 in args.h0 for b in args.beta}
    settings.update({f"fixed h={h}, beta={b}": dict(FIXED, h0=h, beta=b) for h, b in args.fixed})
    if not args.quick:
        settings["fixed h=0.01, beta=0.01 (authors' demo)"] = FIXED
    print(f"{args.model} on {device}, {args.n} images of {size}x{size} per run; distance to 2048 training faces"
          + (f" at {size // shrink}x{size // shrink}" if shrink > 1 else ""))
    print("| setting | calls per image | total distance (seeds A / B) | seconds |")
    print("|---|---|---|---|")
    for name, kw in settings.items():
        t = time.perf_counter()
        (d0, c0), (d1, c1) = (measure(model, size, shrink, reference, range(i * args.n, (i + 1) * args.n), **kw)
                              for i in range(2))
        print(f"| {name} | {(c0 + c1) / 2:.0f} | {d0:.2f} / {d1:.2f} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
