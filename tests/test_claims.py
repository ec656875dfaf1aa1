"""What the chapters say about the shipped checkpoints (data/checkpoints), checked with the chapters' own settings.

The book's text describes these small nets in words ("within about a decibel", "at least twice"). nbval only runs
the chapters; these tests fail when a retrained checkpoint no longer matches the words, so that the text is
revised with it.
"""
import functools
import math

import pytest
import torch

from mslcp import data, metrics, nets, pretrained, sampling, wavelets


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def psnr(model, x, noise, s):
    with torch.no_grad():
        return metrics.psnr(model(x + s * noise), x).mean().item()


def test_chapter2_bias_free_generalizes_beyond_training_range():
    bf, biased = pretrained.shipped("bf_small"), pretrained.shipped("biased_small")
    x = data.synthetic_faces(24, 32, seed=1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for s in (0.02, 0.05, 0.1):  # inside the training range: "within about a decibel"
        assert abs(psnr(bf, x, noise, s) - psnr(biased, x, noise, s)) < 1.2, s
    for s in (0.1, 0.2, 0.4, 0.6):  # "keeps improving on its input by a wide margin" up to 6x the range
        assert psnr(bf, x, noise, s) > metrics.psnr(x + s * noise, x).mean().item() + 5, s
    noisy = metrics.psnr(x + 0.6 * noise, x).mean().item()  # "gain ... well under half of the bias-free network's"
    assert psnr(biased, x, noise, 0.6) - noisy < 0.5 * (psnr(bf, x, noise, 0.6) - noisy)
    y = x[1:2] + 0.1 * noise[1:2]
    with torch.no_grad():  # homogeneity: to float32 rounding, against "several percent"
        rel = [((n(3 * y) - 3 * n(y)).norm() / (3 * n(y)).norm()).item() for n in (bf, biased)]
    assert rel[0] < 1e-5 and rel[1] > 1e-2


@pytest.mark.parametrize("h0, k", [(0.05, 6), (0.01, 18)])  # chapter 3's CPU and GPU presets
def test_chapter3_receptive_field_decides_the_layout(h0, k):
    faces = data.synthetic_faces(2048, 32, seed=0)
    layout = lambda x: metrics.layout_score(x, faces.mean(0))  # chapter 3's: correlation with the mean face

    result = {}
    for name in ("flat_rf5", "flat_rf33"):
        net = pretrained.shipped(name)
        with torch.no_grad():
            floor = float(((net(faces[:64]) - faces[:64]).flatten(1).norm(dim=1) / 32).mean())
        x, _ = sampling.sample(net, (k, 1, 32, 32), h0=h0, beta=0.1, sigma_final=max(0.01, 1.5 * floor),
                               generator=list(range(k)))
        result[name] = float(layout(x).mean()), float(x.mean()), nets.receptive_field(net)
    (l5, m5, rf5), (l33, m33, rf33) = result["flat_rf5"], result["flat_rf33"]
    assert (rf5, rf33) == (5, 33)
    assert l33 > 2 * l5 and l33 > 0.3, result  # "layout scores at least twice those of RF 5"
    mean = float(faces.mean())
    assert m5 < mean - 0.1 and abs(m33 - mean) < 0.1, result  # RF 5 darker; RF 33 "the faces' overall brightness"


def test_chapter4_multiscale_against_flat():
    ms, flat5, flat33 = (pretrained.shipped(n) for n in ("multiscale_rf5", "flat_rf5", "flat_rf33"))
    x = data.synthetic_faces(64, 32, seed=2)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for s in (0.05, 0.1, 0.2, 0.4, 0.7, 1.0):
        m, f5, f33 = (psnr(net, x, noise, s) for net in (ms, flat5, flat33))
        assert m > f5, s  # "positive at every noise level"
        if s <= 0.2:
            assert abs(m - f33) < 0.3, s  # "up to sigma = 0.2 the multi-scale model matches the global RF-33 net"
        else:
            assert m < f33, s  # "above sigma = 0.2 it falls behind"
    # one face at sigma = 0.4: the low-pass error is the largest of the three per-level errors
    clean, noisy = x[:1], x[:1] + 0.4 * noise[:1]
    with torch.no_grad():
        _, lv = ms(noisy, return_levels=True)
    rms = lambda a, b: (a - b).square().mean().sqrt().item()
    low_err = rms(lv["lows"][2], wavelets.decompose(clean, 2, normalize="average")[0])
    detail_err = [rms(lv["details"][j - 1], wavelets.decompose(clean, j, normalize="average")[1][j - 1])
                  for j in (1, 2)]
    assert low_err > max(detail_err)


# --- chapter 6 ---

CH6 = {"cpu": dict(h0=0.05, n=64, n_in=4, per=8), "gpu": dict(h0=0.01, n=64, n_in=8, per=16)}  # its presets
SIGMA0, BETA = (0.1, 0.1, 1.0), (0.1, 0.1, 0.5)  # chapter 6's per-level settings


@functools.lru_cache(maxsize=None)
def chapter6(preset):
    """Chapter 6's runs with its settings (shipped 32x32 models, per-image seeds)."""
    h0, n = CH6[preset]["h0"], CH6[preset]["n"]
    torch.set_num_threads(1)
    faces = data.synthetic_faces(2048 + n, 32, seed=0)
    reference, training = faces[:2048], faces[2048:]
    held_out = data.synthetic_faces(n, 32, seed=2)
    ms, flat = pretrained.shipped("multiscale_rf5"), pretrained.shipped("flat_rf5")
    seeds = list(range(n))
    runs = {name: sampling.synthesize(ms, n, size=32, h0=h0, generator=seeds, sigma0=s0, beta=b)
            for name, s0, b in (("paper", 1.0, 0.1), ("sigma0", SIGMA0, 0.1), ("chosen", SIGMA0, BETA),
                                ("beta 0.5", SIGMA0, 0.5))}
    with torch.no_grad():
        floor = float(((flat(reference[:64]) - reference[:64]).flatten(1).norm(dim=1) / 32).mean())
    flats = {b: sampling.sample(flat, (n, 1, 32, 32), h0=h0, beta=b, sigma_final=max(0.01, 1.5 * floor),
                                generator=seeds)[0] for b in (0.1, 0.5)}
    rows = {"training": training, "held-out": held_out, "ms": runs["chosen"][0], "flat 0.5": flats[0.5],
            "flat 0.1": flats[0.1]}
    quality = {k: metrics.sample_distance(x, reference) for k, x in rows.items()}
    quality.update({k: metrics.sample_distance(runs[k][0], reference) for k in ("paper", "sigma0", "beta 0.5")})
    return dict(reference=reference, held_out=held_out, ms=ms, runs=runs, rows=rows, quality=quality,
                floor=max(quality["training"]["total"], quality["held-out"]["total"]))


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_chapter6_per_level_settings(preset):
    c = chapter6(preset)
    q, runs, floor = c["quality"], c["runs"], c["floor"]
    calls = {k: [runs[k][1]["levels"][j]["calls"] for j in range(3)] for k in runs}
    saving = 1 - sum(calls["sigma0"][:2]) / sum(calls["paper"][:2])
    assert 0.25 <= saving <= 0.4, calls  # "a quarter to a third of the detail levels' calls"
    assert abs(q["sigma0"]["total"] - q["paper"]["total"]) < floor  # "less than the noise floor"
    for s in ("mean", "contrast"):  # low-pass beta = 0.5: "by more than half"
        assert q["ms"][s] < 0.5 * q["sigma0"][s], s
    assert 0.55 < q["ms"]["total"] / q["sigma0"]["total"] < 0.72  # "the total by about a third"
    assert calls["chosen"][2] < calls["sigma0"][2]  # "with fewer low-pass calls"
    extreme = lambda x: float(((x.mean((1, 2, 3)) > 0.7) | (x.mean((1, 2, 3)) < 0.2)).float().mean())
    assert extreme(runs["sigma0"][0]) > max(0.2, 3 * extreme(c["reference"]))  # beta 0.1: "many ... white or black"
    # "three nets of that depth and width", receptive fields 5 (flat, conditionals) and 13 (low-pass)
    flat, ms = pretrained.shipped("flat_rf5"), c["ms"]
    for net, rf in ((flat, 5), (ms.low, 13), *((cond, 5) for cond in ms.conditionals)):
        assert (len(net.config["kernel_sizes"]), net.config["width"], nets.receptive_field(net)) == (8, 32, rf)
    # exercise 2: beta = 0.5 everywhere, "about half the calls" of the details, distance within the floor
    ratio = sum(calls["beta 0.5"][:2]) / sum(calls["chosen"][:2])
    assert 0.35 < ratio < 0.65 and abs(q["beta 0.5"]["total"] - q["ms"]["total"]) < floor, ratio


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_chapter6_sample_quality(preset):
    c = chapter6(preset)
    q, rows, reference = c["quality"], c["rows"], c["reference"]
    total = {k: v["total"] for k, v in q.items()}
    assert max(total["training"], total["held-out"]) < total["ms"] < min(total["flat 0.5"], total["flat 0.1"])
    for f in ("flat 0.5", "flat 0.1"):
        assert q[f]["layout"] > 1 > 0.5 > q["ms"]["layout"], f  # flat: "a distance above 1 with either beta"
        assert q[f]["kurtosis 0"] > q["ms"]["kurtosis 0"] and q[f]["kurtosis 1"] > q["ms"]["kurtosis 1"], f
    assert rows["flat 0.1"].mean() < reference.mean() - 0.1  # "much darker than faces"
    for s in q["ms"]:  # "closer to the faces than either flat run in every statistic but one, level 1's energy"
        if s != "total":
            assert (q["ms"][s] < min(q["flat 0.5"][s], q["flat 0.1"][s])) == (s != "log energy 1"), s
    assert rows["ms"].mean((1, 2, 3)).std() > reference.mean((1, 2, 3)).std()  # brightness "varies more"
    median = lambda x: metrics.image_statistics(x, reference.mean(0), 3)["log energy 0"].median()
    for k in ("ms", "flat 0.5", "flat 0.1"):  # largest discrepancy: finest energy, "too low"
        assert max(q[k], key=lambda s: -1 if s == "total" else q[k][s]) == "log energy 0", k
        assert median(rows[k]) < median(reference), k


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_chapter6_super_resolution(preset):
    c, s = chapter6(preset), CH6[preset]
    n_in, per = s["n_in"], s["per"]
    x = c["held_out"][:n_in]
    low = wavelets.decompose(x, 2, normalize="average")[0]
    sr, _ = sampling.super_resolve(c["ms"], low.repeat_interleave(per, 0), sigma0=SIGMA0, h0=s["h0"], beta=BETA,
                                   generator=list(range(n_in * per)))
    again = wavelets.decompose(sr, 2, normalize="average")[0]
    assert (again - low.repeat_interleave(per, 0)).abs().max() < 1e-5  # "up to float rounding"
    sr = sr.view(n_in, per, 1, 32, 32)
    p_bicubic = metrics.psnr(torch.nn.functional.interpolate(low, scale_factor=4, mode="bicubic"), x).mean()
    p_sample = metrics.psnr(sr.flatten(0, 1), x.repeat_interleave(per, 0)).mean()
    p_mean = metrics.psnr(sr.mean(1), x).mean()
    assert p_mean > p_sample > p_bicubic  # both beat bicubic
    err_mean = (sr.mean(1) - x).square().mean().sqrt()
    assert sr.std(1).mean() < err_mean / 3  # "several times smaller than the error of their mean"
    gap = 10 * math.log10(2 / (1 + 1 / per))
    assert p_mean - p_sample < gap / 2  # "far smaller" than for exact posterior samples


def test_chapter6_cost_batched_against_one_at_a_time():
    ms = pretrained.shipped("multiscale_rf5")
    kw = dict(size=32, sigma0=SIGMA0, h0=0.05, beta=BETA)
    xb, ib = sampling.synthesize(ms, 8, generator=list(range(8)), **kw)
    single = [sampling.synthesize(ms, 1, generator=[i], **kw) for i in range(8)]
    for j in range(3):  # "the sum of the images' calls, a batch only as many as its slowest image"
        steps = torch.tensor([int(i["levels"][j]["steps"][0]) for _, i in single])
        assert ib["levels"][j]["calls"] == int(steps.max()) + 1
        assert sum(i["levels"][j]["calls"] for _, i in single) == int((steps + 1).sum())
    assert (xb - torch.cat([x for x, _ in single])).abs().max() < 1e-4  # the same images


@pytest.mark.parametrize("h0", [0.05, 0.01])
def test_chapter6_exercise1(h0):
    ms = pretrained.shipped("multiscale_rf5")
    _, i1 = sampling.synthesize(ms, 8, size=32, sigma0=1.0, h0=h0, beta=BETA, generator=list(range(8)))
    for s in i1["levels"][0]["sigma"]:  # "more than half of each run" above 0.1
        assert (s > 0.1).sum() > len(s) / 2


def test_chapter6_exercise3():
    c = chapter6("cpu")  # exercise 3: what the measure sees in degraded held-out faces
    reference, x = c["reference"], c["held_out"]
    dist = lambda y: metrics.sample_distance(y, reference)
    low, details = wavelets.decompose(x, 1)
    blurred = dist(wavelets.reconstruct(low, [torch.zeros_like(details[0])]))
    noisy_x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy, base = dist(noisy_x), dist(x)
    worst = lambda d: max((k for k in d if k != "total"), key=d.get)
    assert worst(blurred) == "log energy 0" and worst(noisy) == "log energy 0"
    kurt = lambda y: metrics.image_statistics(y, reference.mean(0), 3)["kurtosis 0"].median()
    assert abs(kurt(noisy_x) - 3) < abs(kurt(x) - 3)  # "pulls its kurtosis towards 3"
    darker = dist(0.7 * x)
    for k in base:  # a gain: layout and kurtosis exactly as they were; mean, contrast, energies move
        if k.startswith("kurtosis") or k == "layout":
            assert abs(darker[k] - base[k]) < 1e-4, k
        elif k != "total":
            assert darker[k] > base[k] + 0.5, k
    flipped = dist(x.flip(-2))  # upside down: "changes only the layout score"
    assert all(abs(flipped[k] - base[k]) < 1e-4 for k in base if k not in ("layout", "total"))
    assert flipped["layout"] > base["layout"] + 0.3
