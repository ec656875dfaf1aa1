"""Command line: python -m mslcp {train,sample,evaluate} --help."""
import argparse
import ast
import csv
import os
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, metrics, nets, presets, pretrained, recipes, sampling, wavelets

EPILOG_TRAIN = """examples:
  python -m mslcp train --list
  python -m mslcp train flat_rf5           # the shipped recipe, on a CPU: writes runs/flat_rf5.safetensors
  python -m mslcp train flat_rf5 --set steps=200 --set net.width=16
  python -m mslcp train multiscale_rf5 --set low.steps=1000 --set level0.sigma_range="(0, 0.2)"
  python -m mslcp train flat_rf9 --preset colab --out runs/colab
  torchrun --nproc-per-node 4 -m mslcp train flat_rf9 --preset paper    # several GPUs (DistributedDataParallel)

Interrupted runs resume from DIR/NAME*.pt when started again with the same settings; a run with other settings is
refused with the fields that differ and the checkpoints they change (delete those: the nets of a multi-scale recipe
whose settings did not change are reused). --set keys: any field that
`--list --verbose` shows; a plain key applies to every net of a multi-scale recipe, low.KEY and levelJ.KEY to one."""


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string (data=celeba)


def _settings(pairs):
    out = {}
    for p in pairs:
        key, eq, value = p.partition("=")
        if not eq or not key:
            raise SystemExit(f"--set expects key=value, got {p!r}")
        out[key] = _value(value)
    return out


def _model(name):
    """A .safetensors file, or the name of a shipped checkpoint."""
    if Path(name).exists():
        return pretrained.load(name)
    if name in pretrained.SHIPPED:
        return pretrained.shipped(name)
    raise SystemExit(f"{name}: no such file, and not a shipped checkpoint ({', '.join(sorted(pretrained.SHIPPED))})")


def _device(arg):
    return torch.device(arg or ("cuda" if torch.cuda.is_available() else "cpu"))


def train(args):
    if args.list:
        for name in recipes.RECIPES:
            r = recipes.get(name, args.preset)
            kind = f"multi-scale J={r['levels']}" if r["levels"] else "flat"
            st = recipes.stages(r).values()  # multi-scale: low-pass, level 0, level 1, ...
            steps = "/".join(f"{s['steps']} x {s['batch_size']}" for s in st)
            rf = "/".join(str(nets.BFCNN(**{**s["net"], "width": 1}).rf) for s in st)
            print(f"{name:17} {kind:15} {r['data']:9} {r['image_size']:3}px  width {r['net']['width']}, rf {rf}, "
                  f"steps x batch {steps}" + (f" (low-pass net: {r['low_from']}'s)" if r.get("low_from") else ""))
            if args.verbose:
                print("    " + repr({k: v for k, v in r.items() if k not in ("name", "preset")}))
        return
    if not args.recipe:
        raise SystemExit("name a recipe (python -m mslcp train --list shows them)")
    world = int(os.environ.get("WORLD_SIZE", 1))
    device = _device(args.device)
    if world > 1:  # started by torchrun
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        recipe = recipes.get(args.recipe, args.preset, **_settings(args.set))
    except ValueError as e:
        raise SystemExit(str(e))
    rank = torch.distributed.get_rank() if world > 1 else 0
    try:
        compile = device.type == "cuda" if args.compile is None else args.compile
        model = recipes.run(recipe, args.out, device=device, compile=compile, progress=rank == 0)
    except (ValueError, RuntimeError, OSError) as e:  # settings that differ, a bad checkpoint, diverged training
        raise SystemExit(f"error: {e}")
    if rank == 0:
        out = Path(args.out) / f"{args.recipe}.safetensors"
        pretrained.save(model, out, recipe)
        print(f"wrote {out}")
    if world > 1:
        torch.distributed.destroy_process_group()


def _grid(x, path, ncols=8):
    """Save images (B,1,H,W) in [0,1] as one PNG grid with 2-pixel gaps."""
    from PIL import Image

    B, _, H, W = x.shape
    rows = -(-B // ncols)
    grid = torch.ones(rows * (H + 2) + 2, min(B, ncols) * (W + 2) + 2)
    for i, im in enumerate(x.clamp(0, 1)):
        r, c = divmod(i, ncols)
        grid[2 + r * (H + 2):2 + r * (H + 2) + H, 2 + c * (W + 2):2 + c * (W + 2) + W] = im[0]
    Image.fromarray((grid * 255).round().byte().numpy()).save(path)


def _read_images(path):
    if str(path).endswith(".pt"):
        return torch.load(path, weights_only=True).float()
    return data.gray_image(path)


def sample(args):
    model = _model(args.model).to(_device(args.device))
    multi = hasattr(model, "conditionals")
    recipe = model.recipe or (recipes.get(args.model) if args.model in recipes.RECIPES else {})
    size = args.size or recipe.get("image_size")
    if size is None and args.super_resolve is None:
        raise SystemExit("--size is needed: the checkpoint has no recipe that says its image size")
    bar = tqdm(desc="denoiser calls", unit="call")
    for net in ([model.low, *model.conditionals] if multi else [model]):
        net.register_forward_hook(lambda *a: bar.update() and None)  # a hook that returns None keeps the output
    kw = dict(h0=args.h0, beta=args.beta, generator=args.seed)
    with torch.no_grad():
        if args.super_resolve:
            if not multi:
                raise SystemExit("--super-resolve needs a multi-scale model")
            x = _read_images(args.super_resolve).to(_device(args.device))
            low = wavelets.decompose(x, model.levels, model.wavelet, model.normalize)[0]
            x, info = sampling.super_resolve(model, low, **kw)
        elif multi:
            x, info = sampling.synthesize(model, args.n, size=size, **kw)
        else:
            x, info = sampling.sample(model, (args.n, 1, size, size), sigma_final=args.sigma_final, **kw)
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.model).stem + ("_superres" if args.super_resolve else "_samples")
    torch.save(x.cpu(), out / f"{stem}.pt")
    _grid(x.cpu(), out / f"{stem}.png")
    print(f"wrote {out / stem}.png and .pt: {tuple(x.shape)}, {info['calls']} denoiser calls")


def evaluate(args):
    models = {Path(m).stem: _model(m).to(_device(args.device)) for m in args.models}
    first = args.models[0]
    recipe = models[Path(first).stem].recipe or (recipes.get(first) if first in recipes.RECIPES else {})
    source = args.data or recipe.get("data", "synthetic")
    size = args.size or recipe.get("image_size") or {"synthetic": 32, "celeba80": 80, "celeba": 160}[source]
    if source == "synthetic":
        x = data.synthetic_faces(args.n, size, seed=2)  # seed 2: faces no recipe trains or tests on
    elif source == "celeba80":
        x = data.celeba_halfres(split="test", size=None if size == 80 else size, n=args.n)
    else:
        x = data.celeba(split="test", size=size, n=args.n, download=True)
    x = x.to(_device(args.device))
    g = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(x.shape, generator=g).to(x.device)
    table = {}
    with torch.no_grad(), tqdm(total=len(args.sigmas) * len(models), desc="evaluate") as bar:
        for s in args.sigmas:
            y = x + s * noise
            row = {"noisy": metrics.psnr(y, x).mean().item()}
            for name, m in models.items():
                row[name] = torch.cat([metrics.psnr(m(y[i:i + 64]), x[i:i + 64]) for i in range(0, len(x), 64)]
                                      ).mean().item()
                bar.update()
            table[s] = row
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["noisy", *models]
    with open(out / "denoising.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sigma", *cols])
        w.writerows([[s, *(f"{row[c]:.3f}" for c in cols)] for s, row in table.items()])
    md = [f"PSNR (dB) of {len(x)} {source} test images ({size}x{size}), one noise draw (seed {args.seed})", "",
          "| σ | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    md += [f"| {s} | " + " | ".join(f"{row[c]:.2f}" for c in cols) + " |" for s, row in table.items()]
    (out / "denoising.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {out / 'denoising.md'} and {out / 'denoising.csv'}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mslcp", description="Train, sample from and evaluate the denoisers "
                                "of the book (Kadkhodaie et al. 2023). Each command has its own --help.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a named recipe", epilog=EPILOG_TRAIN,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model from a named recipe of mslcp.recipes; writes DIR/RECIPE.safetensors "
                       "(the weights, the architecture and the recipe) and resumable checkpoints DIR/RECIPE*.pt.")
    t.add_argument("recipe", nargs="?", help="recipe name (see --list)")
    t.add_argument("--list", action="store_true", help="list the recipes and exit")
    t.add_argument("--verbose", action="store_true", help="with --list: every setting of every recipe")
    t.add_argument("--preset", choices=sorted(recipes.PRESETS), default="cpu",
                   help="machine size: cpu (the shipped recipes), colab (~30 min on a T4), paper (default: cpu)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. steps=2, net.width=16, low.steps=100 (repeatable)")
    t.add_argument("--out", default="runs", metavar="DIR", help="output folder (default: runs)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the training step "
                   "(default: on a GPU only; on a CPU it needs a C++ compiler and trains 1.6-3x faster after 20-60 s "
                   "of compiling, with results that differ from an uncompiled run by rounding)")
    t.set_defaults(run=train)
    s = sub.add_parser("sample", help="draw images from a model (Algorithm 1 or 2) or super-resolve images",
                       description="Draw images from the prior of a denoiser: Algorithm 2 (coarse-to-fine) for a "
                       "multi-scale model, Algorithm 1 for a flat one; or super-resolve given images from their "
                       "low-pass. Writes DIR/NAME_samples.png (a grid) and .pt (the tensor (N,1,H,W) in [0,1]).")
    s.add_argument("model", help="a .safetensors file written by `train`, or a shipped name (e.g. multiscale_rf5)")
    s.add_argument("--n", type=int, default=16, help="number of images (default: 16)")
    s.add_argument("--size", type=int, help="image side (default: the recipe's image size)")
    s.add_argument("--super-resolve", metavar="IMAGES", help="a .pt tensor (B,1,H,W) or an image file: keep its "
                   "low-pass x_J and draw the details")
    s.add_argument("--h0", type=float, default=0.01, help="initial step size (default: 0.01, the paper's)")
    s.add_argument("--beta", type=float, default=0.1, help="noise injection, 1 = none (default: 0.1)")
    s.add_argument("--sigma-final", type=float, default=0.01, help="flat model: stop at this σ (default: 0.01)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.add_argument("--out", default="samples", metavar="DIR", help="output folder (default: samples)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    s.set_defaults(run=sample)
    e = sub.add_parser("evaluate", help="denoising table: PSNR per σ per model",
                       description="Denoise held-out images at several σ with each model; writes the PSNR table as "
                       "DIR/denoising.md and DIR/denoising.csv. Data and size default to the first model's recipe.")
    e.add_argument("models", nargs="+", help=".safetensors files or shipped names")
    e.add_argument("--data", choices=["synthetic", "celeba", "celeba80"], help="test images (default: the recipe's)")
    e.add_argument("--size", type=int, help="image side (default: the recipe's, else the data's: synthetic 32, "
                   "celeba80 80, celeba 160)")
    e.add_argument("--n", type=int, default=64, help="number of test images (default: 64)")
    e.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4],
                   help="noise levels on the [0, 1] scale (default: 0.05 0.1 0.2 0.4)")
    e.add_argument("--seed", type=int, default=0, help="seed of the noise draw (default: 0)")
    e.add_argument("--out", default="evaluation", metavar="DIR", help="output folder (default: evaluation)")
    e.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    e.set_defaults(run=evaluate)
    args = p.parse_args(argv)
    torch.set_num_threads(presets.threads())  # the library's CPU thread policy ($MSLCP_THREADS overrides it)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
