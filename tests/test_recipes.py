"""mslcp.recipes: the registry says how the shipped checkpoints were trained, and running a recipe is that training."""
import json

import pytest
import torch

from mslcp import multiscale, nets, pretrained, recipes, synthetic, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# Written out from data/make_checkpoints.py as it trained the shipped checkpoints (commit 9a87b20): net kwargs and
# train() arguments; every net on 8192 32x32 synthetic faces (seed 0), tests on 64 (seed 1), torch.manual_seed(0)
# before building the nets, eval_every = checkpoint_every = 100, lr 1e-3, whole images.
FLAT = dict(batch_size=32, lr_end=1e-5, sigma_range=[0.0, 1.0], log_sigma=False, seed=0)
OLD = {
    "bf_small": dict(net=dict(width=32, depth=8, rf=17), steps=700, **{**FLAT, "lr_end": None, "sigma_range": [0, .1]}),
    "biased_small": dict(net=dict(width=32, depth=8, rf=17, bias=True), steps=700,
                         **{**FLAT, "lr_end": None, "sigma_range": [0, .1]}),
    "flat_rf5": dict(net=dict(width=32, depth=8, rf=5), steps=4000, **FLAT),
    "flat_rf9": dict(net=dict(width=32, depth=8, rf=9), steps=4000, **FLAT),
    "flat_rf13": dict(net=dict(width=32, depth=8, rf=13), steps=4000, **FLAT),
    "flat_rf17": dict(net=dict(width=32, depth=8, rf=17), steps=4000, **FLAT),
    "flat_rf33": dict(net=dict(width=24, depth=16, rf=33), steps=5000, **FLAT),
}
LOW = dict(net=dict(width=32, depth=8, rf=13), steps=6000, batch_size=64, lr_end=1e-5, sigma_range=[1e-3, 1.0],
           log_sigma=True, seed=0, test_sigmas=[0.05, 0.1, 0.2, 0.4])


def cond(rf, j):
    return dict(net=dict(width=32, depth=8, rf=rf), steps=3000, batch_size=64, lr_end=1e-5, sigma_range=[0.0, 0.1],
                log_sigma=False, seed=j + 1, test_sigmas=[0.0125, 0.025, 0.05, 0.1])


def test_registry_describes_the_shipped_training():
    for name in [*OLD, "multiscale_rf5", "multiscale_rf9", "multiscale_rf13"]:
        r = recipes.get(name)
        assert (r["data"], r["image_size"], r["n_train"], r["n_test"], r["init_seed"]) == ("synthetic", 32, 8192, 64, 0)
        st = recipes.stages(r)
        want = {None: OLD[name]} if name in OLD else {0: cond(int(name[13:]), 0), 1: cond(int(name[13:]), 1),
                                                     "low": LOW}
        assert set(st) == set(want), name
        for scale, w in want.items():
            s = st[scale]
            assert s["lr"] == 1e-3 and s["patch_size"] is None
            assert (s["eval_every"], s["checkpoint_every"]) == (100, 100)
            for k, v in w.items():
                assert s[k] == v, (name, scale, k)
    assert recipes.get("multiscale_rf9")["low_from"] == "multiscale_rf5" and "low_from" not in recipes.get(
        "multiscale_rf5")


def test_overrides_and_budgets():
    r = recipes.get("multiscale_rf5", steps=2)  # a plain key: every net of the recipe
    assert {s["steps"] for s in recipes.stages(r).values()} == {2}
    r = recipes.get("multiscale_rf5", **{"low.steps": 5, "level1.net.width": 8})
    st = recipes.stages(r)
    assert (st["low"]["steps"], st[0]["steps"], st[1]["net"]["width"], st[0]["net"]["width"]) == (5, 3000, 8, 32)
    paper = recipes.get("multiscale_rf5", "paper")
    st = recipes.stages(paper)
    assert (paper["data"], paper["image_size"]) == ("celeba", 160)
    assert st["low"]["net"] == dict(width=64, depth=21, rf=41) and st[0]["net"] == dict(width=64, depth=21, rf=5)
    assert st["low"]["patch_size"] is None and st["low"]["steps"] == 20_000 and st[1]["seed"] == 2
    flat = recipes.stages(recipes.get("flat_rf33", "colab"))[None]
    assert flat["patch_size"] == 40 and flat["net"] == dict(width=64, depth=21, rf=33) and flat["amp"]
    assert recipes.get("bf_small", "book") == recipes.get("bf_small")
    for name in recipes.RECIPES:  # every recipe builds in every budget (the nets accept the architecture)
        for budget in recipes.BUDGETS:
            recipes.stages(recipes.get(name, budget))


def test_paper_budget_draws_sigma_as_the_released_code():
    # code/training.py as released: --quadratic_noise True and --noise_level_range [0, 255] for every net; the cap
    # of the conditional nets' range needs args.coarse is False, which argparse never gives, so it does not apply
    for name in ("multiscale_rf5", "celeba80_multiscale_rf9", "flat_rf9", "celeba80_flat_rf5"):
        for scale, s in recipes.stages(recipes.get(name, "paper")).items():
            assert s["quadratic_sigma"] is True and s["log_sigma"] is False, (name, scale)
            assert s["sigma_range"] == [0.0, 1.0], (name, scale)
    for budget in ("book", "colab"):  # the other budgets keep their recipes' draws
        st = recipes.stages(recipes.get("celeba80_multiscale_rf5", budget))
        assert st["low"]["log_sigma"] and not st["low"].get("quadratic_sigma", False)
    assert "quadratic_sigma" not in recipes.get("celeba80_flat_rf5")  # resolved recipes of shipped models unchanged
    # the chapter-5 pair: the same recipe but the sigma draw
    a, b = recipes.get("celeba80_flat_rf5_short"), recipes.get("celeba80_flat_rf5_short_quadratic")
    assert b.pop("quadratic_sigma") is True and {k: v for k, v in a.items() if k != "name"} == {
        k: v for k, v in b.items() if k != "name"}
    assert a["steps"] == 1000 and {k: v for k, v in a.items() if k not in ("name", "steps")} == {
        k: v for k, v in recipes.get("celeba80_flat_rf5").items() if k not in ("name", "steps")}
    with pytest.raises(ValueError, match="two ways to draw σ: at most one True"):
        recipes.get("celeba80_multiscale_rf5", quadratic_sigma=True)  # its nets draw log-uniform sigma
    with pytest.raises(ValueError, match="quadratic_sigma must be True or False"):
        recipes.get("flat_rf5", quadratic_sigma="yes")
    assert recipes.get("celeba80_multiscale_rf5", quadratic_sigma=True, log_sigma=False, **{
        "sigma_range": (0.0, 1.0)})["quadratic_sigma"]


def test_build_seeds_like_the_original_script():
    torch.manual_seed(0)
    low, c5 = nets.BFCNN(width=32, depth=8, rf=13), [nets.ConditionalBFCNN(width=32, depth=8, rf=5) for _ in "ab"]
    c9 = [nets.ConditionalBFCNN(width=32, depth=8, rf=9) for _ in "ab"]  # built after loading multiscale_rf5
    m5, m9 = recipes.build(recipes.get("multiscale_rf5")), recipes.build(recipes.get("multiscale_rf9"))
    for a, b in ((m5.low, low), (m5.conditionals[1], c5[1]), (m9.conditionals[0], c9[0]), (m9.conditionals[1], c9[1])):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_run_is_the_original_training(tmp_path):
    small = dict(n_train=24, n_test=4, steps=3, eval_every=2)
    r = recipes.get("bf_small", **small)
    model = recipes.run(r, tmp_path, progress=False)
    torch.manual_seed(0)  # data/make_checkpoints.py (commit 9a87b20), with the same small sizes
    ref = nets.BFCNN(width=32, depth=8, rf=17)
    x, x_test = synthetic.faces(24, 32, seed=0), synthetic.faces(4, 32, seed=1)
    train.train(ref, x, steps=3, batch_size=32, lr=1e-3, sigma_range=(0.0, 0.1), test_data=x_test, eval_every=2,
                seed=0, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), ref.state_dict().values()))
    assert json.loads((tmp_path / "bf_small.recipe.json").read_text()) == r
    # multi-scale: per-batch coefficients of whole images are the materialized coefficients of the original
    r = recipes.get("multiscale_rf5", **small)
    model = recipes.run(r, tmp_path, progress=False)
    torch.manual_seed(0)
    low = nets.BFCNN(width=32, depth=8, rf=13)
    train.train(low, multiscale.lowpass_data(x, 2), steps=3, batch_size=64, lr_end=1e-5, sigma_range=(1e-3, 1.0),
                log_sigma=True, seed=0, progress=False)
    c = [nets.ConditionalBFCNN(width=32, depth=8, rf=5) for _ in range(2)]
    for j in range(2):
        train.train(c[j], multiscale.training_data(x, j), steps=3, batch_size=64, lr_end=1e-5,
                    sigma_range=(0.0, 0.1), seed=j + 1, progress=False)
    for a, b in ((model.low, low), (model.conditionals[0], c[0]), (model.conditionals[1], c[1])):
        assert all(torch.allclose(p, q, rtol=1e-5, atol=1e-7) for p, q in zip(a.state_dict().values(),
                                                                              b.state_dict().values()))
    # resuming with other settings is refused, naming them
    with pytest.raises(ValueError, match="settings that differ: n_train, low.steps, level0.steps, level1.steps"):
        recipes.run(recipes.get("multiscale_rf5", **{**small, "steps": 4, "n_train": 16}), tmp_path, progress=False)


def test_resume_reuses_the_checkpoints_of_unchanged_nets(tmp_path):
    small = dict(n_train=8, n_test=2, steps=2, eval_every=1)
    first = recipes.run(recipes.get("multiscale_rf5", **small), tmp_path, progress=False)
    files = {k: tmp_path / f"multiscale_rf5.{k}.pt" for k in ("low", "level0", "level1")}
    # level 1 trained longer: only its checkpoint is in the way, and the message says so
    r = recipes.get("multiscale_rf5", **small, **{"level1.steps": 3})
    with pytest.raises(ValueError, match=r"differ: level1\.steps\. .*delete [^ ]*level1\.pt to train") as e:
        recipes.run(r, tmp_path, progress=False)
    assert "low.pt" not in str(e.value)
    files["level1"].unlink()
    second = recipes.run(r, tmp_path, progress=False)  # the low-pass and level-0 nets come from their checkpoints
    for a, b in ((first.low, second.low), (first.conditionals[0], second.conditionals[0])):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.load(files["level1"], weights_only=True)["step"] == 3
    assert json.loads((tmp_path / "multiscale_rf5.recipe.json").read_text()) == r
    # another low-pass architecture changes the initial weights of every net built after it
    with pytest.raises(ValueError, match="differ: low.net") as e:
        recipes.run(recipes.get("multiscale_rf5", **small, **{"low.net.rf": 9}), tmp_path, progress=False)
    assert all(str(f) in str(e.value) for f in files.values())


def test_low_from_reuses_the_trained_lowpass(tmp_path):
    small = dict(n_train=8, n_test=2, steps=1)
    ms5 = recipes.run(recipes.get("multiscale_rf5", **small), tmp_path, progress=False)
    pretrained.save(ms5, tmp_path / "multiscale_rf5.safetensors", recipes.get("multiscale_rf5", **small))
    ms9 = recipes.run(recipes.get("multiscale_rf9", **small), tmp_path, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(ms9.low.state_dict().values(), ms5.low.state_dict().values()))
    assert ms9.conditionals[0].rf == 9 and not (tmp_path / "multiscale_rf9.low.pt").exists()


def test_checkpoint_metadata_carries_the_recipe(tmp_path):
    r = recipes.get("flat_rf5")
    net = recipes.build(r)
    pretrained.save(net, tmp_path / "a.safetensors", r)
    back = pretrained.load(tmp_path / "a.safetensors")
    assert back.recipe == r and all(torch.equal(p, q) for p, q in zip(net.parameters(), back.parameters()))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "a.safetensors"), "pt") as f:
        import mslcp

        assert json.loads(f.metadata()["mslcp"])["version"] == mslcp.__version__
    pretrained.save(net, tmp_path / "a2.safetensors", r)  # the same bytes every time (shipped files are hashed)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "a2.safetensors").read_bytes()
    pretrained.save(net, tmp_path / "b.safetensors")
    assert pretrained.load(tmp_path / "b.safetensors").recipe is None
    from safetensors.torch import save_file  # a file written before recipes were stored: architecture only

    meta = {"mslcp": json.dumps(dict(cls="BFCNN", config=net.config))}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "old.safetensors"), meta)
    assert pretrained.load(tmp_path / "old.safetensors").recipe is None
    for was, now in (("cpu", "book"), ("paper", "paper")):  # written when a training budget was called a preset
        old = {k: v for k, v in r.items() if k != "budget"} | {"preset": was}
        pretrained.save(net, tmp_path / "c.safetensors", old)
        assert pretrained.load(tmp_path / "c.safetensors").recipe == {**r, "budget": now}


def test_a_run_written_when_budgets_were_presets_resumes(tmp_path):
    r = recipes.get("bf_small", n_train=8, n_test=2, steps=2, eval_every=1)
    recipes.run(r, tmp_path, progress=False)
    saved = tmp_path / "bf_small.recipe.json"
    saved.write_text(json.dumps({k: v for k, v in r.items() if k != "budget"} | {"preset": "cpu"}))
    recipes.run(r, tmp_path, progress=False)  # the same recipe under the old key: resumed, not refused
    assert json.loads(saved.read_text()) == r
