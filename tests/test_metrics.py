import math

import numpy as np
import pytest
import torch

from mslcp import synthetic, wavelets
from mslcp.metrics import denoising_psnr, layout_score, psnr, sample_distance, wasserstein1d


def test_psnr_matches_numpy():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(5, 2, 7, 9, generator=g)
    x = (ref + 0.1 * torch.randn(5, 2, 7, 9, generator=g)).clamp(0, 1)
    a, b = x.double().numpy(), ref.double().numpy()
    expected = [10 * np.log10(1.0 / np.mean((a[i] - b[i]) ** 2)) for i in range(5)]
    out = psnr(x, ref)
    assert out.shape == (5,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)


def test_psnr_constant_offset_closed_form():
    ref = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    deltas = torch.tensor([0.1, 0.01, 0.5], dtype=torch.float64)
    out = psnr(ref + deltas.view(-1, 1, 1, 1), ref)
    expected = [10 * math.log10(1 / d**2) for d in deltas.tolist()]  # 20, 40, 6.02 dB
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)
    # data_range scales it: uint8 images with an offset of 5 grey levels
    u = torch.full((2, 1, 4, 4), 100, dtype=torch.uint8)
    np.testing.assert_allclose(psnr(u + 5, u, data_range=255).numpy(), 20 * math.log10(255 / 5), rtol=1e-6)


def test_psnr_identical_is_inf_and_shapes_checked():
    x = torch.rand(2, 1, 4, 4)
    assert torch.isinf(psnr(x, x.clone())).all()
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, x[:, :, :3])


def test_denoising_psnr_one_noise_draw_for_every_model_and_sigma():
    x = torch.rand(3, 1, 6, 5, dtype=torch.float64)
    sigmas = [0.05, 0.1, 0.2]
    table = denoising_psnr({"identity": lambda y: y, "shrink": lambda y: 0.9 * y + 0.05}, x, sigmas, seed=3)
    assert list(table) == ["noisy", "identity", "shrink"] and all(len(v) == 3 for v in table.values())
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).double()  # drawn in float32
    for k, s in enumerate(sigmas):  # closed form of the input PSNR with that draw: 10 log10(1 / (σ² mean z²))
        expected = np.mean([10 * np.log10(1 / (s**2 * z[i].square().mean().item())) for i in range(3)])
        assert table["noisy"][k] == pytest.approx(expected, rel=1e-9)
        assert table["identity"][k] == table["noisy"][k]
        mse = (0.9 * (x + s * z) + 0.05 - x).square().flatten(1).mean(1)
        assert table["shrink"][k] == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-9)
    # the same z at every σ: doubling σ costs exactly 20 log10 2 dB of input PSNR
    assert table["noisy"][1] - table["noisy"][2] == pytest.approx(20 * math.log10(2), rel=1e-9)
    with pytest.raises(ValueError, match="noisy"):
        denoising_psnr({"noisy": lambda y: y}, x, sigmas)


def test_wasserstein1d_closed_forms():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, generator=g, dtype=torch.float64)
    assert wasserstein1d(a, a[torch.randperm(500, generator=g)]) == 0  # the same set, any order
    # a shift by c moves every quantile by c, with equal or unequal sizes
    assert abs(float(wasserstein1d(a, a + 0.3)) - 0.3) < 1e-12
    assert abs(float(wasserstein1d(a[:250], a[:250].repeat(3) - 0.7)) - 0.7) < 1e-12
    # two Gaussians: sqrt((m1 - m2)^2 + (s1 - s2)^2), here from exact quantiles of N(0, 1)
    q = math.sqrt(2) * torch.erfinv(2 * (torch.arange(20000, dtype=torch.float64) + 0.5) / 20000 - 1)
    assert abs(float(wasserstein1d(1 + 2 * q, -1 + 0.5 * q)) - math.hypot(2, 1.5)) < 5e-3
    # unequal sizes, exactly: {0, 1} against {0, 0, 1} differ on a third of the quantiles, by 1
    assert abs(float(wasserstein1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])))
               - math.sqrt(1 / 6)) < 1e-12
    # and from random draws of unequal sizes, within sampling error
    x, y = 1 + 2 * torch.randn(40000, generator=g), -1 + 0.5 * torch.randn(30000, generator=g)
    assert abs(float(wasserstein1d(x, y)) - math.hypot(2, 1.5)) < 0.05
    with pytest.raises(ValueError, match="1-D"):
        wasserstein1d(a.view(-1, 2), a)


def test_layout_score_is_a_correlation():
    g = torch.Generator().manual_seed(1)
    mean_image = torch.rand(1, 8, 8, generator=g)
    x = torch.stack([mean_image, 3 * mean_image + 0.2, 1 - mean_image, torch.rand(1, 8, 8, generator=g)])
    s = layout_score(x, mean_image)
    ref = [np.corrcoef(im.flatten().numpy(), mean_image.flatten().numpy())[0, 1] for im in x]
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-5)
    np.testing.assert_allclose(s[:3].numpy(), [1, 1, -1], atol=1e-6)  # invariant to gain and offset
    with pytest.raises(ValueError, match="do not match"):
        layout_score(x, mean_image[:, :4])


def test_sample_distance_zero_floor_and_ranking():
    faces = synthetic.faces(512, 32, seed=0)
    same = sample_distance(faces, faces)
    assert all(v == 0 for v in same.values()) and set(same) >= {"mean", "layout", "kurtosis 0", "total"}
    floor = sample_distance(synthetic.faces(128, 32, seed=1), faces)["total"]  # independent draws
    assert 0 < floor < 0.5
    g = torch.Generator().manual_seed(0)
    low, details = wavelets.decompose(faces[:128], 2)
    blurred = wavelets.reconstruct(low, [torch.zeros_like(d) for d in details])  # details removed
    noisy = faces[:128] + 0.05 * torch.randn(faces[:128].shape, generator=g)
    for degraded in (blurred, noisy, faces[:128] * 0.7):
        assert sample_distance(degraded, faces)["total"] > 2 * floor
    # a known shift: brighter by c moves every image's mean by c and changes no other statistic
    c = 0.05
    d = sample_distance(faces + c, faces)
    expected = c / float(faces.double().mean((1, 2, 3)).std())
    assert abs(d["mean"] - expected) < 1e-5 * expected
    assert max(v for k, v in d.items() if k not in ("mean", "total")) < 1e-4
    assert abs(d["total"] - d["mean"] / (len(d) - 1)) < 1e-4
    with pytest.raises(ValueError, match="one size"):
        sample_distance(faces[:4, :, :16], faces)
