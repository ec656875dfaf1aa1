"""python -m mslcp: train every shipped recipe (tiny overrides), refuse other settings on resume, sample, evaluate."""
import csv
import subprocess
import sys

import pytest
import torch

from mslcp import metrics, pretrained, recipes, synthetic
from mslcp.__main__ import main
from conftest import HALFRES, needs_halfres  # tests/conftest.py

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
TINY = ["--set", "steps=2", "--set", "n_train=8", "--set", "n_test=2", "--set", "eval_every=1", "--set", "batch_size=4"]


def test_train_every_shipped_recipe(tmp_path, capsys):
    assert set(pretrained.SHIPPED) <= set(recipes.RECIPES)
    # in SHIPPED's order: multiscale_rf9/13 reuse tmp_path/multiscale_rf5.safetensors, trained before them
    for name in [n for n in pretrained.SHIPPED if HALFRES or recipes.get(n)["data"] != "celeba80"]:
        assert main(["train", name, *TINY, "--out", str(tmp_path)]) == 0
        m = pretrained.load(tmp_path / f"{name}.safetensors")
        assert m.recipe == recipes.get(name, steps=2, n_train=8, n_test=2, eval_every=1, batch_size=4)
        ref = recipes.build(m.recipe)  # the recipe's architecture
        assert [p.shape for p in m.state_dict().values()] == [p.shape for p in ref.state_dict().values()]
    assert "wrote" in capsys.readouterr().out
    # a finished run started again with the same settings: nothing to do; with other settings: refused
    assert main(["train", "bf_small", *TINY, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["train", "bf_small", *TINY, "--set", "steps=3", "--set", "lr=2e-3", "--out", str(tmp_path)]) == 2
    assert "settings that differ: lr. " in capsys.readouterr().err  # steps: a constant rate may train longer
    assert main(["train", "bf_small", "--set", "stepz=3", "--out", str(tmp_path)]) == 2
    assert "error: bf_small: unknown recipe setting 'stepz'" in capsys.readouterr().err


def test_compile_on_a_gpu_by_default(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(recipes, "run", lambda r, out, device, compile, progress: seen.append(compile)
                        or recipes.build(r))
    for flag, expected in (([], torch.cuda.is_available()), (["--compile"], True), (["--no-compile"], False)):
        assert main(["train", "flat_rf5", *TINY, "--out", str(tmp_path), *flag]) == 0
        assert seen.pop() is expected


def test_list_and_help(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in recipes.RECIPES)
    for cmd in ("train", "sample", "evaluate"):
        assert main([cmd, "--help"]) == 0
        out = capsys.readouterr().out
        assert "usage: python -m mslcp " + cmd in out and "exit status:" in out and "  3  done in part" in out
    r = subprocess.run([sys.executable, "-m", "mslcp", "train", "--list"], capture_output=True, text=True)
    assert r.returncode == 0 and "multiscale_rf13" in r.stdout


def test_sample_and_super_resolve(tmp_path):
    assert main(["sample", "multiscale_rf5", "--n", "2", "--h0", "0.5", "--out", str(tmp_path)]) == 0
    x = torch.load(tmp_path / "multiscale_rf5_samples.pt", weights_only=True)
    assert x.shape == (2, 1, 32, 32) and (tmp_path / "multiscale_rf5_samples.png").stat().st_size > 0
    assert main(["sample", "flat_rf5", "--n", "2", "--size", "16", "--h0", "0.5", "--sigma-final", "0.05",
                 "--out", str(tmp_path)]) == 0
    assert torch.load(tmp_path / "flat_rf5_samples.pt", weights_only=True).shape == (2, 1, 16, 16)
    faces = synthetic.faces(2, 32, seed=3)
    torch.save(faces, tmp_path / "faces.pt")
    assert main(["sample", "multiscale_rf5", "--super-resolve", str(tmp_path / "faces.pt"), "--h0", "0.5",
                 "--out", str(tmp_path)]) == 0
    x = torch.load(tmp_path / "multiscale_rf5_superres.pt", weights_only=True)
    from mslcp import wavelets  # super-resolution keeps the given low-pass x_2

    lows = [wavelets.decompose(v, 2)[0] for v in (x, faces)]
    assert torch.allclose(*lows, atol=1e-4)


def test_evaluate_table(tmp_path):
    assert main(["evaluate", "flat_rf5", "multiscale_rf5", "--n", "8", "--sigmas", "0.1", "0.2", "--out",
                 str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "denoising.csv")))
    assert [r["sigma"] for r in rows] == ["0.1", "0.2"] and list(rows[0]) == ["sigma", "noisy", "flat_rf5",
                                                                               "multiscale_rf5"]
    x = synthetic.faces(8, 32, seed=2)  # the command's test images and noise, recomputed here
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = metrics.psnr(pretrained.shipped("flat_rf5")(x + 0.2 * noise), x).mean().item()
    assert float(rows[1]["flat_rf5"]) == pytest.approx(want, abs=2e-3)
    assert abs(float(rows[0]["noisy"]) - 20) < 0.3  # σ = 0.1: 20 dB
    md = (tmp_path / "denoising.md").read_text()
    assert "| σ | noisy | flat_rf5 | multiscale_rf5 |" in md and md.count("\n| 0.") == 2


def test_cli_applies_the_thread_policy(monkeypatch):
    # two CLI trainings side by side on 2 cores ran 30x slower with torch's default of one thread per core
    n = torch.get_num_threads()
    try:
        for value in ("1", "2"):
            monkeypatch.setenv("MSLCP_THREADS", value)
            assert main(["train", "--list"]) == 0
            assert torch.get_num_threads() == int(value)
    finally:
        torch.set_num_threads(n)


@needs_halfres
def test_evaluate_without_a_recipe_uses_the_datas_size(tmp_path):
    # a checkpoint without a recipe was evaluated at 32x32 on 80x80 faces (1.7 dB off), with only the header to say so
    path = tmp_path / "plain.safetensors"
    pretrained.save(pretrained.shipped("flat_rf5"), path)  # no recipe
    assert main(["evaluate", str(path), "--data", "celeba80", "--n", "2", "--sigmas", "0.1", "--out",
                 str(tmp_path)]) == 0
    assert "(80x80)" in (tmp_path / "denoising.md").read_text()
