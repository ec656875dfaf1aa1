"""Sample quality against denoiser calls for Algorithm 2 (mslcp.sampling.synthesize): the ascending step schedule
for several h0 and beta, against a fixed step with the authors' demo settings (h = 0.01, beta = 0.01).

    python benchmarks/quality_per_call.py             # the shipped multiscale_rf5, 32x32 synthetic faces (CPU)
    python benchmarks/quality_per_call.py --n 16 --quick
    python benchmarks/quality_per_call.py --model celeba80_multiscale_rf9 --n 16   # real faces, 80x80

Quality: metrics.sample_distance(samples, data)["total"] against 2048 training faces of the model's recipe
(synthetic, or CelebA 80x80 from the half-resolution copy; lower is better). Each
setting runs twice with disjoint seeds; the table gives both values, so the run-to-run noise of the measure is
visible next to the differences between settings. Calls: denoiser calls per image, summed over the levels (each
image stops on its own; a batched call serves every image still running). Every run stops at sigma_t <= 0.01
(the authors' code stops on a signal-to-noise test instead; with this stop the fixed step needs more calls).
"""
import argparse
import time

import torch

from mslcp import data, metrics, pretrained, presets, recipes, sampling


def calls_per_image(info):
    """Mean over images of the denoiser evaluations summed over levels (steps + 1 per level)."""
    return sum((lv["steps"].float() + 1).mean().item() for lv in info["levels"].values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="images per run (default 64)")
    ap.add_argument("--quick", action="store_true", help="skip the slow fixed-step run")
    ap.add_argument("--model", default="multiscale_rf5", help="a shipped multi-scale model (default multiscale_rf5)")
    args = ap.parse_args()
    torch.set_num_threads(presets.threads())
    model = pretrained.shipped(args.model)
    r = recipes.get(args.model)
    size = r["image_size"]
    reference = (data.synthetic_faces(2048, size, seed=0) if r["data"] == "synthetic" else
                 data.celeba_halfres(split="train", n=2048))
    settings = {f"ascending h0={h0}, beta={b}": dict(h0=h0, beta=b)
                for h0 in (0.01, 0.05, 0.1, 0.2) for b in (0.1, 0.5)}
    if not args.quick:
        settings["fixed h=0.01, beta=0.01 (authors' demo)"] = dict(h0=0.01, beta=0.01, fixed_step=True,
                                                                   max_steps=100_000)
    print(f"shipped {args.model}, {args.n} images of {size}x{size} per run; distance to 2048 training faces")
    print("| setting | calls per image | total distance (seeds A / B) | seconds |")
    print("|---|---|---|---|")
    for name, kw in settings.items():
        t, d, c = time.perf_counter(), [], []
        for run in range(2):
            seeds = list(range(run * args.n, (run + 1) * args.n))
            with torch.no_grad():
                x, info = sampling.synthesize(model, args.n, size=size, generator=seeds, **kw)
            ok = torch.isfinite(x).flatten(1).all(1)
            d.append(metrics.sample_distance(x[ok], reference)["total"])
            c.append(calls_per_image(info))
        print(f"| {name} | {sum(c) / 2:.0f} | {d[0]:.2f} / {d[1]:.2f} | {time.perf_counter() - t:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
