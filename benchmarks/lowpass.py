"""The low-pass run of Algorithm 2 on the authors' global net (40x40): how often it draws a face layout, and how far
its samples are from real 40x40 faces, for the ascending step schedule and for fixed steps (the released demo's
h = 0.01, beta = 0.01 stopped on a signal-to-noise ratio, and larger ones).

    MSLCP_WEIGHTS=... python benchmarks/lowpass.py --n 256                      # a GPU: every setting below
    MSLCP_WEIGHTS=... python benchmarks/lowpass.py --n 16 --rows ascending fixed  # a CPU
    MSLCP_WEIGHTS=... python benchmarks/lowpass.py --n 2 --rows demo --seed 16    # the demo's row, 2 images

Reference: 40x40 real faces, the 2x2 block averages of the half-resolution CelebA copy (80x80, the paper's 160x160
crop at half resolution), so 4x4 block averages of the crop: the images the low-pass net was trained on
(the authors' 160 and 320 models share this net: the two files have one SHA-256). `--reference FILE` reads them
from a torch file (a dict with "train" (N,1,40,40) and "test"), for a machine without the CelebA copy.

Measures, per setting (one image per seed, the same seeds for every setting):
- face: the fraction of samples whose layout score (metrics.layout_score against the mean training face) is at
  least the median of the held-out real faces' scores: 0.5 for images laid out like real faces, near 0 for
  blobs and textures. (A low quantile does not separate them: CelebA's backgrounds and lighting vary so much that
  the 5th percentile of real faces' scores is about 0, which any blob reaches.) "layout" is the layout part of
  the distance below (the 2-Wasserstein distance of the scores' distributions, in data standard deviations);
- distance: metrics.sample_distance to 2048 training faces (the total, lower is better), and the same after each
  sample is rescaled to [0, 0.8], as the authors' multi_scale_synthesis does with the low-pass it drew;
- calls per image (each image stops on its own).
Stops: sigma_t <= 0.01 (the book's), or the authors' relative test sigma_t <= s std(y_t) ("rel s", the demo's
synthesis uses s = 0.25 down to 0.05, started at mean 0: their y_0 ~ N(0, 1)).
"""
import argparse
import time

import torch
import torch.nn.functional as F

from mslcp import data, metrics, pretrained, presets, sampling

# name -> settings of sampling.sample; "stop" is sigma_final, "rel" the authors' relative stop
ASCENDING = {f"ascending h0={h0}, beta={b}": dict(h0=h0, beta=b)
             for h0 in (0.1, 0.05, 0.01) for b in (0.5, 0.1)}
FIXED = {"fixed h=0.2, beta=0.2": dict(h0=0.2, beta=0.2, fixed_step=True),
         "fixed h=0.1, beta=0.1": dict(h0=0.1, beta=0.1, fixed_step=True),
         "fixed h=0.05, beta=0.05": dict(h0=0.05, beta=0.05, fixed_step=True)}
DEMO = {"demo: fixed h=0.01, beta=0.01, rel 0.25, mean 0": dict(h0=0.01, beta=0.01, fixed_step=True,
                                                                sigma_final=0.25, relative_stop=True, mean=0.0)}
HEADER = "| setting | calls per image | face layout | layout | distance | distance after [0, 0.8] |"


def rescale(x, top=0.8):
    """The authors' rescale_image_range, per image: (B,C,H,W) -> min 0, max top."""
    lo = x.amin((1, 2, 3), keepdim=True)
    hi = x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12) * top


def face_threshold(train, test, q=0.5):
    """The q-quantile of the held-out faces' layout scores against the mean training face."""
    return float(torch.quantile(metrics.layout_score(test, train.mean(0)).double(), q))


def measure(net, seeds, train, threshold, **kw):
    """One low-pass sample per seed -> (fraction with a face layout, layout distance, distance, distance after
    rescale, calls per image, samples). kw: settings of sampling.sample (defaults: sigma0 = 1,
    sigma_final = 0.01, mean 0.5)."""
    kw = {"sigma_final": 0.01, "max_steps": 200_000, **kw}
    x, info = sampling.sample(net, (len(seeds), 1, 40, 40), generator=list(seeds), **kw)
    x = x.cpu()
    ok = torch.isfinite(x).flatten(1).all(1)
    x = x[ok]
    face = float((metrics.layout_score(x, train.mean(0)) >= threshold).float().mean())
    dist = metrics.sample_distance(x, train)
    d, lay = dist["total"], dist["layout"]
    d8 = metrics.sample_distance(rescale(x), train)["total"]
    return face, lay, d, d8, float((info.steps.float() + 1).mean()), x


def reference(path=None):
    """(train (2048,1,40,40), test (N,1,40,40)) real 40x40 faces."""
    if path:
        ref = torch.load(path, weights_only=True)
        return ref["train"], ref["test"]
    return tuple(F.avg_pool2d(data.celeba_halfres(split=s, n=n), 2) for s, n in (("train", 2048), ("test", None)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="samples per setting (default 64)")
    ap.add_argument("--rows", nargs="+", default=["ascending", "fixed", "demo"], choices=["ascending", "fixed", "demo"],
                    help="which settings (default all; the demo's fixed step takes ~28,000 calls per image)")
    ap.add_argument("--reference", help="a torch file with 'train' and 'test' 40x40 faces (else the CelebA copy)")
    ap.add_argument("--seed", type=int, default=0, help="first seed (default 0): seeds seed..seed+n-1")
    ap.add_argument("--save", help="save the samples of every setting to this torch file")
    args = ap.parse_args()
    torch.set_num_threads(presets.threads())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = pretrained.paper_lowpass().to(device)
    train, test = reference(args.reference)
    threshold = face_threshold(train, test)
    groups = {"ascending": ASCENDING, "fixed": FIXED, "demo": DEMO}
    settings = {k: v for g in args.rows for k, v in groups[g].items()}
    floor = metrics.sample_distance(test[:args.n], train)["total"]
    floor8 = metrics.sample_distance(rescale(test[:args.n]), train)["total"]
    print(f"lowpass.py on {device}, {args.n} samples per setting; face layout: layout score >= {threshold:.3f} "
          f"(median of {len(test)} held-out faces); {min(args.n, len(test))} held-out faces are "
          f"{floor:.2f} from the 2048 training faces, {floor8:.2f} "
          "after [0, 0.8]")
    print(HEADER + " seconds |")
    print("|---|---|---|---|---|---|---|")
    saved = {}
    for name, kw in settings.items():
        t = time.perf_counter()
        face, lay, d, d8, calls, x = measure(net, range(args.seed, args.seed + args.n), train, threshold, **kw)
        saved[name] = x
        print(f"| {name} | {calls:.0f} | {face:.2f} | {lay:.2f} | {d:.2f} | {d8:.2f} | {time.perf_counter() - t:.0f} |",
              flush=True)
    if args.save:
        torch.save(saved, args.save)


if __name__ == "__main__":
    main()
