"""The command line as a tool: each row is (id, arguments, exit status, words the output must contain). A mistake in
the input prints one line `error: ...` (after the usage for a bad argument) and exits with 2, with no traceback; a run
that failed exits with 1, one done in part with 3 (`python -m mslcp --help` lists the codes). Real bugs keep their
tracebacks (test_a_bug_keeps_its_traceback)."""
import atexit
import csv
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tqdm import tqdm

from mslcp import __main__ as cli, pretrained, sampling, synthetic
from mslcp.__main__ import main
from mslcp.nets import BFCNN, ConditionalBFCNN

pytestmark = pytest.mark.usefixtures("one_thread")

TMP = Path(tempfile.mkdtemp(prefix="mslcp-errors-cli-"))
atexit.register(shutil.rmtree, TMP, True)
OUT = str(TMP / "out")
A_FILE = TMP / "a-file"
A_FILE.write_text("not a folder")
torch.manual_seed(0)


def _files():
    """The inputs of the rows, written once: tensors, images, checkpoints."""
    faces = synthetic.faces(2, 32, seed=3)
    torch.save((faces * 255).round().byte(), TMP / "faces_uint8.pt")
    torch.save(faces * 255, TMP / "faces_255.pt")
    torch.save(faces[..., :30, :30].contiguous(), TMP / "faces_30.pt")
    torch.save(faces[:0], TMP / "none.pt")
    torch.save(faces[:, 0], TMP / "faces_3d.pt")
    (TMP / "garbage.pt").write_bytes(b"\x00not a tensor file")
    (TMP / "text.png").write_text("not an image")
    (TMP / "notes.safetensors").write_text("not a checkpoint")
    folder = TMP / "my_faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(folder / f"{i}.png")
    flat = pretrained.shipped("flat_rf5")
    for d in ("a", "b"):
        (TMP / d).mkdir()
        pretrained.save(flat, TMP / d / "denoiser.safetensors", flat.recipe)
    pretrained.save(flat, TMP / "noisy.safetensors", flat.recipe)
    pretrained.save(BFCNN(width=4, depth=3, rf=5), TMP / "no_recipe.safetensors")
    pretrained.save(ConditionalBFCNN(width=4, depth=3, rf=5), TMP / "conditional.safetensors")
    wild = BFCNN(width=4, depth=3, rf=5)
    with torch.no_grad():
        wild.conv_layers[-1].weight.mul_(1e6)  # a residual of ~1e5: every image diverges at its first step
    pretrained.save(wild.eval(), TMP / "wild.safetensors")


_files()
T = lambda name: str(TMP / name)  # noqa: E731
TINY = ["--set", "steps=3", "--set", "n_train=8", "--set", "n_test=2", "--set", "eval_every=1", "--set", "batch_size=4"]

CLI_CASES = [
    # ---- counts, sizes and numbers out of range: refused by the parser, naming the option
    ("sample --n 0", ["sample", "flat_rf5", "--n", "0"], 2, ["argument --n", "integer >= 1", "'0'"]),
    ("sample --n -3", ["sample", "flat_rf5", "--n", "-3"], 2, ["argument --n"]),
    ("sample --n 2.5", ["sample", "flat_rf5", "--n", "2.5"], 2, ["argument --n", "'2.5'"]),
    ("sample --size 0", ["sample", "flat_rf5", "--size", "0"], 2, ["argument --size", "integer >= 1"]),
    ("evaluate --size 0", ["evaluate", "flat_rf5", "--size", "0"], 2, ["argument --size"]),
    ("evaluate --n 0", ["evaluate", "flat_rf5", "--n", "0"], 2, ["argument --n", "integer >= 1"]),
    ("evaluate --sigmas -0.1", ["evaluate", "flat_rf5", "--sigmas", "-0.1"], 2, ["argument --sigmas", ">= 0"]),
    ("evaluate --sigmas nan", ["evaluate", "flat_rf5", "--sigmas", "nan"], 2, ["argument --sigmas"]),
    ("evaluate --seed -1", ["evaluate", "flat_rf5", "--seed", "-1"], 2, ["argument --seed", ">= 0"]),
    ("sample --h0 0", ["sample", "flat_rf5", "--h0", "0"], 2, ["argument --h0", "(0, 1]"]),
    ("sample --beta 1.5", ["sample", "flat_rf5", "--beta", "1.5"], 2, ["argument --beta", "(0, 1]"]),
    ("sample --sigma-final 0", ["sample", "flat_rf5", "--sigma-final", "0"], 2, ["argument --sigma-final", "> 0"]),
    ("sample --seed -1", ["sample", "flat_rf5", "--seed", "-1"], 2, ["argument --seed"]),
    ("train --budget tpu", ["train", "flat_rf5", "--budget", "tpu"], 2, ["argument --budget", "'tpu'"]),
    ("no command", [], 2, ["required: command"]),
    ("unknown command", ["fit", "flat_rf5"], 2, ["invalid choice: 'fit'"]),
    # ---- models and devices
    ("sample unknown model", ["sample", "nosuch"], 2, ["nosuch: no such file", "not a shipped checkpoint"]),
    ("evaluate unknown model", ["evaluate", "flat_rf5", "nosuch"], 2, ["nosuch: no such file"]),
    ("evaluate not a checkpoint", ["evaluate", T("notes.safetensors")], 2, ["not a readable safetensors file"]),
    ("sample a conditional net", ["sample", T("conditional.safetensors"), "--size", "8"], 2,
     ["conditional net", "flat or a multi-scale model"]),
    ("sample, no recipe, no size", ["sample", T("no_recipe.safetensors")], 2, ["--size is needed", "no recipe"]),
    ("sample --size 30, J=2", ["sample", "multiscale_rf5", "--size", "30", "--out", OUT], 2,
     ["--size 30", "multiple of 2^levels = 4"]),
    ("evaluate --size 30, J=2", ["evaluate", "multiscale_rf5", "--size", "30", "--out", OUT], 2,
     ["--size 30", "multiscale_rf5", "multiple of 2^levels = 4"]),
    ("evaluate --size 12 synthetic", ["evaluate", "flat_rf5", "--size", "12", "--out", OUT], 2,
     ["--size 12", "multiple of 8"]),
    ("sample multi-scale --sigma-final", ["sample", "multiscale_rf5", "--sigma-final", "0.05", "--out", OUT], 2,
     ["--sigma-final applies to flat models"]),
    ("sample --device foo", ["sample", "flat_rf5", "--device", "foo"], 2, ["--device 'foo'", "cpu, cuda"]),
    ("sample --device cuda:99", ["sample", "flat_rf5", "--device", "cuda:99"], 2, ["--device cuda:99", "no such"]),
    # ---- output folders: refused before any work
    ("sample --out FILE", ["sample", "flat_rf5", "--out", str(A_FILE)], 2, ["--out", "a-file", "is a file"]),
    ("evaluate --out FILE", ["evaluate", "flat_rf5", "--out", str(A_FILE)], 2, ["--out", "is a file"]),
    ("train --out FILE", ["train", "flat_rf5", "--out", str(A_FILE)], 2, ["--out", "is a file"]),
    ("sample --out below a file", ["sample", "flat_rf5", "--out", str(A_FILE / "x")], 2,
     ["--out", "cannot create the folder"]),
    # ---- --super-resolve: one rule for images (floats in [0, 1]), no silent conversion
    ("super-resolve uint8 .pt", ["sample", "multiscale_rf5", "--super-resolve", T("faces_uint8.pt"), "--out", OUT],
     2, ["--super-resolve", "faces_uint8.pt", "uint8", "x.float() / 255"]),
    ("super-resolve 0..255 .pt", ["sample", "multiscale_rf5", "--super-resolve", T("faces_255.pt"), "--out", OUT],
     2, ["[0, 1] scale", "divide by 255"]),
    ("super-resolve missing file", ["sample", "multiscale_rf5", "--super-resolve", T("none.png"), "--out", OUT],
     2, ["--super-resolve", "no such file"]),
    ("super-resolve garbage .pt", ["sample", "multiscale_rf5", "--super-resolve", T("garbage.pt"), "--out", OUT],
     2, ["garbage.pt", "cannot read it as a tensor"]),
    ("super-resolve text .png", ["sample", "multiscale_rf5", "--super-resolve", T("text.png"), "--out", OUT],
     2, ["cannot read image", "text.png"]),
    ("super-resolve 30x30", ["sample", "multiscale_rf5", "--super-resolve", T("faces_30.pt"), "--out", OUT],
     2, ["30x30", "not divisible by 2^levels = 4"]),
    ("super-resolve no images", ["sample", "multiscale_rf5", "--super-resolve", T("none.pt"), "--out", OUT],
     2, ["(B,1,H,W)", "(0, 1, 32, 32)"]),
    ("super-resolve 3-D", ["sample", "multiscale_rf5", "--super-resolve", T("faces_3d.pt"), "--out", OUT],
     2, ["(B,1,H,W)", "(2, 32, 32)"]),
    ("super-resolve, flat model", ["sample", "flat_rf5", "--super-resolve", T("faces_uint8.pt"), "--out", OUT],
     2, ["--super-resolve needs a multi-scale model", "flat_rf5 is flat"]),
    ("super-resolve with --size", ["sample", "multiscale_rf5", "--super-resolve", T("faces_30.pt"), "--size", "32"],
     2, ["--size does not apply"]),
    ("super-resolve with --n", ["sample", "multiscale_rf5", "--super-resolve", T("faces_30.pt"), "--n", "4"],
     2, ["--n does not apply"]),
    # ---- evaluate: columns and data
    ("evaluate same file twice", ["evaluate", "flat_rf5", "flat_rf5", "--out", OUT], 2, ["flat_rf5 given twice"]),
    ("evaluate a model called noisy", ["evaluate", T("noisy.safetensors"), "--out", OUT], 2,
     ["'noisy'", "column", "rename"]),
    ("evaluate --data missing", ["evaluate", "flat_rf5", "--data", T("nowhere"), "--out", OUT], 2,
     ["--data", "nowhere", "not synthetic, celeba80 or celeba", "folder"]),
    ("evaluate --data FILE", ["evaluate", "flat_rf5", "--data", str(A_FILE), "--out", OUT], 2,
     ["--data", "a-file", "folder"]),
    ("evaluate --data empty folder", ["evaluate", "flat_rf5", "--data", str(TMP / "a"), "--out", OUT], 2,
     ["no images", "a"]),
    ("evaluate two stems alike", ["evaluate", T("a/denoiser.safetensors"), T("b/denoiser.safetensors"), "--n", "2",
                                  "--sigmas", "0.1", "--out", OUT], 0, [T("a/denoiser"), T("b/denoiser")]),
    ("evaluate --data my folder", ["evaluate", "flat_rf5", "--data", T("my_faces"), "--n", "5", "--sigmas", "0.1",
                                   "--out", OUT], 0, ["3 images of", "my_faces", "(32x32)", "fewer than --n 5"]),
    # ---- train
    ("train without a recipe", ["train"], 2, ["name a recipe", "--list"]),
    ("train unknown recipe", ["train", "nope"], 2, ["unknown recipe 'nope'"]),
    ("train --set without =", ["train", "flat_rf5", "--set", "steps"], 2, ["--set expects KEY=VALUE", "'steps'"]),
    ("train --set sigma_range=0.1", ["train", "flat_rf5", "--set", "sigma_range=0.1"], 2,
     ["flat_rf5: sigma_range", "pair"]),
    ("train --set test_sigmas=0.1", ["train", "flat_rf5", "--set", "test_sigmas=0.1"], 2, ["test_sigmas", "[0.1]"]),
    ("train --set net.width=0", ["train", "flat_rf5", "--set", "net.width=0"], 2, ["flat_rf5: net.width", ">= 1"]),
    ("train --set net.width=wide", ["train", "flat_rf5", "--set", "net.width=wide"], 2, ["net.width", "'wide'"]),
    ("train diverges", ["train", "flat_rf5", *TINY, "--set", "lr=1e12", "--set", "lr_end=None", "--out",
                        str(TMP / "diverged")], 1, ["NaN at step 1", "learning rate", "checkpoints"]),
    # ---- sampling that fails
    ("sample: every image diverges", ["sample", T("wild.safetensors"), "--size", "8", "--n", "3", "--out",
                                      str(TMP / "wild")], 1, ["diverged for 3 of 3", "nothing written"]),
]


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_command_line(case, capsys):
    _, argv, code, words = case
    got, out, err = run(argv, capsys)
    text = out + err
    assert got == code, text[-2000:]
    assert "Traceback" not in text
    if code:
        assert err.splitlines()[-1].startswith("error: "), err[-500:]
    missing = [w for w in words if w not in text]
    assert not missing, f"output {text[-1500:]!r} lacks {missing}"


def test_table_size():
    assert len(CLI_CASES) >= 40 and len({c[0] for c in CLI_CASES}) == len(CLI_CASES)


def test_bad_thread_setting(monkeypatch, capsys):
    monkeypatch.setenv("MSLCP_THREADS", "many")
    code, _, err = run(["train", "--list"], capsys)
    assert code == 2 and err.startswith("error: MSLCP_THREADS must be a positive integer, got 'many'")


def test_two_checkpoints_of_one_name_get_two_columns(capsys):
    assert run(["evaluate", T("a/denoiser.safetensors"), T("b/denoiser.safetensors"), "--n", "2", "--sigmas", "0.1",
                "--out", str(TMP / "two")], capsys)[0] == 0
    rows = list(csv.DictReader(open(TMP / "two" / "denoising.csv")))
    assert list(rows[0]) == ["sigma", "noisy", T("a/denoiser"), T("b/denoiser")]
    assert rows[0][T("a/denoiser")] == rows[0][T("b/denoiser")]  # the same weights: the same PSNR


def test_some_images_failed_exit_3(monkeypatch, capsys):
    def half_failed(model, shape, **kw):  # what sample() returns when images 0 and 2 diverged
        x = torch.rand(shape)
        x[[0, 2]] = float("nan")
        return x, sampling.Info(["diverged", "converged", "diverged", "converged"], calls=7)

    monkeypatch.setattr(sampling, "sample", half_failed)
    code, out, err = run(["sample", "flat_rf5", "--n", "4", "--out", str(TMP / "half")], capsys)
    assert code == 3 and "2 of 4 images converged" in out
    assert "warning: 2 of 4 images failed" in err and "images 0, 2" in err and "exit status 3" in err
    x = torch.load(TMP / "half" / "flat_rf5_samples.pt", weights_only=True)
    assert x.shape == (4, 1, 32, 32) and x[[0, 2]].isnan().all() and x[[1, 3]].isfinite().all()


def test_every_image_failed_writes_nothing(monkeypatch, capsys):
    # images may fail at different levels of Algorithm 2 without sample() raising: the command counts them
    monkeypatch.setattr(sampling, "synthesize", lambda model, n, **kw: (torch.full((n, 1, 32, 32), float("nan")),
                                                                        sampling.Info(["diverged"] * n, calls=5)))
    code, out, err = run(["sample", "multiscale_rf5", "--n", "2", "--out", str(TMP / "none")], capsys)
    assert code == 1 and "error: every image failed (2 of 2 diverged); nothing written" in err
    assert not list((TMP / "none").glob("*.pt"))


def test_default_flat_sampling_uses_the_books_stopping_level(capsys):
    # the shipped flat_rf5 with sigma_final = 0.01 lost 11 of 16 images (NaN) and exited with 0; the command now stops
    # at the book's sigma_L, measured on 64 training faces of the recipe (seed 0, as recipes.images draws them)
    level = sampling.stopping_level(pretrained.shipped("flat_rf5"), synthetic.faces(64, 32, seed=0))
    code, out, err = run(["sample", "flat_rf5", "--n", "4", "--out", str(TMP / "flat")], capsys)
    assert code == 0 and "4 of 4 images converged" in out
    assert f"sigma_L = {level:.4f}" in err and 0.05 < level < 0.08
    x = torch.load(TMP / "flat" / "flat_rf5_samples.pt", weights_only=True)
    assert x.shape == (4, 1, 32, 32) and x.isfinite().all()


def test_a_bug_keeps_its_traceback(monkeypatch):
    # errors raised inside torch or by a bug (KeyError, TypeError...) are not turned into `error:` lines
    monkeypatch.setattr(pretrained, "shipped", lambda name, device="cpu": {}["bug"])
    with pytest.raises(KeyError):
        main(["sample", "flat_rf5", "--out", OUT])
    monkeypatch.setattr(pretrained, "shipped", lambda name, device="cpu": torch.zeros(2) @ torch.zeros(3))
    with pytest.raises(RuntimeError):
        main(["sample", "flat_rf5", "--out", OUT])


def test_an_error_starts_on_a_line_of_its_own():
    buf = io.StringIO()
    bar = tqdm(total=10, file=buf, desc="train")
    bar.update(3)
    cli._close_bars()  # what main() does before it prints `error: ...`
    assert buf.getvalue().endswith("\n") and "3/10" in buf.getvalue()
    assert bar not in getattr(tqdm, "_instances", ())


def test_exit_status_of_the_process():
    # the real process: status 2, the last line `error: ...`, no traceback; `--help` lists the exit codes
    for argv, words in ((["sample", "flat_rf5", "--n", "0"], "argument --n"), (["evaluate", "nosuch"], "nosuch")):
        r = subprocess.run([sys.executable, "-m", "mslcp", *argv], capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.splitlines()[-1].startswith("error: ") and words in r.stderr


def test_exit_codes_are_documented():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in ("0", "1", "2", "3"):
        assert f"\n  {code}  " in cli.EXIT_CODES
        assert f"| {code} |" in readme
