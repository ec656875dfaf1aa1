"""What the chapters say about the shipped checkpoints (data/checkpoints), checked with the chapters' own settings.

The book's text describes these small nets in words ("within about a decibel", "at least twice"). nbval only runs
the chapters; these tests fail when a retrained checkpoint no longer matches the words, so that the text is
revised with it.
"""
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
    template = (faces.mean(0) - faces.mean()).flatten()

    def layout(x):  # chapter 3's layout score: correlation with the mean face, means removed
        a = x.flatten(1) - x.flatten(1).mean(1, keepdim=True)
        return a @ template / (a.norm(dim=1) * template.norm())

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


# --- chapter 5 ---
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from mslcp import analysis  # noqa: E402

SIGMAS5 = (0.05, 0.1, 0.2, 0.4, 0.8)  # chapter 5's noise levels
FLAT_RF5, MS_RF5, SMALL_RF5 = (5,), (5,), 5  # chapter 5's small nets; the RF of its small-net locality figure
_WEIGHTS = Path(os.environ.get("MSLCP_WEIGHTS") or Path(__file__).parents[1] / ".." / "shared" / "reference-weights")
needs_weights = pytest.mark.skipif(not (_WEIGHTS / pretrained.relpath(160, 43, None)).exists(),
                                   reason=f"the authors' weights are not in {_WEIGHTS.resolve()} (MSLCP_WEIGHTS)")


@pytest.fixture
def authors(monkeypatch):
    monkeypatch.setenv("MSLCP_WEIGHTS", str(_WEIGHTS))
    monkeypatch.setattr(pretrained, "URL", "file:///nonexistent/")  # never download in tests


def _cond_locality(cond, x, y, j, pixels, radii):
    """Chapter 5's locality of conditional net `cond` of level j: rows of the three output bands w.r.t. the noisy
    details, clean x_{j+1} held fixed, at image pixels // 2^(j+1)."""
    low = wavelets.decompose(x, j + 1, normalize="average")[0]
    noisy = wavelets.decompose(y, j + 1, normalize="average")[1][j]
    p = [(i // 2 ** (j + 1), k // 2 ** (j + 1)) for i, k in pixels]
    rows = torch.cat([analysis.jacobian_rows(lambda d: cond(low, d), noisy, p, channel=c) for c in range(3)], 1)
    return analysis.energy_within(rows, p * 3, radii)


def _r95(curve):
    return next(r for r, e in enumerate(curve.tolist()) if e >= 0.95)


def test_chapter5_receptive_fields_of_the_small_nets():
    x = data.synthetic_faces(1, 32, seed=2)
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


@needs_weights
def test_chapter5_paper_fig3_on_the_astronaut(authors):
    x = data.astronaut()
    models = {f"flat {rf}": pretrained.paper_flat(rf) for rf in (5, 9, 13, 23, 43)}
    models |= {f"ms {rf}": pretrained.paper_multiscale(rf) for rf in (5, 9, 13, 23, 43)}
    t = {k: torch.tensor(v) for k, v in metrics.denoising_psnr(models, x, SIGMAS5).items()}
    ms = torch.stack([t[f"ms {rf}"] for rf in (9, 13, 23, 43)])
    assert (ms.max(0).values - ms.min(0).values).max() < 0.2  # RF 9..43 "stay within 0.15 dB" (computed text)
    assert (t["ms 43"] - t["ms 5"]).max() < 1  # "RF 5 is at most 0.64 dB below RF 43"
    # intro: a conditional net seeing 9x9 does "about as well" as 43x43, a flat one with RF 9 "loses much more"
    assert ((t["ms 9"] - t["ms 43"]).abs() < 0.1).all() and (t["flat 43"] - t["flat 9"] > 1).all()
    flat = torch.stack([t[f"flat {rf}"] for rf in (5, 9, 13, 23, 43)])
    assert (flat[1:] > flat[:-1]).all()  # "lose PSNR at every step down in receptive field, at every σ"
    loss = t["flat 43"] - t["flat 5"]  # "most of all at high noise"
    assert loss[-1] > loss[-2] > loss[:3].max()
    diff = t["ms 9"] - t["flat 43"]  # "ahead for σ ≥ 0.4 and behind below"
    assert (diff[3:] > 0).all() and (diff[:3] < 0).all()


@needs_weights
def test_chapter5_locality_of_the_authors_nets(authors):
    x = data.astronaut()
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    pixels, radii = [(64, 64), (64, 96), (96, 64), (96, 96)], range(22)
    flat, ms = pretrained.paper_flat(43), pretrained.paper_multiscale(43)
    for s in (0.1, 0.4):
        y = x + s * z
        e_flat = analysis.energy_within(analysis.jacobian_rows(flat, y, pixels), pixels, radii)
        e_cond = [_cond_locality(ms.conditionals[j], x, y, j, pixels, radii) for j in (0, 1)]
        # key points: the conditional nets' weights concentrate near their pixel (in their own grid), RF 43
        assert max(_r95(e) for e in e_cond) <= 4 < _r95(e_flat), s
        assert all(1 - e[4] < 0.5 * (1 - e_flat[4]) for e in e_cond), s  # less energy outside the 9x9 window


def test_chapter5_locality_of_the_small_nets():
    x = data.synthetic_faces(1, 32, seed=2)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    pixels, radii = [(12, 12), (12, 20), (20, 12), (20, 20)], range(8)
    flat, ms = pretrained.shipped(f"flat_rf{SMALL_RF5}"), pretrained.shipped(f"multiscale_rf{SMALL_RF5}")
    for s in (0.1, 0.4):
        y = x + s * z
        e_flat = analysis.energy_within(analysis.jacobian_rows(flat, y, pixels), pixels, radii)
        e_cond = [_cond_locality(ms.conditionals[j], x, y, j, pixels, radii) for j in (0, 1)]
        # "the three small nets need their whole window (radius 2) for 95% of the energy at both noise levels;
        # within radius 1, the conditional nets hold 90-95% of it and the flat net 69-71%"
        assert [_r95(e) for e in (e_flat, *e_cond)] == [2, 2, 2], s
        assert all(90 <= round(100 * float(e[1])) <= 95 for e in e_cond) and 69 <= round(100 * float(e_flat[1])) <= 71


def test_chapter5_exercises():
    n, a = 64, 0.9  # exercise 1: the Gaussian chain is Markov, the Wiener filter's 95% radius grows with sigma
    k = torch.arange(n)
    C = a ** (k[:, None] - k).abs().double()
    assert torch.linalg.inv(C)[(k[:, None] - k).abs() > 1].abs().max() < 1e-12
    for sigma, r95 in ((0.1, 0), (0.3, 1), (1.0, 3)):
        W = C @ torch.linalg.inv(C + sigma**2 * torch.eye(n, dtype=torch.float64))
        assert _r95(analysis.energy_within(W[32].view(1, 1, 1, 1, n), [(0, 32)], range(20))) == r95
        assert (W[32] != 0).all()
    model = pretrained.shipped("multiscale_rf5")  # exercise 3: the centre output depends on every pixel
    x = data.synthetic_faces(1, 32, seed=2)
    y = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert (analysis.jacobian_rows(model, y, [(16, 16)])[0, 0, 0] != 0).all()


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
