"""Sample quality against denoiser calls for Algorithm 2 (mslcp.sampling.synthesize): the ascending step schedule
for several h0 and beta, against fixed steps at every level (h = beta = 0.01, and larger ones), and (--demo) the
authors' released demo's per-level settings: the fixed step h = beta = 0.01 for the low-pass only, stopped on their
relative test at 0.25 from a start of mean 0 and rescaled to [0, 0.8]; the details ascending from h0 = 0.01 with
beta = 1, stopped on their relative test at 0.01 (0.015 at the finest level).

    python benchmarks/quality_per_call.py             # the shipped multiscale_rf5, 32x32 synthetic faces (CPU)
    python benchmarks/quality_per_call.py --n 16 --quick
    python benchmarks/quality_per_call.py --model celeba80_multiscale_rf9 --n 16   # real faces, 80x80
    python benchmarks/quality_per_call.py --model paper13 --n 16      # the authors' RF-13 model, 160x160 (a GPU)
    python benchmarks/quality_per_call.py --model paper13 --n 8 --quick --h0 0.01 --beta 0.05 0.02 --fixed 0.05,0.05
    python benchmarks/quality_per_call.py --plot q.png                # the table, and a figure of it
    python benchmarks/quality_per_call.py --replot benchmarks/README.md --plot benchmarks/quality_per_call.png

Quality: metrics.sample_distance(samples, data)["total"] against 2048 training faces of the model's recipe
(synthetic, or CelebA 80x80 from the half-resolution copy; lower is better). The authors' model (paper13, weights
from $MSLCP_WEIGHTS or downloaded) draws 160x160 faces; they are compared at 80x80 (2x2 block averages) with the
half-resolution CelebA faces, the same crop at half the resolution, so its finest level is not measured. Each
setting runs twice with disjoint seeds; the table gives both values, so the run-to-run noise of the measure is
visible next to the differences between settings. Calls: denoiser calls per image, summed over the levels (each
image stops on its own; a batched call serves every image still running). Every run stops at sigma_t <= 0.01
(the authors' code stops on a signal-to-noise test instead; with this stop the fixed step needs more calls),
except the --demo row, which stops as their code does (sampling's relative_stop=True).
"""
import argparse
import re
import time

import torch
import torch.nn.functional as F

from mslcp import data, metrics, pretrained, presets, recipes, sampling, synthetic


FIXED = dict(h0=0.01, beta=0.01, fixed_step=True, max_steps=100_000)  # the demo's low-pass step, at every level
SLOW = "fixed h=0.01, beta=0.01, all levels"  # its row (--quick skips it)
DEMO = "authors' demo: low-pass fixed h=0.01, beta=0.01; details ascending h0=0.01, beta=1"


def calls_per_image(info):
    """Mean over images of the denoiser evaluations summed over levels (steps + 1 per level)."""
    return sum((lv.steps.float() + 1).mean().item() for lv in info.levels.values())


def measure(model, size, shrink, reference, seeds, **kw):
    """Draw one image per seed with Algorithm 2 (kw: its settings) -> (distance to reference after shrink x shrink
    block averages, denoiser calls per image)."""
    with torch.no_grad():
        x, info = (demo_synthesis(model, size, seeds) if kw.get("demo") else
                   sampling.synthesize(model, len(seeds), size=size, generator=list(seeds), **kw))
    x = F.avg_pool2d(x.cpu(), shrink)
    ok = torch.isfinite(x).flatten(1).all(1)
    return metrics.sample_distance(x[ok], reference)["total"], calls_per_image(info)


def demo_synthesis(model, size, seeds):
    """The released demo's synthesis, batched: the low-pass with the fixed step h = beta = 0.01 from mean 0, stopped
    on the relative test at 0.25 and rescaled per image to [0, 0.8]; then the details ascending from h0 = 0.01
    with beta = 1, relative stop at 0.01 (0.015 at level 0). -> (images, info as synthesize)."""
    J, gen = model.levels, list(seeds)
    low, info_low = sampling.sample(model.low, (len(gen), 1, size >> J, size >> J), h0=0.01, beta=0.01, mean=0.0,
                                    fixed_step=True, sigma_final=0.25, relative_stop=True, generator=gen,
                                    max_steps=200_000)
    lo, hi = low.amin((1, 2, 3), keepdim=True), low.amax((1, 2, 3), keepdim=True)
    low = (low - lo) / (hi - lo) * 0.8  # their rescale_image_range(low, 0.8)
    x, info = sampling.super_resolve(model, low, h0=0.01, beta=1.0, relative_stop=True, generator=gen,
                                     sigma_final=(0.015,) + (0.01,) * J)
    info.levels[J] = info_low
    return x, info


def step_and_beta(text):
    """argparse type of --fixed: "H,BETA" -> (H, BETA), both in (0, 1]."""
    try:
        h, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fixed takes H,BETA (two numbers), got {text!r}") from None
    if not (0 < h <= 1 and 0 < b <= 1):
        raise argparse.ArgumentTypeError(f"--fixed H,BETA must both be in (0, 1], got {text!r}")
    return h, b


HEADER = "| setting | calls per image | total distance (seeds A / B) |"


def read_tables(text, header=HEADER):
    """Every table with this header in a text (this script's output, or benchmarks/README.md) -> [(model, rows)],
    rows [(setting, calls per image, (distance of each run, ...))]; a run given as "–" was not made. The model is
    the --model of the nearest line above the table that runs this script (the default model when it names none)."""
    tables, model, lines = [], None, text.splitlines()
    for i, line in enumerate(lines):
        if "quality_per_call.py" in line:
            m = re.search(r"--model (\S+?)[`\s]", line + " ")
            model = m.group(1) if m else "multiscale_rf5"
        if line.startswith(header):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                setting, calls, dist = (c.strip() for c in row.strip("|").split("|")[:3])
                rows.append((setting, int(calls), tuple(float(v) for v in dist.split("/") if v.strip() != "–")))
            tables.append((model, rows))
    return tables


def plot(tables, path):
    """One panel per (model, rows): the runs' distances against calls per image (log scale), a vertical line
    through them; ascending schedules, larger fixed steps and h = beta = 0.01 at every level ("all levels") in
    three styles (the demo's per-level row, if any, a fourth). The range of the all-levels row is shaded, and a
    dotted line marks a tenth of its calls: points below the band and left of the line are the issue's target.
    Saved to path; returns the figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.6), squeeze=False)
    styles = {"ascending": dict(color="C0", marker="o"), "fixed": dict(color="C1", marker="s"),
              "all levels": dict(color="C3", marker="*", markersize=12),
              "demo": dict(color="C2", marker="D")}
    for ax, (model, rows) in zip(axes[0], tables):
        for setting, calls, runs in rows:
            kind = "demo" if "demo" in setting else "all levels" if "all levels" in setting else setting.split()[0]
            ax.plot([calls] * len(runs), runs, linestyle="-", label=kind, **styles[kind])
        slow = [(calls, runs) for setting, calls, runs in rows if "all levels" in setting]
        if slow:  # the target: the quality of h = beta = 0.01 (the range of its runs) with 10x fewer calls
            calls, runs = slow[0]
            ax.axhspan(min(runs), max(runs), color="C3", alpha=0.12, linewidth=0)
            ax.axvline(calls / 10, color="gray", linestyle=":", linewidth=1)
            ax.annotate("10x fewer calls\nthan h = 0.01", (calls / 10, 1), xycoords=("data", "axes fraction"),
                        xytext=(-3, -3), textcoords="offset points", ha="right", va="top", fontsize=7,
                        color="gray")
        handles = {h.get_label(): h for h in ax.get_lines() if h.get_label() in styles}
        ax.legend([handles[k] for k in styles if k in handles], [k for k in styles if k in handles], fontsize=8,
                  loc="lower right")
        ax.set(xscale="log", xlabel="denoiser calls per image", ylabel="total distance (lower is better)",
               title=model)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="images per run (default 64)")
    ap.add_argument("--quick", action="store_true", help="skip the slow fixed step h = beta = 0.01 at every level")
    ap.add_argument("--demo", action="store_true", help="add the released demo's per-level settings (slow)")
    ap.add_argument("--h0", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2],
                    help="initial step sizes of the ascending schedule (default 0.01 0.05 0.1 0.2)")
    ap.add_argument("--beta", type=float, nargs="+", default=[0.1, 0.5],
                    help="noise-injection factors of the ascending schedule (default 0.1 0.5)")
    ap.add_argument("--fixed", type=step_and_beta, nargs="*", default=[(0.1, 0.1)], metavar="H,BETA",
                    help="fixed-step settings besides h = beta = 0.01 (default 0.1,0.1)")
    ap.add_argument("--model", default="multiscale_rf5",
                    help="a shipped multi-scale model (default multiscale_rf5), or paper13: the authors' RF 13")
    ap.add_argument("--plot", metavar="PNG", help="also save a figure of the table: distance against calls")
    ap.add_argument("--replot", metavar="MARKDOWN",
                    help="measure nothing: plot (to --plot) the tables this script printed into a Markdown file")
    args = ap.parse_args()
    if args.replot:
        if not args.plot:
            ap.error("--replot needs --plot PNG, the figure to write")
        with open(args.replot) as f:
            tables = read_tables(f.read())
        if not tables:
            ap.error(f"--replot: no table starting {HEADER!r} in {args.replot}")
        plot(tables, args.plot)
        return
    torch.set_num_threads(presets.threads())
    if args.model == "paper13":  # 160x160 faces, compared at 80x80
        model, size, shrink, source = pretrained.paper_multiscale(13), 160, 2, "celeba80"
    else:
        r = recipes.get(args.model)
        model, size, shrink, source = pretrained.shipped(args.model), r["image_size"], 1, r["data"]
    reference = (synthetic.faces(2048, size, seed=0) if source == "synthetic" else
                 data.celeba_halfres(split="train", n=2048))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    settings = {f"ascending h0={h0}, beta={b}": dict(h0=h0, beta=b)
                for h0 in args.h0 for b in args.beta}
    settings.update({f"fixed h={h}, beta={b}": dict(FIXED, h0=h, beta=b) for h, b in args.fixed})
    if not args.quick:
        settings[SLOW] = FIXED
    if args.demo:
        settings[DEMO] = dict(demo=True)
    print(f"quality_per_call.py --model {args.model} on {device}, {args.n} images of {size}x{size} per run; "
          "distance to 2048 training faces" + (f" at {size // shrink}x{size // shrink}" if shrink > 1 else ""))
    print(HEADER + " seconds |")
    print("|---|---|---|---|")
    rows = []
    for name, kw in settings.items():
        t = time.perf_counter()
        (d0, c0), (d1, c1) = (measure(model, size, shrink, reference, range(i * args.n, (i + 1) * args.n), **kw)
                              for i in range(2))
        rows.append((name, round((c0 + c1) / 2), (d0, d1)))
        print(f"| {name} | {rows[-1][1]} | {d0:.2f} / {d1:.2f} | {time.perf_counter() - t:.0f} |", flush=True)
    if args.plot:
        plot([(args.model, rows)], args.plot)


if __name__ == "__main__":
    main()
