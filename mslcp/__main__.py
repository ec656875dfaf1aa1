"""Command line: python -m mslcp {train,sample,evaluate} --help."""
import argparse
import ast
import csv
import math
import os
import sys
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, metrics, nets, presets, pretrained, recipes, sampling, synthetic, wavelets
from .train import TrainingDiverged

EPILOG_TRAIN = """examples:
  python -m mslcp train --list
  python -m mslcp train flat_rf5           # the shipped recipe, on a CPU: writes runs/flat_rf5.safetensors
  python -m mslcp train flat_rf5 --set steps=200 --set net.width=16
  python -m mslcp train multiscale_rf5 --set low.steps=1000 --set level0.sigma_range="(0, 0.2)"
  python -m mslcp train flat_rf9 --budget colab --out runs/colab
  torchrun --nproc-per-node 4 -m mslcp train flat_rf9 --budget paper    # several GPUs (DistributedDataParallel)

Interrupted runs resume from DIR/NAME*.pt when started again with the same settings; a run with other settings is
refused with the fields that differ and the checkpoints they change (delete those: the nets of a multi-scale recipe
whose settings did not change are reused). --set keys: any field that
`--list --verbose` shows; a plain key applies to every net of a multi-scale recipe, low.KEY and levelJ.KEY to one."""


EXIT_CODES = """exit status:
  0  done: everything asked was done (no sampled image failed)
  1  the run failed: every sampled image failed, or training diverged (also: a bug, with its traceback)
  2  a mistake in the input (an argument, a file, missing data): one line `error: ...`, no traceback
  3  done in part: some sampled images failed (NaN in the .pt, black in the grid); the summary names them
  130 interrupted (Ctrl-C); a training run resumes when started again"""


class UserError(Exception):
    """A mistake in the command line's input: printed as one line `error: ...`, exit status 2."""


class RunFailed(Exception):
    """The run did not do what was asked (every image failed): `error: ...`, exit status 1."""


def _number(kind, test, allowed):
    """An argparse type: kind(text) for which test holds, else an argparse error naming what is allowed."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not test(v):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return v
    parse.__name__ = allowed  # what argparse names in "invalid ... value"
    return parse


POSITIVE = _number(int, lambda v: v >= 1, "an integer >= 1")
SEED = _number(int, lambda v: 0 <= v < 2**63, "an integer >= 0")
UNIT = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
SIGMA = _number(float, lambda v: 0 < v < math.inf, "a number > 0")
SIGMAS = _number(float, lambda v: 0 <= v < math.inf, "a noise level >= 0")


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
            raise UserError(f"--set expects KEY=VALUE, got {p!r}")
        out[key] = _value(value)
    return out


def _model(name):
    """A .safetensors file, or the name of a shipped checkpoint: a flat or a multi-scale denoiser."""
    if Path(name).exists():
        model = pretrained.load(name)
    elif name in pretrained.SHIPPED:
        model = pretrained.shipped(name)
    else:
        raise UserError(f"{name}: no such file, and not a shipped checkpoint ({', '.join(sorted(pretrained.SHIPPED))})")
    if isinstance(model, nets.ConditionalBFCNN):
        raise UserError(f"{name} is a conditional net (one level of a multi-scale model): give a flat or a "
                        "multi-scale model")
    return model


def _device(arg):
    if arg is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(arg)
    except RuntimeError:
        raise UserError(f"--device {arg!r} is not a device: cpu, cuda, cuda:1") from None
    if d.type == "cuda" and (not torch.cuda.is_available() or (d.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"--device {arg}: no such CUDA device here ({torch.cuda.device_count()} GPUs)")
    return d


def _outdir(path):
    """The output folder, checked before any work (a file there, or a folder that cannot be made, is refused); it is
    created when the results are written."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {path} is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {path}: cannot create the folder ({parent} is a file)")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {path}: cannot create the folder ({parent} is not writable)")
    return out


def train(args):
    if args.list:
        for name in recipes.RECIPES:
            r = recipes.get(name, args.budget)
            kind = f"multi-scale J={r['levels']}" if r["levels"] else "flat"
            st = recipes.stages(r).values()  # multi-scale: low-pass, level 0, level 1, ...
            steps = "/".join(f"{s['steps']} x {s['batch_size']}" for s in st)
            rf = "/".join(str(1 + sum(k - 1 for k in nets.check_config(**s["net"]))) for s in st)
            print(f"{name:17} {kind:15} {r['data']:9} {r['image_size']:3}px  width {r['net']['width']}, rf {rf}, "
                  f"steps x batch {steps}" + (f" (low-pass net: {r['low_from']}'s)" if r.get("low_from") else ""))
            if args.verbose:
                print("    " + repr({k: v for k, v in r.items() if k not in ("name", "budget")}))
        return 0
    if not args.recipe:
        raise UserError("name a recipe (python -m mslcp train --list shows them)")
    recipe = recipes.get(args.recipe, args.budget, **_settings(args.set))
    _outdir(args.out)
    world = int(os.environ.get("WORLD_SIZE", 1))
    device = _device(args.device)
    if world > 1:  # started by torchrun
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    compile = device.type == "cuda" if args.compile is None else args.compile
    try:
        model = recipes.run(recipe, args.out, device=device, compile=compile, progress=rank == 0)
    except TrainingDiverged as e:
        raise RunFailed(f"{e} (the checkpoints keep the last good state)") from None
    if rank == 0:
        out = Path(args.out) / f"{args.recipe}.safetensors"
        pretrained.save(model, out, recipe)
        print(f"wrote {out}")
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


def _grid(x, path, ncols=8):
    """Save images (B,1,H,W) in [0,1] as one PNG grid with 2-pixel gaps (a NaN image, a failed one, is black)."""
    from PIL import Image

    B, _, H, W = x.shape
    rows = -(-B // ncols)
    grid = torch.ones(rows * (H + 2) + 2, min(B, ncols) * (W + 2) + 2)
    for i, im in enumerate(x.nan_to_num(0.0).clamp(0, 1)):
        r, c = divmod(i, ncols)
        grid[2 + r * (H + 2):2 + r * (H + 2) + H, 2 + c * (W + 2):2 + c * (W + 2) + W] = im[0]
    Image.fromarray((grid * 255).round().byte().numpy()).save(path)


def _read_images(path):
    """--super-resolve's images: a .pt tensor (B,1,H,W) or an image file -> (B,1,H,W), by the library's rule for
    images (data.check_images: floats in [0, 1]; a uint8 tensor is refused with the fix, not rescaled)."""
    name = f"--super-resolve {path}"
    if not Path(path).is_file():
        raise UserError(f"{name}: no such file")
    if str(path).endswith(".pt"):
        try:
            x = torch.load(path, weights_only=True)
        except Exception as e:  # not a tensor file, or one that holds more than tensors
            raise UserError(f"{name}: cannot read it as a tensor ({type(e).__name__})") from None
    else:
        x = data.gray_image(path)
    data.check_images(x, name)
    if x.ndim != 4 or x.shape[1] != 1 or not len(x):
        raise UserError(f"{name}: expected gray images (B,1,H,W), got shape {tuple(x.shape)}")
    return x


def _training_images(recipe, n=64):
    """n of the recipe's training images (as recipes.images draws them), or (None, why) where they are not here."""
    kind, size = recipe.get("data"), recipe.get("image_size")
    try:
        if kind == "synthetic":
            return synthetic.faces(n, size, seed=0), ""
        if kind == "celeba80":
            return data.celeba_halfres(split="train", size=None if size == 80 else size, n=n), ""
        if kind == "celeba":
            return data.celeba(split="train", size=size, n=n), ""  # never downloads
    except RuntimeError as e:
        return None, str(e).split(". ")[0]
    return None, "the checkpoint has no recipe"


def _stopping_level(model, recipe, name):
    """The book's stopping level for a flat net (sampling.stopping_level on 64 of its training images)."""
    images, why = _training_images(recipe)
    if images is None:
        _note(f"{name}: no training images to measure the stopping level ({why}): stopping at sigma = 0.01, which "
              "flat nets often do not reach (pass --sigma-final)")
        return 0.01
    level = sampling.stopping_level(model, images)
    if level >= 1:
        raise UserError(f"{name} removes {level / 1.5:.3g} (rms) from clean training images: its stopping level "
                        f"{level:.3g} is not below sigma0 = 1 (is it a denoiser of these images?); pass --sigma-final")
    _note(f"flat model: stopping at sigma_L = {level:.4f} = max(0.01, 1.5 x what the net removes from 64 clean "
          "training images), the book's rule (--sigma-final sets another)")
    return level


def _note(text):
    tqdm.write(f"note: {text}", file=sys.stderr)


def sample(args):
    out = _outdir(args.out)
    device = _device(args.device)
    model = _model(args.model).to(device)
    multi = hasattr(model, "conditionals")
    recipe = model.recipe or (recipes.get(args.model) if args.model in recipes.RECIPES else {})
    if args.super_resolve is not None:
        if not multi:
            raise UserError(f"--super-resolve needs a multi-scale model; {args.model} is flat")
        if args.size is not None or args.n is not None:
            raise UserError(f"--{'size' if args.size is not None else 'n'} does not apply to --super-resolve: the "
                            "images set the size and the number")
        x = _read_images(args.super_resolve).to(device)
        if x.shape[-1] % 2**model.levels or x.shape[-2] % 2**model.levels:
            raise UserError(f"--super-resolve: images {x.shape[-2]}x{x.shape[-1]} are not divisible by "
                            f"2^levels = {2**model.levels}")
    else:
        size = args.size if args.size is not None else recipe.get("image_size")
        if size is None:
            raise UserError("--size is needed: the checkpoint has no recipe that says its image size")
        if multi and size % 2**model.levels:
            raise UserError(f"--size {size}: {args.model} needs a multiple of 2^levels = {2**model.levels}")
    if not multi:
        sigma_final = args.sigma_final if args.sigma_final is not None else _stopping_level(model, recipe, args.model)
    elif args.sigma_final is not None:
        raise UserError("--sigma-final applies to flat models; a multi-scale model stops every level at 0.01")
    kw = dict(h0=args.h0, beta=args.beta, generator=args.seed)
    n = 16 if args.n is None else args.n
    with tqdm(desc="denoiser calls", unit="call") as bar:
        for net in ([model.low, *model.conditionals] if multi else [model]):
            net.register_forward_hook(lambda *a: bar.update() and None)  # returns None: keeps the output
        try:
            with torch.no_grad():
                if args.super_resolve:
                    low = wavelets.decompose(x, model.levels, model.wavelet, model.normalize)[0]
                    x, info = sampling.super_resolve(model, low, **kw)
                elif multi:
                    x, info = sampling.synthesize(model, n, size=size, **kw)
                else:
                    x, info = sampling.sample(model, (n, 1, size, size), sigma_final=sigma_final, **kw)
        except RuntimeError as e:
            if not str(e).startswith("sampling diverged"):
                raise
            raise RunFailed(f"{e}; nothing written") from None  # every image diverged
    status = info.status
    failed = [i for i, s in enumerate(status) if s == "diverged"]
    n = len(status)
    if len(failed) == n:
        raise RunFailed(f"every image failed ({n} of {n} diverged); nothing written. Lower --h0, raise --beta" +
                        ("" if multi else " or --sigma-final"))
    stem = Path(args.model).stem + ("_superres" if args.super_resolve else "_samples")
    out.mkdir(parents=True, exist_ok=True)
    torch.save(x.cpu(), out / f"{stem}.pt")
    _grid(x.cpu(), out / f"{stem}.png")
    late = status.count("max_steps")
    print(f"wrote {out / stem}.png and .pt: {tuple(x.shape)}, {info.calls} denoiser calls; {n - len(failed) - late}"
          f" of {n} images converged" + (f", {late} stopped at max_steps (kept)" if late else ""))
    if failed:
        print(f"warning: {len(failed)} of {n} images failed (diverged: NaN in the .pt, black in the grid): images "
              f"{', '.join(map(str, failed[:20]))}{' ...' if len(failed) > 20 else ''} (exit status 3)",
              file=sys.stderr)
        return 3
    return 0


def _labels(names):
    """A column name per model: the file's stem, or its path where two stems are the same; refused if two agree."""
    stems = [Path(m).stem for m in names]
    labels = [s if stems.count(s) == 1 else str(Path(m).with_suffix("")) for m, s in zip(names, stems)]
    if dup := sorted({x for x in labels if labels.count(x) > 1}):
        raise UserError(f"{', '.join(dup)} given twice: each model gets one column")
    if taken := sorted({"noisy", "sigma"} & set(labels)):
        raise UserError(f"a model may not be called {taken[0]!r} (a column of the table): rename the file")
    return labels


DATA_SIZE = {"synthetic": 32, "celeba80": 80, "celeba": 160}


def _test_images(source, size, n):
    """The test images of `evaluate`: a built-in set, or a folder of the user's own images."""
    if source not in DATA_SIZE:
        if not Path(source).is_dir():
            raise UserError(f"--data {source}: not synthetic, celeba80 or celeba, and not a folder of images")
        return data.image_folder(source, size, n=n)
    if source == "synthetic":
        if size % 8:
            raise UserError(f"--size {size}: synthetic faces need a multiple of 8")
        return synthetic.faces(n, size, seed=2)  # seed 2: faces no recipe trains or tests on
    if source == "celeba80":
        return data.celeba_halfres(split="test", size=None if size == 80 else size, n=n)
    return data.celeba(split="test", size=size, n=n, download=True)  # says so before a download starts


def evaluate(args):
    out = _outdir(args.out)
    device = _device(args.device)
    labels = _labels(args.models)
    models = {label: _model(m).to(device) for label, m in zip(labels, args.models)}
    first = args.models[0]
    recipe = models[labels[0]].recipe or (recipes.get(first) if first in recipes.RECIPES else {})
    source = args.data if args.data is not None else recipe.get("data", "synthetic")
    size = args.size if args.size is not None else recipe.get("image_size", DATA_SIZE.get(source))
    if size is None:
        raise UserError(f"--size is needed for the images of {source} (the first model has no recipe)")
    for label, m in models.items():
        if hasattr(m, "conditionals") and size % 2**m.levels:
            raise UserError(f"--size {size}: {label} needs a multiple of 2^levels = {2**m.levels}")
    x = _test_images(source, size, args.n).to(device)
    if len(x) < args.n:
        _note(f"{source} has {len(x)} test images, fewer than --n {args.n}: the table uses {len(x)}")
    psnrs = metrics.denoising_psnr(models, x, args.sigmas, seed=args.seed, batch_size=64)
    cols, rows = ["noisy", *models], list(enumerate(args.sigmas))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "denoising.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sigma", *cols])
        w.writerows([[s, *(f"{psnrs[c][i]:.3f}" for c in cols)] for i, s in rows])
    what = source if source in DATA_SIZE else f"images of {source}"
    md = [f"PSNR (dB) of {len(x)} {what} test images ({size}x{size}), one noise draw (seed {args.seed})", "",
          "| σ | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    md += [f"| {s} | " + " | ".join(f"{psnrs[c][i]:.2f}" for c in cols) + " |" for i, s in rows]
    (out / "denoising.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {out / 'denoising.md'} and {out / 'denoising.csv'}")
    return 0


class _Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts (descriptions); keeps the line breaks of texts that have them (exit codes)."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage, then the error on a line of its own; exit status 2
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _close_bars():
    """Close unfinished progress bars, so that a message starts on a line of its own."""
    from tqdm import tqdm as std
    for bar in list(getattr(std, "_instances", ())):
        bar.close()


def _ours(e):
    """Whether e was raised by this package's own code (a checked input), not inside torch or another library."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().parent == Path(__file__).resolve().parent


def _show_warning(message, category, filename, lineno, file=None, line=None):
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _parser():
    """The command line's parser: train, sample, evaluate."""
    p = _Parser(prog="python -m mslcp", description="Train, sample from and evaluate the denoisers of the book "
                "(Kadkhodaie et al. 2023). Each command has its own --help.", epilog=EXIT_CODES,
                formatter_class=_Formatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model from a named recipe", epilog=EPILOG_TRAIN + "\n\n" + EXIT_CODES,
                       formatter_class=_Formatter,
                       description="Train a model from a named recipe of mslcp.recipes; writes DIR/RECIPE.safetensors "
                       "(the weights, the architecture and the recipe) and resumable checkpoints DIR/RECIPE*.pt.")
    t.add_argument("recipe", nargs="?", help="recipe name (see --list)")
    t.add_argument("--list", action="store_true", help="list the recipes and exit")
    t.add_argument("--verbose", action="store_true", help="with --list: every setting of every recipe")
    t.add_argument("--budget", choices=sorted(recipes.BUDGETS), default="book",
                   help="training budget: book (the shipped recipes), colab (~30 min on a T4), paper (default: book)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. steps=2, net.width=16, low.steps=100 (repeatable)")
    t.add_argument("--out", default="runs", metavar="DIR", help="output folder (default: runs)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the training step "
                   "(default: on a GPU only; on a CPU it needs a C++ compiler and trains 1.6-3x faster after 20-60 s "
                   "of compiling, with results that differ from an uncompiled run by rounding)")
    t.set_defaults(run=train)
    s = sub.add_parser("sample", help="draw images from a model (Algorithm 1 or 2) or super-resolve images",
                       epilog=EXIT_CODES, formatter_class=_Formatter,
                       description="Draw images from the prior of a denoiser: Algorithm 2 (coarse-to-fine) for a "
                       "multi-scale model, Algorithm 1 for a flat one; or super-resolve given images from their "
                       "low-pass. Writes DIR/NAME_samples.png (a grid) and .pt (the tensor (N,1,H,W) in [0,1]).")
    s.add_argument("model", help="a .safetensors file written by `train`, or a shipped name (e.g. multiscale_rf5)")
    s.add_argument("--n", type=POSITIVE, help="number of images (default: 16)")
    s.add_argument("--size", type=POSITIVE, help="image side (default: the recipe's image size)")
    s.add_argument("--super-resolve", metavar="IMAGES", help="a .pt tensor (B,1,H,W) or an image file: keep its "
                   "low-pass x_J and draw the details")
    s.add_argument("--h0", type=UNIT, default=0.01, help="initial step size (default: 0.01, the paper's)")
    s.add_argument("--beta", type=UNIT, default=0.1, help="noise injection, 1 = none (default: 0.1)")
    s.add_argument("--sigma-final", type=SIGMA, help="flat model: stop at this σ (default: the book's stopping "
                   "level, max(0.01, 1.5 x what the net removes from 64 clean training images of its recipe); "
                   "0.01 where those images are not here)")
    s.add_argument("--seed", type=SEED, default=0, help="random seed (default: 0)")
    s.add_argument("--out", default="samples", metavar="DIR", help="output folder (default: samples)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    s.set_defaults(run=sample)
    e = sub.add_parser("evaluate", help="denoising table: PSNR per σ per model",
                       epilog=EXIT_CODES, formatter_class=_Formatter,
                       description="Denoise held-out images at several σ with each model; writes the PSNR table as "
                       "DIR/denoising.md and DIR/denoising.csv. Data and size default to the first model's recipe.")
    e.add_argument("models", nargs="+", help=".safetensors files or shipped names")
    e.add_argument("--data", metavar="DATA", help="test images: synthetic, celeba80 (the half-resolution copy), "
                   "celeba (downloads 1.4 GB when missing, and says so first), or a folder of your own images "
                   "(gray, centre square, resized to --size) (default: the recipe's)")
    e.add_argument("--size", type=POSITIVE, help="image side (default: the recipe's, else the data's: synthetic 32, "
                   "celeba80 80, celeba 160)")
    e.add_argument("--n", type=POSITIVE, default=64, help="number of test images (default: 64)")
    e.add_argument("--sigmas", type=SIGMAS, nargs="+", default=[0.05, 0.1, 0.2, 0.4],
                   help="noise levels on the [0, 1] scale (default: 0.05 0.1 0.2 0.4)")
    e.add_argument("--seed", type=SEED, default=0, help="seed of the noise draw (default: 0)")
    e.add_argument("--out", default="evaluation", metavar="DIR", help="output folder (default: evaluation)")
    e.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    e.set_defaults(run=evaluate)
    return p


def main(argv=None):
    """Run the command line with argv (default sys.argv[1:]); returns the exit status (EXIT_CODES)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return e.code
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning  # one line each, above the progress bar
        try:
            torch.set_num_threads(presets.threads())  # the library's CPU thread policy ($MSLCP_THREADS overrides it)
            return args.run(args)
        except KeyboardInterrupt:
            _close_bars()
            print("error: interrupted (a training run resumes when started again)", file=sys.stderr)
            return 130
        except (UserError, RunFailed, ValueError, RuntimeError, OSError) as e:
            if not isinstance(e, (UserError, RunFailed)) and not _ours(e):
                raise  # raised inside torch or another library: a bug, with its traceback
            _close_bars()
            print(f"error: {e}", file=sys.stderr)
            return 1 if isinstance(e, RunFailed) else 2


if __name__ == "__main__":
    sys.exit(main())
