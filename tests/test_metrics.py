import math

import numpy as np
import pytest
import torch

from mslcp.metrics import psnr


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
    from mslcp.metrics import denoising_psnr
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
