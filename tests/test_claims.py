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
