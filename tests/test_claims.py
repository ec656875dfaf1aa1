"""What the chapters say about the shipped checkpoints (data/checkpoints), checked on what the book build executed.

The book's text describes these small nets in words ("within about a decibel", "at least twice"). Each chapter glues
the numbers behind its sentences (mslcp.book.glue); most tests here read those values from the chapters the build
executed (the `glued` fixture, tests/conftest.py) and check the words against them, so that CI computes each number
once and a retrained checkpoint that no longer matches the words fails here, to be revised with the text. A glued
value holds for the preset the build ran (MSLCP_PRESET, the CPU preset in CI). What is still computed here is not a
chapter's computation: the shipped nets' structure and recipes against the text, the shipped real-face table against
its models, and two small baselines of chapter 7.
"""
import math
import os
import re
from pathlib import Path

import pytest
import torch

from mslcp import analysis, data, metrics, nets, pretrained, recipes, sampling, synthetic
from conftest import needs_halfres  # tests/conftest.py


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _value(glued, chapter, name):
    """A plain value (a number, list or dict) that book/`chapter` glued as `name` (mslcp.book.glue), read back from
    its plain-text form (its repr)."""
    import ast

    return ast.literal_eval(glued(f"book/{chapter}")[name])


def _json(glued_text):
    """A value the chapter glued as json.dumps(...) (a str, whose plain-text form is its repr)."""
    import ast
    import json

    return json.loads(ast.literal_eval(glued_text))


def test_intro_exercise2_psnr_of_noise(glued):
    """Intro, exercise 2: the noisy images' PSNR is -20 log10(sigma) up to "about a tenth of a dB"."""
    dev = _value(glued, "intro", "intro-psnr-deviation")
    assert 0.05 < dev < 0.15, dev


def test_chapter1_exercise_solutions(glued):
    """Chapter 1, exercises 3 and 5: the empirical-Bayes error (weighted by p_sigma) is about 0.027, 0.008, 0.004 for
    n = 100, 1000, 10000; the coordinate-wise denoiser costs about 3% at sigma = 0.1 and 20-25% at 0.3 and 1."""
    g = _value(glued, "01_tweedie", "ch1-solutions")
    errors = [g["empirical Bayes"][n] for n in (100, 1000, 10_000)]
    assert [round(e, 3) for e in errors] == [0.027, 0.008, 0.004], errors
    ratio = g["coordinate-wise"]
    assert 1.01 < ratio[0.1] < 1.05 and 1.19 < ratio[0.3] < 1.26 and 1.19 < ratio[1.0] < 1.26, ratio


CH2 = "02_bias_free"


def test_chapter2_bias_free_generalizes_beyond_training_range(glued):
    """Chapter 2's PSNR curves (trained on sigma <= 0.1) and its homogeneity check against the words under them."""
    g = _value(glued, CH2, "ch2-denoising")
    noisy, bf, biased = (dict(zip(g["sigma"], v)) for v in (g["noisy"], *g["psnr"].values()))
    assert list(g["psnr"]) == ["bias-free", "with biases"]
    for s in (0.02, 0.05, 0.1):  # inside the training range: "within about a decibel"
        assert abs(bf[s] - biased[s]) < 1.2, s
    for s in (s for s in g["sigma"] if s >= 0.1):  # "keeps improving on its input by a wide margin" up to 6x
        assert bf[s] > noisy[s] + 5, s
    assert biased[0.6] - noisy[0.6] < 0.5 * (bf[0.6] - noisy[0.6])  # "gain ... well under half of the bias-free's"
    h = _value(glued, CH2, "ch2-homogeneity")  # homogeneous to float32 rounding, against "several percent"
    for a, (rel_bf, rel_biased) in h["relative error"].items():
        assert rel_bf < 1e-5 and rel_biased > 1e-2, a
    assert h["black"]["bias-free"] == 0 < h["black"]["with biases"]  # "maps the black image to itself"


def test_chapter2_residual_estimate_and_jacobian_diagonal(glued):
    """Chapter 2: the bias-free net's noise estimate is above sigma from 0.3 on, although the MMSE formula predicts
    0.295 at 0.3 with tr J = 32; its error is about twice the MMSE value sigma^2 tr J / d, and the general identity
    comes closer; 2, 130 and 386 of 1,024 diagonal entries of J are negative at 0.02, 0.1, 0.3, and the symmetric
    part holds most of J's energy, less so as sigma grows."""
    g = _value(glued, CH2, "ch2-denoising")
    for s, estimate in zip(g["sigma"], g["sigma_hat"]["bias-free"]):
        if s >= 0.3:
            assert estimate > s, s
    r = _value(glued, CH2, "ch2-residual")
    s, tr, d, measured, mmse_formula = r["sigma"], r["trace"], r["d"], r["measured"], r["mmse_formula"]
    assert s == 0.3 and d == 1024 and round(tr) in (31, 32) and round(mmse_formula, 3) == 0.295
    assert 1.8 < r["error"] / (s**2 * tr / d) < 2.4  # "about twice"
    assert mmse_formula < s < measured and abs(r["general"] - measured) < abs(mmse_formula - measured)
    j = _value(glued, CH2, "ch2-jacobian")
    assert j["negative"] == {0.02: 2, 0.1: 130, 0.3: 386}, j["negative"]
    assert j["trace"][0.3] == tr
    sym = [j["symmetric"][s] for s in (0.02, 0.1, 0.3)]
    assert sym[0] > sym[1] > sym[2] > 0.5, sym


def test_chapter2_exercise3_traces(glued):
    """Chapter 2, exercise 3: at sigma = 0.05 the face, the shifted face and a grey image get similar traces (about 160,
    178, 158; standard errors about 3-4), pure noise of std 0.3 about 2."""
    t = _value(glued, CH2, "ch2-ex3-traces")
    assert list(t) == ["face", "shifted", "grey", "pure noise"]
    assert [round(tr) for tr, _ in t.values()] == [160, 178, 158, 2], t
    assert all(2.5 < se < 4.5 for _, se in list(t.values())[:3]), t


def test_chapter3_receptive_field_decides_the_layout(glued):
    """Chapter 3's flat-net samples against its table and its words (checked for the preset the build ran)."""
    flat = _value(glued, "03_sampling", "ch3-flat")
    r5, r33, faces = flat["RF 5"], flat["RF 33"], flat["training faces"]
    # "what differs": the table of chapter 3 (receptive fields and parameters as the chapter printed them)
    assert (r5["rf"], r33["rf"], r5["params"], r33["params"]) == (5, 33, 6912, 73344)
    c5, c33 = (pretrained.shipped(name).config for name in ("flat_rf5", "flat_rf33"))
    assert (c5["width"], len(c5["kernel_sizes"]), c33["width"], len(c33["kernel_sizes"])) == (32, 8, 24, 16)
    assert (c5["kernel_sizes"].count(3), c33["kernel_sizes"].count(3)) == (2, 16)
    # the training faces' layout score "averages 0.48, and one face in eight scores below zero"
    assert round(faces["layout"], 2) == 0.48 and 0.11 < faces["below_zero"] < 0.14, faces
    l5, l33 = torch.tensor(r5["layout"]), torch.tensor(r33["layout"])
    assert l33.mean() > 2 * l5.mean(), flat  # "on average more than twice RF 5's"
    assert (l33 > l5).all(), flat  # "seed by seed higher for every seed"
    assert abs(l33.mean() - faces["layout"]) < 0.1, flat  # "close to the average training face's"
    # RF 5 "about a third" of the faces' mean intensity; RF 33 "the faces' overall brightness"
    assert 0.25 < r5["mean"] / faces["mean"] < 0.45 and abs(r33["mean"] - faces["mean"]) < 0.1, flat
    # RF 5: "far below the faces', though above the stationary model's"
    stationary = torch.tensor(_value(glued, "03_sampling", "ch3-gauss-layout")["stationary"])
    assert stationary.mean() < l5.mean() < faces["layout"] - 0.15, flat


CH4 = "04_wavelets"


def test_chapter4_multiscale_against_flat(glued):
    g = _value(glued, CH4, "ch4-psnr")
    for i, s in enumerate(g["sigma"]):
        m, f5, f33 = (g[name][i] for name in ("multi-scale, RF 5", "flat, RF 5", "flat, RF 33 (global)"))
        assert m > f5, s  # "positive at every noise level"
        if round(s, 6) <= 0.2:  # (the chapter's sigmas are float32)
            assert abs(m - f33) < 0.3, s  # "up to sigma = 0.2 the multi-scale model matches the global RF-33 net"
        else:
            assert m < f33, s  # "above sigma = 0.2 it falls behind"
    # the squared-error parts of the face at sigma = 0.4: the low-pass part is the largest single part but not the
    # majority; the parts add up to the image's error (each detail level counts 3 bands)
    e = _value(glued, CH4, "ch4-parts")
    parts, total = list(e["parts"].values()), e["total"]
    assert list(e["parts"]) == ["x_2", "x̄_1", "x̄_0"]
    assert abs(sum(parts) - total) < 1e-6 * total
    assert parts[0] == max(parts) and parts[0] < 0.5 * total, e
    # the parameter counts chapter 4 prints and states (multi-scale, its low-pass net, flat RF 5, flat RF 33)
    assert _value(glued, CH4, "ch4-params") == [56384, 39680, 6912, 73344]


def test_chapter4_exercise_solutions(glued):
    """Chapter 4, exercises 3 and 4: without the low-pass net the model loses about 5 dB at sigma = 0.7 and is slightly
    better at 0.05; conditioning on the estimate x1_hat costs about 40%, 30% and 7% at sigma = 0.1, 0.4, 1."""
    g, sol = _value(glued, CH4, "ch4-psnr"), _value(glued, CH4, "ch4-solutions")
    gain = {round(s, 6): m - n for s, m, n in zip(g["sigma"], g["multi-scale, RF 5"], sol["no low-pass"])}
    assert gain[0.05] < 0 and 4.5 < gain[0.7] < 5.5, gain
    cost = sol["detail cost"]
    assert 1.35 < cost[0.1] < 1.45 and 1.25 < cost[0.4] < 1.35 and 1.04 < cost[1.0] < 1.1, cost


# --- chapter 5 ---

FLAT_RF5, MS_RF5 = (5, 9, 13, 17), (5, 9, 13)  # chapter 5's small nets
_WEIGHTS = Path(os.environ.get("MSLCP_WEIGHTS") or Path(__file__).parents[1] / ".." / "shared" / "reference-weights")
needs_weights = pytest.mark.skipif(not (_WEIGHTS / pretrained.relpath(160, 43, None)).exists(),
                                   reason=f"the authors' weights are not in {_WEIGHTS.resolve()} (MSLCP_WEIGHTS)")


@pytest.fixture
def authors(monkeypatch):
    monkeypatch.setenv("MSLCP_WEIGHTS", str(_WEIGHTS))
    monkeypatch.setattr(pretrained, "URL", "file:///nonexistent/")  # never download in tests


def test_chapter5_receptive_fields_of_the_small_nets():
    x = synthetic.faces(1, 32, seed=2)
    noise = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))  # the chapter's (n_test = 64)
    y = x + 0.2 * noise[:1]
    for rf in FLAT_RF5:  # "8 layers of 32 channels"; formula = measured = support of the Jacobian row (figure)
        net = pretrained.shipped(f"flat_rf{rf}")
        assert len(net.conv_layers) == 8 and net.conv_layers[0].out_channels == 32
        assert net.rf == nets.receptive_field(net) == rf
        row = analysis.jacobian_rows(net, y, [(16, 16)])[0, 0, 0]
        assert int((row.abs() > 0).any(0).sum()) == int((row.abs() > 0).any(1).sum()) == rf
    models = {rf: pretrained.shipped(f"multiscale_rf{rf}") for rf in MS_RF5}
    low = models[5].low.state_dict()
    for rf, m in models.items():  # "three nets of the flat net's depth and width"; "the same low-pass net"
        assert m.levels == 2 and m.low.rf == 13
        for net in (m.low, *m.conditionals):
            assert len(net.conv_layers) == 8 and net.conv_layers[0].out_channels == 32
        assert [nets.receptive_field(c) for c in m.conditionals] == [rf, rf]
        assert all(torch.equal(a, low[k]) for k, a in m.low.state_dict().items())


def test_chapter5_locality_of_the_authors_nets(glued):
    """The locality of the authors' RF-43 nets on the astronaut, as chapter 5 measured it, against its words."""
    g = glued("book/05_receptive_fields")
    if "ch5-paper-locality" not in g:
        pytest.skip("the build had no authors' weights, so chapter 5 did not measure their locality")
    radius = lambda e: analysis.radius(torch.tensor(e), range(len(e)))
    for s, curves in _json(g["ch5-paper-locality"]).items():
        e_flat, e_cond = curves["flat"], [curves[f"conditional, level {j}"] for j in (0, 1)]
        # key points: the conditional nets' weights concentrate near their pixel (in their own grid), RF 43
        assert max(radius(e) for e in e_cond) <= 4 < radius(e_flat), s
        assert all(1 - e[4] < 0.5 * (1 - e_flat[4]) for e in e_cond), s  # less energy outside the 9x9 window
        # in image pixels, level 0 reaches "the same as" the flat net
        assert 2 * radius(e_cond[0]) == radius(e_flat), s


@needs_weights
def test_chapter5_fig3_at_the_authors_ten_levels(glued):
    """The faithful Fig. 3 on the astronaut (ten levels, low-pass only) against the page's words."""
    t = {k: torch.tensor(v) for k, v in _json(glued("book/05_receptive_fields")["ch5-fig3-astronaut"]).items()}
    noisy, lp = t["noisy"], t["low-pass only"]
    sig = torch.logspace(0.5, 2.8, 10, dtype=torch.float64) / 255  # the demo's grid: input 38 ... -8 dB
    assert len(noisy) == 10 and (noisy + 20 * torch.log10(sig)).abs().max() < 0.3
    ms = {rf: t[f"multi-scale, RF {rf}"] for rf in (5, 9, 13, 23, 43)}
    fl = {rf: t[f"flat, RF {rf}"] for rf in (5, 9, 13, 23, 43)}
    big = torch.stack([ms[rf] for rf in (9, 13, 23, 43)])
    spread = big.max(0).values - big.min(0).values
    # intro: a conditional net seeing 9x9 about as well as 43x43 (from moderate noise up), flat RF 9 loses more
    assert (spread[2:] < 0.25).all() and ((fl[43] - fl[9]) > 1).all()
    assert ((fl[43] - fl[5]) > 1.5).all()  # the flat ones need a large receptive field (every level)
    loss = fl[43] - fl[5]  # key point: "most at the highest and the lowest noise"
    assert set(loss.argsort()[-2:].tolist()) == {0, 9}
    # highest noise: the multi-scale curves lie on the low-pass-only curve; the flat nets below it (two highest)
    assert all(abs(v[-1] - lp[-1]) < 0.2 for v in ms.values())
    assert all((fl[rf][-2:] < lp[-2:]).all() for rf in fl)
    # lowest noise: low-pass only far below; no multi-scale model above its noisy input; the conditional RF
    # matters again (RF 9 to 43 spread over about a decibel); flat RF 23 and 43 ahead of all of them
    assert lp[0] < min(v[0] for v in [*ms.values(), *fl.values()]) - 5
    assert all(v[0] <= noisy[0] for v in ms.values())
    assert 0.6 < spread[0] < 1.5 and ms[43][0] - ms[5][0] > 2
    assert min(fl[23][0], fl[43][0]) > max(v[0] for v in ms.values())


@needs_weights
def test_chapter5_stored_numbers_beside_ours(glued):
    """The authors' stored test PSNR (psnr_test_list.pt) as the chapter shows it, and "the same order of the
    receptive fields and a similar loss from RF 43 to RF 5"."""
    got = {int(rf): v for rf, v in _json(glued("book/05_receptive_fields")["ch5-stored"]).items()}
    K = (20, 60, 100, 180, 260)
    for rf, (theirs, ours) in got.items():
        rel = pretrained.relpath(160, rf).replace("model.pt", "psnr_test_list.pt")
        d = torch.load(_WEIGHTS / rel, weights_only=True)
        assert theirs == [d[k][0] for k in K]
    rfs = sorted(got)
    for i in range(len(K)):
        for col in (0, 1):
            assert all(got[a][col][i] < got[b][col][i] for a, b in zip(rfs, rfs[1:])), (K[i], col)
    assert abs((got[43][0][-1] - got[5][0][-1]) - (got[43][1][-1] - got[5][1][-1])) < 1.5


def test_chapter5_small_nets_and_the_lowpass_baseline(glued):
    """The synthetic family with the low-pass-only baseline against the page's words."""
    t = {k: torch.tensor(v) for k, v in _json(glued("book/05_receptive_fields")["ch5-small-table"]).items()}
    fl = torch.stack([t[f"flat, RF {rf}"] for rf in FLAT_RF5])
    ms = torch.stack([t[f"multi-scale, RF {rf}"] for rf in MS_RF5])
    lp = t["low-pass only"]
    cost_ms = ms[-1] - ms[0]
    assert cost_ms.argmax() == 0  # "RF 5 still costs the multi-scale models most at low noise"
    assert ((ms[2] - ms[1])[:4].abs() <= 0.2).all()  # "from RF 9 on nearly level up to 0.4"
    assert ((fl[3] - fl[1])[1:] > 0).all()  # "the flat nets keep gaining from RF 9 to RF 17 above 0.05"
    assert (fl[3] - fl[0] > 1).all() and ((fl[3] - fl[0]) > cost_ms.abs()).all()  # much more than multi-scale
    assert (ms[1:, :4].min(0).values > fl[:, :4].max(0).values).all()  # "up to 0.4 every ms RF 9/13 ahead"
    assert fl[1:, 4].min() > ms[:, 4].max()  # "At 0.8 the order reverses"
    assert lp[4] > max(fl[:, 4].max(), ms[:, 4].max())  # "the low-pass only ahead of every model there"
    assert ms[:, 4].max() - ms[:, 4].min() < 0.6  # "within about half a dB of each other there"


def test_chapter5_small_locality(glued):
    g = _json(glued("book/05_receptive_fields")["ch5-small-locality"])
    r95, within2 = g["r95"], g["within2"]
    # "At low noise the three nets are about equally local; at 0.4 the flat net's rows spread out, while the
    # conditional nets' stay close to their pixel"
    assert max(r95["0.1"]) - min(r95["0.1"]) <= 1
    assert r95["0.4"][0] > max(r95["0.4"][1:]) and within2[0] < min(within2[1:])


def test_chapter5_real_faces_pair_and_lowpass(glued):
    """The real-face text: the family gains, the sigma draws (closed form), the pair, the low-pass baseline."""
    t = {k: torch.tensor(v) for k, v in _json(glued("book/05_receptive_fields")["ch5-real-table"]).items()}
    fl = {rf: t[f"flat, RF {rf}"] for rf in REAL_FLAT5}
    ms = {rf: t[f"multi-scale, RF {rf}"] for rf in REAL_MS5}
    assert ((fl[21] - fl[5]) > (ms[13] - ms[5])).all()  # flat nets gain much more from their RF
    assert fl[5][0] < t["noisy"][0]  # flat RF 5 below its noisy input at 0.05
    # "four and a half times as many examples at sigma <= 0.05"; "the multi-scale nets drew still more"
    uniform, quadratic, log_uniform = 0.05, (math.floor(255 * 0.05 ** 0.5) + 1) / 255, math.log(50) / math.log(1000)
    assert 4.4 < quadratic / uniform < 4.6 and log_uniform > quadratic
    assert 2.95 < ms[5][0] - fl[5][0] < 3.05  # "their lead at 0.05 (3.0 dB at RF 5)"
    lp = t["low-pass only"]  # at 0.8: "ahead of the multi-scale RF 5 model and within a few tenths of the others"
    assert lp[4] > ms[5][4] and all(abs(lp[4] - ms[rf][4]) < 0.3 for rf in (9, 13))
    d = ms[13] - fl[21]  # "level at the lowest and the highest noise, and up to 0.7 dB behind in between"
    assert d[[0, 4]].abs().max() < 0.1 and (d[1:4] < 0).all() and d.min() > -0.75
    assert ((ms[13] - ms[9]) > 0).all()  # "ours still gain from RF 9 to RF 13 at every noise level"
    q, u = t["pair, quadratic σ"], t["pair, uniform σ"]
    d = q - u  # gains at 0.05 where it is now above its noisy input, loses at 0.4 and 0.8
    assert d[0] > 0.5 and u[0] < t["noisy"][0] < q[0] and d[3] < 0 and d[4] < 0


def test_chapter5_exercises(glued):
    """Exercise 1: the Gaussian chain is Markov, the Wiener filter's 95% radius grows with sigma; exercise 3: the
    centre output of multiscale_rf5 depends on every pixel (the solutions' numbers, as the chapter computed them)."""
    g = _json(glued("book/05_receptive_fields")["ch5-solutions"])
    chain = g["ex1"]
    assert chain["off-tridiagonal"] < 1e-12  # "below 10^-12": tridiagonal
    for sigma, r95 in (("0.1", 0), ("0.3", 1), ("1.0", 3)):
        assert chain[sigma]["r95"] == r95, sigma
        # "every entry non-zero, decaying geometrically": within distance 10 (further out the entries fall below
        # float64 rounding of the inverse, and some come out exactly 0)
        row = torch.tensor(chain[sigma]["row"])[22:43]
        assert (row > 1e-15).all() and (row[11:] < row[10:-1]).all(), sigma
    assert g["ex3 zero entries"] == 0  # "the centre output depends on all 1024 pixels"


@needs_weights
def test_chapter5_exercise_kernel_layouts(authors):
    for rf in (5, 9, 13, 23, 43):
        net = pretrained.paper_flat(rf)
        assert net.config["kernel_sizes"].count(3) == (rf - 1) // 2 and net.rf == rf
    assert nets.receptive_field(pretrained.paper_flat(9)) == 9
    # the text: flat and conditional nets of 21 layers with 64 channels, a low-pass net of 20 layers of 3x3 kernels
    ms = pretrained.paper_multiscale(9)
    for m in (net, *ms.conditionals):
        assert len(m.conv_layers) == 21 and m.conv_layers[0].out_channels == 64
    assert ms.low.config["kernel_sizes"] == [3] * 20 and ms.levels == 2


# chapter 5, real faces: the celeba80 family and its shipped table (pretrained.celeba80_table)
REAL_FLAT5, REAL_MS5 = (5, 9, 13, 21), (5, 9, 13)
REAL_NAMES = [f"celeba80_flat_rf{rf}" for rf in REAL_FLAT5] + [f"celeba80_multiscale_rf{rf}" for rf in REAL_MS5]
REAL_PAIR = ["celeba80_flat_rf5_short", "celeba80_flat_rf5_short_quadratic"]  # only the sigma draw differs


def test_chapter5_real_face_family_recipes():
    """"Every net has 10 layers of 32 channels"; the flat and conditional nets "4000 steps of 32 examples (40 x 40
    crops for the flat nets, whole images for the conditional ones)", the low-pass net 16 000 steps; the multi-scale
    models "share one low-pass net (receptive field 21)"; 21 is the largest RF at this depth."""
    from mslcp import recipes

    low = pretrained.shipped("celeba80_multiscale_rf5").low.state_dict()
    for name in REAL_NAMES:
        r, m = recipes.get(name), pretrained.shipped(name)
        assert m.recipe == r and r["data"] == "celeba80" and r["image_size"] == 80
        rf = int(name.rpartition("rf")[2])
        for (scale, stage), net in zip(recipes.stages(r).items(), [m] if not r["levels"] else [m.low, *m.conditionals]):
            assert len(net.conv_layers) == 10 and net.conv_layers[0].out_channels == 32
            assert (stage["steps"], stage["batch_size"]) == (16000 if scale == "low" else 4000, 32)
            assert stage["patch_size"] == (None if r["levels"] else 40)
        if r["levels"]:
            assert r["levels"] == 2 and m.low.rf == 21 and [c.rf for c in m.conditionals] == [rf, rf]
            assert all(torch.equal(a, low[k]) for k, a in m.low.state_dict().items())
        else:
            assert m.rf == nets.receptive_field(m) == rf <= 2 * 10 + 1
    for name in REAL_PAIR:  # "a quarter of its steps", "nothing else differs, not even the seeds"
        r = pretrained.shipped(name).recipe
        assert r == recipes.get(name) and r["steps"] == 1000
        drop = lambda d: {k: v for k, v in d.items() if k not in ("name", "steps", "quadratic_sigma")}
        assert drop(r) == drop(recipes.get("celeba80_flat_rf5")) and r.get("quadratic_sigma", False) == (
            name.endswith("quadratic"))


@needs_halfres
def test_chapter5_real_face_table_is_measured(tmp_path):
    """The shipped table is what the shipped models give on the 473 test faces (re-measured at three of its noise
    levels: the command draws one noise image and scales it, so each level's column stands alone)."""
    import csv

    from mslcp.__main__ import main

    from mslcp import multiscale

    sigmas = ["0.2", "0.4", "0.8"]
    names = [*REAL_NAMES, *REAL_PAIR]  # chapter 5's pair too (data/celeba80_chapter5_columns.py)
    main(["evaluate", *names, "--data", "celeba80", "--n", "473", "--sigmas", *sigmas, "--out", str(tmp_path)])
    got = {float(r["sigma"]): r for r in csv.DictReader(open(tmp_path / "denoising.csv"))}
    table = pretrained.celeba80_table()
    for name in ["noisy", *names]:
        for s in map(float, sigmas):
            assert float(got[s][name]) == pytest.approx(table[name][s], abs=2e-3), (name, s)
    # the low-pass-only column, by block averages and nearest upsampling (not multiscale.LowpassOnly's wavelets)
    x = data.celeba_halfres(split="test", n=473)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    low = pretrained.shipped("celeba80_multiscale_rf5").low
    for s in (0.05, 0.8):
        with torch.no_grad():
            out = torch.nn.functional.interpolate(low(torch.nn.functional.avg_pool2d(x + s * noise, 4)),
                                                  scale_factor=4, mode="nearest")
        assert metrics.psnr(out, x).mean().item() == pytest.approx(table["celeba80_lowpass_only"][s], abs=2e-3)


# --- chapter 6 ---

CH6 = "06_synthesis"
CH6_FLATS = ("flat RF 5, β = 0.5", "flat RF 5, β = 0.1")  # the rows of chapter 6's quality table


def test_chapter6_per_level_settings(glued):
    # (the settings table's numbers are glued by the chapter: test_chapter6_settings_glued)
    # "three nets of that depth and width", receptive fields 5 (flat, conditionals) and 13 (low-pass)
    flat, ms = pretrained.shipped("flat_rf5"), pretrained.shipped("multiscale_rf5")
    for net, rf in ((flat, 5), (ms.low, 13), *((cond, 5) for cond in ms.conditionals)):
        assert (len(net.config["kernel_sizes"]), net.config["width"], nets.receptive_field(net)) == (8, 32, rf)
    # exercise 2: beta = 0.5 everywhere, "about half the calls" of the details, distance within the floor
    ex2, q = _value(glued, CH6, "ch6-solutions")["ex2"], _value(glued, CH6, "ch6-quality")
    ratio = sum(ex2["calls"][:2]) / sum(ex2["chosen"][:2])
    floor = float(glued(f"book/{CH6}")["ch6-floor"])
    assert 0.35 < ratio < 0.65 and abs(ex2["total"] - q["multi-scale RF 5"]["total"]) < floor, (ratio, ex2)


def test_chapter6_sample_quality(glued):
    q = _value(glued, CH6, "ch6-quality")
    ms, total = q["multi-scale RF 5"], {k: v["total"] for k, v in q.items()}
    assert max(total["training faces"], total["held-out faces"]) < total["multi-scale RF 5"] < min(
        total[f] for f in CH6_FLATS), total
    for f in CH6_FLATS:
        assert q[f]["layout"] > 1 > 0.5 > ms["layout"], f  # flat: "a distance above 1 with either beta"
        assert q[f]["kurtosis 0"] > ms["kurtosis 0"] and q[f]["kurtosis 1"] > ms["kurtosis 1"], f
    for s in ms:  # "closer to the faces than either flat run in every statistic but one, level 1's energy"
        if s != "total":
            assert (ms[s] < min(q[f][s] for f in CH6_FLATS)) == (s != "log energy 1"), s
    per = _value(glued, CH6, "ch6-per-image")
    assert per["brightness std"]["multi-scale RF 5"] > per["brightness std"]["training data"]  # "varies more"
    median = per["median log energy 0"]
    for k in ("multi-scale RF 5", *CH6_FLATS):  # largest discrepancy: finest energy, "too low"
        assert max(q[k], key=lambda s: -1 if s == "total" else q[k][s]) == "log energy 0", k
        assert median[k] < median["training data"], k


def test_chapter6_super_resolution(glued):
    sr = _value(glued, CH6, "ch6-sr")
    assert sr["low_error"] < 1e-5  # "up to float rounding"
    p_bicubic, p_sample, p_mean = sr["psnr"].values()
    assert list(sr["psnr"]) == ["bicubic", "one sample", f"mean of {sr['per']} samples"]
    assert p_mean > p_sample > p_bicubic  # both beat bicubic
    assert sr["std"] < sr["mean_error"] / 3  # "several times smaller than the error of their mean"
    gap = 10 * math.log10(2 / (1 + 1 / sr["per"]))
    assert p_mean - p_sample < gap / 2  # "far smaller" than for exact posterior samples


def test_chapter6_cost_batched_against_one_at_a_time(glued):
    c = _value(glued, CH6, "ch6-cost")
    for j, (batched, steps, single) in enumerate(zip(c["batched"], c["steps"], c["single"])):
        # "the sum of the images' calls, a batch only as many as its slowest image"
        assert batched == max(steps) + 1 and single == sum(s + 1 for s in steps), (j, c)
    assert c["difference"] < 1e-4  # the same images


def test_chapter6_exercise1(glued):
    for above, steps in _value(glued, CH6, "ch6-solutions")["ex1"]:  # "more than half of each run" above 0.1
        assert above > steps / 2, (above, steps)


def test_chapter6_exercise3(glued):
    """Exercise 3: what the measure sees in degraded held-out faces."""
    g = _value(glued, CH6, "ch6-solutions")
    d, kurt = g["ex3"], g["ex3 kurtosis 0"]
    base, darker, flipped = d["held-out"], d["darker"], d["upside down"]
    worst = lambda q: max((k for k in q if k != "total"), key=q.get)
    assert worst(d["blurred"]) == "log energy 0" and worst(d["noisy"]) == "log energy 0"
    assert abs(kurt["noisy"] - 3) < abs(kurt["held-out"] - 3)  # "pulls its kurtosis towards 3"
    for k in base:  # a gain: layout and kurtosis exactly as they were; mean, contrast, energies move
        if k.startswith("kurtosis") or k == "layout":
            assert abs(darker[k] - base[k]) < 1e-4, k
        elif k != "total":
            assert darker[k] > base[k] + 0.5, k
    # upside down: "changes only the layout score"
    assert all(abs(flipped[k] - base[k]) < 1e-4 for k in base if k not in ("layout", "total"))
    assert flipped["layout"] > base["layout"] + 0.3


def test_chapter6_equal_capacity_pairs(glued):
    ms5 = pretrained.shipped("multiscale_rf5")
    for rf in (9, 13):  # depth 8, width 32; the rf-9 and rf-13 models reuse the rf-5 model's low-pass net
        ms, flat = pretrained.shipped(f"multiscale_rf{rf}"), pretrained.shipped(f"flat_rf{rf}")
        assert all(torch.equal(a, b) for a, b in zip(ms.low.state_dict().values(), ms5.low.state_dict().values()))
        for net in (flat, *ms.conditionals):
            assert (len(net.config["kernel_sizes"]), net.config["width"], nets.receptive_field(net)) == (8, 32, rf)
    g = glued(f"book/{CH6}")
    v = {k[len("ch6-pair-"):]: float(x) for k, x in g.items() if k.startswith("ch6-pair-") and k != "ch6-pair-text"}
    # every multi-scale model (RF 5, 9, 13) closer to the faces than every flat run, with a layout far closer
    assert v["ms-total-max"] < v["flat-total-min"], v
    assert v["flat-layout-min"] > 1 > 0.5 > v["ms-layout-max"], v


def test_chapter6_settings_glued(glued):
    g = {k: float(v) for k, v in glued("book/06_synthesis").items() if k.startswith(("ch6-set-", "ch6-floor"))
         and k != "ch6-set-text"}
    text = " ".join(glued("book/06_synthesis")["ch6-set-text"].split())
    assert 0 < g["ch6-set-saved-min"] <= g["ch6-set-saved-max"] < 1  # sigma0 = 0.1 saves detail calls
    assert g["ch6-set-total-change"] < g["ch6-floor"]  # "by less than ... the noise floor"
    # "The low-pass beta matters far more": more extreme images with 0.1, every distance cut, fewer calls
    assert g["ch6-set-extreme-01"] > 2 * g["ch6-set-extreme-05"] and g["ch6-set-extreme-01"] > 64 * 2 * g[
        "ch6-set-extreme-faces"]
    assert min(g["ch6-set-cut-mean"], g["ch6-set-cut-contrast"], g["ch6-set-cut-total"]) > 0.2
    assert g["ch6-set-cut-total"] > g["ch6-set-total-change"]
    assert g["ch6-set-low-calls-05"] < g["ch6-set-low-calls-01"]
    for k in ("extreme-01", "extreme-05", "low-calls-05", "low-calls-01"):
        assert f"{g['ch6-set-' + k]:.0f}" in text, k
    assert f"total by {100 * g['ch6-set-cut-total']:.0f} %" in text


def test_chapter6_darker_and_pairs_glued(glued):
    g = glued("book/06_synthesis")
    assert float(g["ch6-dark"]) < -0.05 and g["ch6-dark-text"] == f"{float(g['ch6-dark']):+.2f}"  # "darker"
    v = {k[len("ch6-pair-"):]: float(x) for k, x in g.items() if k.startswith("ch6-pair-") and k != "ch6-pair-text"}
    assert abs(v["params-flat17"] / v["params-ms5"] - 1) < 0.01  # the matched baseline: "almost exactly"
    # "still much further from the faces ... its layout distance far above the multi-scale one"
    assert min(v["flat17-total-05"], v["flat17-total-01"]) > 1.3 * v["ms5-total"]
    assert v["flat-layout-min"] > 2 * v["ms-layout-max"]
    # the three multi-scale layout distances: "nearly equal" (within the noise floor)
    assert v["ms-layout-max"] - v["ms-layout-min"] < float(g["ch6-floor"])
    assert f"at least {v['flat-layout-min']:.2f}" in g["ch6-pair-text"]
    ratios = [float(r) for r in re.search(r"have ([\d.]+), ([\d.]+) and ([\d.]+) times", g["ch6-pair-text"]).groups()]
    assert 3 <= min(ratios) and max(ratios) <= 8.5  # key point: "3 to 8 times the parameters"


def test_chapter6_paper_320_glued(glued):
    """Chapter 6's last section (book/06_paper_320): the authors' J = 3 model at 320x320."""
    g = glued("book/06_paper_320")
    if not g.get("ch6-320-text"):  # no weights: the one line pretrained.SKIPPED is printed, nothing else shown
        assert not g["ch6-320-settings"] and not g["ch6-sr320-text"] and not g["ch6-320-keys"]
        return
    p = {k: float(g[f"ch6-sr320-{k}"]) for k in ("min", "max", "mean", "bicubic")}
    assert p["min"] <= p["max"] and p["mean"] > p["bicubic"]
    above = int(g["ch6-sr320-text"].split()[0])
    assert f"{above} of the" in g["ch6-sr320-text"] and (above > 0) == (p["max"] > p["bicubic"])
    assert float(g["ch6-sr320-edge-ratio"]) > 1.5  # "largest along edges"
    for s in ("h_0 = 0.01$, $\\sigma_0 = 1$, $\\beta = 0.1$", "relative_stop=True", "[0, 0.8]"):
        assert s in g["ch6-320-settings"], s
    keys = " ".join(g["ch6-320-keys"].split())  # the key points: the numbers of the super-resolution table
    assert (f"{above} of the {int(float(g['ch6-320-n']))} score above bicubic interpolation ({p['min']:.2f} to "
            f"{p['max']:.2f} dB; the mean of the samples {p['mean']:.2f}, bicubic {p['bicubic']:.2f})") in keys


# --- chapter 7 ---

CH7 = "book/07_inverse_problems"
CH7_REAL = "book/07_real_faces"  # its last section: a photograph, and the authors' nets
CH7_PROBLEMS = ("block", "pixels", "avg2", "avg4", "avg8", "cs5", "cs10", "cs25")
CH7_OPEN = ("block", "avg8", "cs5", "cs10", "cs25")  # measurements that leave the layout of the face open
CH7_FIXED = ("pixels", "avg2", "avg4")  # measurements that fix it


@pytest.fixture(scope="module")
def chapter7(glued):
    """{name: float} of every number chapter 7 and its last section glued in the book build (figures and sentences
    left out)."""
    out = {}
    for name, text in {**glued(CH7), **glued(CH7_REAL)}.items():
        try:
            out[name] = float(text)
        except ValueError:
            pass
    return out


def _n_params(recipe):
    return sum(p.numel() for p in recipes.build(recipes.get(recipe)).parameters())


def test_chapter7_capacity(chapter7):
    """The parameter counts on the page are those of the recipes' nets, and the labels say what is equal: flat RF 5 has
    "an eighth of the parameters" of the multi-scale model, flat RF 17 "as many (within 1%)", and flat RF 21 is the
    real-face family's flat net "closest to the multi-scale model in parameters"."""
    g = chapter7
    for key, name in (("flat5", "flat_rf5"), ("flat17", "flat_rf17"), ("ms", "multiscale_rf5")):
        assert g[f"ch7-params-{key}"] == _n_params(name), name
    for key, name in (("flat5", "celeba80_flat_rf5"), ("flat21", "celeba80_flat_rf21"),
                      ("ms", "celeba80_multiscale_rf5")):
        assert g[f"ch7-real-params-{key}"] == _n_params(name), name
    assert 7.5 < g["ch7-params-ms"] / g["ch7-params-flat5"] < 8.5
    assert abs(g["ch7-params-flat17"] / g["ch7-params-ms"] - 1) < 0.01
    flats = {rf: _n_params(f"celeba80_flat_rf{rf}") for rf in (5, 9, 13, 21)}
    assert min(flats, key=lambda rf: abs(flats[rf] - g["ch7-real-params-ms"])) == 21


def test_chapter7_priors_on_synthetic_faces(chapter7, glued):
    """The PSNR table of the three priors on the synthetic faces (mean over 4 faces x 4 samples), the text under
    fig-ch7-samples, fig-ch7-cs and the key points."""
    g = chapter7
    p = lambda prob, m: g[f"ch7-{prob}-{m}"]
    lead = lambda prob, flat: g[f"ch7-{prob}-lead-{flat}"]
    F = torch.nn.functional
    n = _value(glued, "07_inverse_problems", "ch7-sizes")  # the chapter's image size, test faces, samples each
    faces = synthetic.faces(n["faces"], n["size"], seed=2)  # the glued baselines are what they say
    hole = torch.ones(n["size"], n["size"], dtype=torch.bool)
    hole[10:22, 8:24] = False
    M = sampling.inpainting(hole)
    assert abs(metrics.psnr(M.adjoint(M.forward(faces)), faces).mean().item() - p("block", "ls")) < 1e-3
    bicubic = F.interpolate(F.avg_pool2d(faces, 4), scale_factor=4, mode="bicubic")
    assert abs(metrics.psnr(bicubic, faces).mean().item() - p("avg4", "bicubic")) < 1e-3
    for prob in CH7_PROBLEMS:  # "the highest mean PSNR on all eight problems, against both flat priors"
        others = [p(prob, m) for m in ("ls", "flat5", "flat17")] + [g.get(f"ch7-{prob}-bicubic", -math.inf)]
        assert p(prob, "ms") > max(others), prob
        for flat in ("flat5", "flat17"):  # a lead is the difference of the means; per face it spans the mean
            assert abs(lead(prob, flat) - (p(prob, "ms") - p(prob, flat))) < 1e-6
            assert g[f"ch7-{prob}-lead-{flat}-min"] <= lead(prob, flat) <= g[f"ch7-{prob}-lead-{flat}-max"]
    for prob in CH7_OPEN:  # against flat RF 5, "5 dB or more wherever the measurements leave the layout open"
        assert lead(prob, "flat5") >= 5, prob
    for prob in ("block", "cs5", "cs10", "cs25"):  # against flat RF 17, "1 to 3.3 dB on the hole and the projections"
        assert 1 <= lead(prob, "flat17") <= 3.3, prob
        assert g[f"ch7-{prob}-lead-flat17-min"] > 0, prob  # "holds on every face"
    assert lead("cs25", "flat17") < lead("cs10", "flat17") < lead("cs5", "flat17")  # "from 25% down to 5%"
    for prob in CH7_FIXED:  # "under a decibel where the measurements fix the layout"; "ahead on some face"
        assert 0 < lead(prob, "flat17") < 1 and g[f"ch7-{prob}-lead-flat17-min"] < 0, prob
    assert lead("avg8", "flat17") > 5 and g["ch7-avg8-lead-flat17-min"] > 0  # "only the 8x8 averages keep a large lead"
    # the paper section: the lead over flat RF 17 "was smallest where the measurements fixed the layout"
    assert max(lead(prob, "flat17") for prob in CH7_FIXED) < min(lead(prob, "flat17") for prob in CH7_OPEN)
    assert max(p("avg8", "flat5"), p("avg8", "flat17")) < p("avg8", "ls")  # "both fall below even M m"
    assert g["ch7-blob-flat5"] > 0.8 and g["ch7-blob-flat5"] > g["ch7-blob-original"] + 0.2  # "a white blob"
    for s in (2, 4, 8):  # flat RF 5 "below bicubic at every block size"
        assert p(f"avg{s}", "flat5") < p(f"avg{s}", "bicubic"), s
    assert p("avg4", "flat17") > p("avg4", "bicubic")  # flat RF 17 "above it at 4x4"
    assert abs(p("avg2", "flat17") - p("avg2", "bicubic")) < 0.1  # "level with it at 2x2"
    assert p("avg8", "flat17") < p("avg8", "bicubic")  # "below it at 8x8"
    ls = [p(f"cs{r}", "ls") for r in (5, 10, 25)]  # fig-ch7-cs: least squares "lowest, nearly flat"
    assert max(ls) - min(ls) < 1.5
    for r in (5, 10, 25):  # its alt text, bottom to top: least squares, flat RF 5, flat RF 17, multi-scale
        assert p(f"cs{r}", "ls") < p(f"cs{r}", "flat5") < p(f"cs{r}", "flat17") < p(f"cs{r}", "ms"), r


def test_chapter7_super_resolution(chapter7):
    """super_resolve against the constrained sampler, with the chapter's sigma0 = 1 and Chapter 6's 0.1 for the
    details."""
    g = chapter7
    for s in (2, 4):
        assert min(g[f"ch7-avg{s}-sr"], g[f"ch7-avg{s}-ms"]) > g[f"ch7-avg{s}-bicubic"], s  # "both beat bicubic"
        assert g[f"ch7-avg{s}-error"] < 1e-5, s  # "keep the block averages to float32 rounding"
        assert abs(g[f"ch7-avg{s}-sr-ch6"] - g[f"ch7-avg{s}-sr"]) < 0.1, s  # sigma0 = 0.1: "moves by less than 0.1 dB"
        assert g[f"ch7-avg{s}-calls-sr-ch6"] < g[f"ch7-avg{s}-calls-sr"], s  # "for ... calls instead of ..."
    for sr in ("sr", "sr-ch6"):  # "the comparison with the constrained sampler does not depend on the choice"
        assert abs(g[f"ch7-avg4-{sr}"] - g["ch7-avg4-ms"]) < 0.2  # 4x: "agree to within 0.2 dB"
        assert g[f"ch7-avg2-{sr}"] > g["ch7-avg2-ms"] + 1  # 2x: "better by more than a decibel"


def test_chapter7_spread_and_controls(chapter7, glued):
    """The spread of the multi-scale samples against their error, and the two controls: the exact Gaussian prior with
    the same sampler, and the network with a fixed step at beta = 0.5."""
    g = chapter7
    r = {prob: g[f"ch7-{prob}-ratio"] for prob in CH7_PROBLEMS}
    narrow = ("block", "pixels", "avg2", "avg4", "cs25")
    assert all(v < 1 for v in r.values()), r  # "the samples spread less than they err on every problem"
    assert all(r[prob] < 0.2 for prob in narrow), r  # "below 0.2"
    for prob in ("avg8", "cs5", "cs10"):  # "largest, from about 0.4 to about 0.8"
        assert 0.35 < r[prob] < 0.85 and r[prob] > max(r[n] for n in narrow), (prob, r)
    assert g["ch7-ratio-min"] == min(r.values()) and g["ch7-ratio-max"] == max(r.values())
    k = _value(glued, "07_inverse_problems", "ch7-sizes")["k"]
    exact = 10 * math.log10(2 * k / (k + 1))
    assert abs(g["ch7-gain-exact"] - exact) < 1e-6
    assert all(g[f"ch7-{prob}-gain"] < exact / 2 for prob in CH7_PROBLEMS)  # "less than half of the exact gain"
    for prob in ("avg2", "avg4"):  # "the tenth of the pixels with the strongest edges holds 0.15 to 0.2"
        assert 0.14 < g[f"ch7-{prob}-edge"] < 0.21, prob
    for prob in ("avg8", "cs5", "cs10"):  # "the edge share is below 0.1"
        assert g[f"ch7-{prob}-edge"] < 0.1, prob
    c = lambda setting, name: g[f"ch7-control-{setting}-{name}"]
    assert abs(c("chapter", "net") - r["block"]) < 1e-4  # the chapter's own samples (hole only: the same ratio)
    assert 0.9 < c("chapter", "gauss-post") < 1.15  # the exact prior's samples "spread as the posterior does"
    assert c("chapter", "gauss") < 1 and 3 < c("chapter", "gauss") / c("chapter", "net") < 5  # "about four times"
    assert c("chapter", "net") + 0.2 < c("fixed", "net") < 1  # the fixed step "raises the network's ratio"
    assert c("fixed", "gauss-post") > 1.3  # "spread ... times too wide"
    assert c("fixed", "calls-net") > 2 * c("chapter", "calls-net")
    assert g["ch7-residual-min"] > 0.01  # the net moves a clean test face "more than sigma_L = 0.01"


def test_chapter7_real_face(chapter7):
    """The astronaut's face with the real-face family: the table (mean and range over the k samples) and its text."""
    g = chapter7
    p = lambda prob, m, stat="": g[f"ch7-real-{prob}-{m}{stat}"]
    spread = lambda prob, m: p(prob, m, "-max") - p(prob, m, "-min")
    priors = ("flat5", "flat21", "ms")
    for prob, m in (("eyes", "flat5"), ("cs10", "flat21")):  # "best on none of the three problems"
        assert max(priors, key=lambda q: p(prob, q)) == m, prob
    assert p("eyes", "flat5", "-min") > p("eyes", "ms")  # "even its worst sample is above the multi-scale mean"
    assert p("eyes", "flat21") < min(p("eyes", "flat5"), p("eyes", "ms"))  # flat RF 21 "below both"
    assert spread("eyes", "flat21") > max(spread("eyes", "flat5"), spread("eyes", "ms"))  # "and varies the most"
    bicubic = p("avg4", "bicubic")
    assert all(p("avg4", m) < bicubic for m in (*priors, "sr"))  # "no sampler beats bicubic interpolation"
    for m in ("flat5", "ms"):  # "tie within 0.15 dB of it"
        assert bicubic - 0.15 < p("avg4", m)
    assert abs(p("avg4", "flat5") - p("avg4", "ms")) < 0.1
    assert p("cs10", "flat5") < p("cs10", "ms") < p("cs10", "flat21")  # ahead of flat RF 5, behind flat RF 21
    assert p("cs10", "flat21", "-min") > p("cs10", "ms", "-max")  # "every one of its samples above every sample"
    assert g["ch7-real-cs10-ms-std"] > max(g["ch7-real-eyes-ms-std"], g["ch7-real-avg4-ms-std"])  # "vary the most"


def test_chapter7_paper_models(chapter7, glued):
    """The section on the authors' 160x160 nets: what its generated sentences say matches its numbers; in the CPU
    preset (one constrained sample at h0 = 0.1) the issue's reading: flat and multi-scale tie, super_resolve 0.4 dB
    below the constrained sampler, with sharper details and a mean of its samples above every single sample."""
    g = chapter7
    if "ch7-paper-ms" not in g:
        pytest.skip("the build had no authors' weights, so chapter 7 skipped the section")
    words = glued(CH7_REAL)
    text, intro = words["paper-text"], words["paper-intro"]
    assert g["ch7-paper-sr-min"] <= g["ch7-paper-sr"] <= g["ch7-paper-sr-max"]
    if g["ch7-paper-kp"] != 1:
        return  # the GPU preset: other images and settings
    assert g["ch7-paper-h0"] == 0.1 and "10 times the paper's 0.01" in intro
    assert "1 constrained sample and 4 `super_resolve` samples per image" in intro
    assert abs(g["ch7-paper-flat"] - g["ch7-paper-ms"]) < 0.1 and "priors tie" in text
    gap = g["ch7-paper-ms"] - g["ch7-paper-sr"]
    assert 0.3 < gap < 0.5 and f"is {gap:.1f} dB below the constrained sampler" in text
    assert g["ch7-paper-sr-energy"] > g["ch7-paper-ms-energy"] > g["ch7-paper-bicubic-energy"]
    assert "draws sharper details" in text and "sharper details" in words["ch7-paper-keys"]
    assert g["ch7-paper-sr-mean"] > max(g["ch7-paper-ms"], g["ch7-paper-sr-max"])
    assert "above every single sample" in text


def test_chapter7_exercise2_gaussian_posterior(glued):
    """Exercise 2's solution: on chapter 3's Gaussian prior the constrained sampler's mean misses the exact posterior
    mean by several times the sampling error, whatever h0, and lies closer to the prior mean."""
    ex2 = _value(glued, "07_inverse_problems", "ch7-solutions")["ex2"]
    for h0 in (0.05, 0.01):
        assert ex2[h0]["miss"] > 4 * ex2["sampling_error"], (h0, ex2)  # "several times the sampling error"
        assert ex2[h0]["to_prior"] < ex2["exact_to_prior"], (h0, ex2)  # "closer to the prior mean"
    assert abs(ex2[0.05]["miss"] - ex2[0.01]["miss"]) < 0.1 * ex2[0.05]["miss"], ex2  # "hardly changes"


def test_chapter7_exercise4_spread_settings(glued):
    """Exercise 4's solution: the ratio of spread to error for three sampler settings (block inpainting, k = 8)."""
    ex4 = _value(glued, "07_inverse_problems", "ch7-solutions")["ex4"]  # h0 = 0.05, 0.01; fixed step, beta = 0.5
    ratio, calls = [r["ratio"] for r in ex4], [r["calls"] for r in ex4]
    assert abs(ratio[1] - ratio[0]) < 0.1, ratio  # "a smaller step with beta = 0.1 changes the ratio little"
    assert ratio[2] > max(ratio[:2]) + 0.2 and ratio[2] < 1, ratio  # "spread the most"; "stays below 1"
    assert calls[2] > 2 * calls[0], calls  # "more than twice the calls"


# --- chapter 8 ---

CH8 = Path(__file__).parents[1] / "book" / "08_assignment.ipynb"
CH8_KIT = Path(__file__).parents[1] / ".ci" / "assignment"


def _ch8_text():
    import json

    return "\n".join("".join(c["source"]) for c in json.loads(CH8.read_text())["cells"])


def _ch8_calibration():
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("verdicts", CH8_KIT / "verdicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads((CH8_KIT / "calibration.json").read_text())


def test_chapter8_time(glued):
    """The intro's "took A–B seconds from start to end in two runs beside other work, of which its kernel used C
    seconds of CPU time in each" (the table repeats the CPU time): the CPU time under the book's 3 minutes a chapter and below the wall
    time; and the CPU time of this build's run under 3 minutes too (its last cell glues its seconds and its CPU
    seconds). Wall time depends on the machine's load."""
    import re

    text = " ".join(_ch8_text().split())
    m = re.search(r"took (\d+)–(\d+) seconds from start to end in two runs beside other work, of which its "
                  r"kernel used (\d+) seconds of CPU time in each", text)
    assert m, "the intro states the measured time as a range"
    wall, cpu = (int(m.group(1)), int(m.group(2))), int(m.group(3))
    assert 0 < cpu <= wall[0] <= wall[1] and cpu <= 180
    assert f"| {cpu} s of CPU time (measured; see below) |" in text
    g = glued("book/08_assignment")
    assert 0 < float(g["ch8-cpu-seconds"]) <= min(float(g["ch8-seconds"]), 180)


def test_chapter8_calibration():
    """Task 3's TOL and seed count, the solution's verdicts and each mistake's, against the committed seed
    calibration (.ci/assignment/calibration.json, made by calibrate.py and verdicts.py): TOL is twice the
    largest seed-to-seed standard deviation of a gain difference; the solution passed every check for every
    seed; every common mistake failed the check that must catch it; the table of the solution's gains, the
    finding and the key point in the chapter are the calibration's (.ci/assignment/fill_chapter.py)."""
    verdicts, cal = _ch8_calibration()
    text = _ch8_text()
    tol, _ = verdicts.tol_of(cal)
    assert f"TOL = {tol}  # dB" in text
    flat = " ".join(text.split())
    assert f"over the solution run with {len(cal)} values of `SEED`" in flat
    assert f"ran this solution with {len(cal)} values of `SEED`" in flat
    for seed, r in cal.items():
        assert set(r["verdicts"]["solution"].values()) == {"pass"}, (seed, r["verdicts"]["solution"])
        for name, v in r["verdicts"].items():
            if name != "solution":
                assert all(x.startswith("FAIL") for x in v.values()), (seed, name, v)
    assert verdicts.gain_table(cal) in text
    assert verdicts.finding(cal) in flat and verdicts.key_point(cal) in flat
    assert (CH8_KIT / "CALIBRATION.md").read_text().endswith(verdicts.markdown(cal))

def test_chapter8_gpu_preset_workload():
    """"the GPU preset trains 15 nets for 3,000 steps each (Task 4 included), about 120 TFLOP of convolutions, 15 s at
    a T4's peak float32 rate (8.1 TFLOP/s)": the GPU preset's sizes (mslcp.presets, which the chapter reads), each
    conv layer's multiply-adds counted on the images it sees (flat nets 32x32, conditional nets of level 0 16x16),
    training = 3 x forward. (The page's "60 CPU-minutes" for that run is a time: measured once, not tested.)"""
    from mslcp import presets

    a = presets.get("gpu").assignment
    rfs, steps, batch, width, depth = a["rfs"], a["steps"], a["batch"], a["width"], a["depth"]
    flops = nets.train_flops  # checked against the closed form in tests/test_nets.py
    per_image = sum(flops(nets.BFCNN(width=width, depth=depth, rf=rf), 32)
                    + 2 * flops(nets.ConditionalBFCNN(width=width, depth=depth, rf=rf), 16) for rf in rfs)  # Haar, db2
    total = per_image * batch * steps
    text = " ".join(_ch8_text().split())
    assert f"trains {3 * len(rfs)} nets for {steps:,} steps each (Task 4" in text
    assert 3 * len(rfs) == 15 and 110e12 < total < 130e12, total / 1e12
    assert round(total / 8.1e12) == 15, total / 8.1e12
