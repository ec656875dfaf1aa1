"""Multi-scale denoiser plumbing and training data, checked against pywt and block averages (not against mslcp)."""
import numpy as np
import pytest
import pywt
import torch
import torch.nn as nn
import torch.nn.functional as F

from mslcp.multiscale import LowpassOnly, MultiScaleDenoiser, lowpass_data, training_data


def pywt_details(x, j):
    """Level-j Haar details of x (N,C,H,W) with the paper's normalization (pywt iterated, / 2^(j+1)), (N,3C,h,w)."""
    a = x.double().numpy()
    for _ in range(j + 1):
        a, (h, v, d) = pywt.dwt2(a, "haar", mode="symmetric", axes=(-2, -1))
    n, c = x.shape[:2]
    return torch.from_numpy(np.stack([h, v, d], 2).reshape(n, 3 * c, *h.shape[-2:]) / 2 ** (j + 1))


def block_average(x, j):
    """The paper's level-j low-pass x_j: averages over 2^j x 2^j blocks."""
    return F.avg_pool2d(x.double(), 2**j)


class OracleLow(nn.Module):
    def __init__(self, clean, J):
        super().__init__()
        self.clean, self.J, self.in_channels = clean, J, clean.shape[1]

    def forward(self, noisy_low):
        assert noisy_low.shape == block_average(self.clean, self.J).shape
        return block_average(self.clean, self.J)


class OracleDetails(nn.Module):
    """Checks what the multi-scale denoiser passes it (denoised low at level j+1, noisy details j), returns the truth."""

    def __init__(self, clean, noisy, j):
        super().__init__()
        self.clean, self.noisy, self.j = clean, noisy, j

    def forward(self, low, noisy_details):
        torch.testing.assert_close(low, block_average(self.clean, self.j + 1))
        torch.testing.assert_close(noisy_details, pywt_details(self.noisy, self.j))
        return pywt_details(self.clean, self.j)


@pytest.mark.parametrize("J", [1, 2, 3])
def test_oracle_denoisers_reconstruct_the_clean_image(J):
    g = torch.Generator().manual_seed(J)
    clean = torch.rand(2, 3, 16, 24, generator=g, dtype=torch.float64)
    noisy = clean + 0.3 * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    ms = MultiScaleDenoiser(OracleLow(clean, J), [OracleDetails(clean, noisy, j) for j in range(J)])
    out, levels = ms(noisy, return_levels=True)
    torch.testing.assert_close(out, clean)
    assert len(levels["lows"]) == J + 1 and len(levels["details"]) == J == ms.levels
    for j in range(J + 1):
        torch.testing.assert_close(levels["lows"][j], block_average(clean, j))
    for j in range(J):
        torch.testing.assert_close(levels["noisy_details"][j], pywt_details(noisy, j))
    torch.testing.assert_close(levels["noisy_low"], block_average(noisy, J))


def test_identity_denoisers_return_the_noisy_image():
    class Keep(nn.Module):
        def forward(self, low, details):
            return details

    y = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    ms = MultiScaleDenoiser(nn.Identity(), [Keep(), Keep(), Keep()], normalize="orthonormal")
    torch.testing.assert_close(ms(y), y)


def test_errors():
    class Low(nn.Identity):
        in_channels = 1

    ms = MultiScaleDenoiser(Low(), [nn.Identity(), nn.Identity()])
    with pytest.raises(ValueError, match="divisible"):
        ms(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        ms(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        ms(torch.full((1, 1, 32, 32), float("nan")))


def test_training_data_matches_pywt():
    x = torch.randint(0, 256, (3, 2, 16, 16), dtype=torch.uint8)
    xf = x.double() / 255
    for level in (0, 1):
        d = training_data(x, level)
        assert d.shape == (3, 8, 16 // 2 ** (level + 1), 16 // 2 ** (level + 1)) and d.dtype == torch.float32
        torch.testing.assert_close(d[:, :2].double(), block_average(xf, level + 1), atol=1e-6, rtol=0)
        torch.testing.assert_close(d[:, 2:].double(), pywt_details(xf, level), atol=1e-6, rtol=0)
    torch.testing.assert_close(lowpass_data(xf, 2), block_average(xf, 2))
    torch.testing.assert_close(training_data(xf, 1), training_data(x, 1).double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("J", [1, 2])
def test_lowpass_only_is_the_denoised_block_average_upsampled(J):
    # independent of mslcp.wavelets: the block average (avg_pool), a known "denoiser" of it, and nearest upsampling
    g = torch.Generator().manual_seed(J)
    noisy = torch.rand(2, 1, 16, 24, generator=g, dtype=torch.float64)

    class Square(nn.Module):  # a stand-in low-pass net: any function of x_J
        in_channels = 1

        def forward(self, low):
            assert low.shape == (2, 1, 16 // 2**J, 24 // 2**J)
            return low ** 2

    out = LowpassOnly(MultiScaleDenoiser(Square(), [nn.Identity() for _ in range(J)]))(noisy)
    want = F.interpolate(block_average(noisy, J) ** 2, scale_factor=2**J, mode="nearest")
    torch.testing.assert_close(out, want)
    # pywt: the same as reconstructing with zero details (waverec2 of the orthonormal low-pass, x 2^J)
    a = pywt.wavedec2(noisy.numpy(), "haar", mode="symmetric", level=J, axes=(-2, -1))
    low = (a[0] / 2**J) ** 2 * 2**J
    rec = pywt.waverec2([low] + [tuple(np.zeros_like(b) for b in d) for d in a[1:]], "haar", axes=(-2, -1))
    torch.testing.assert_close(out, torch.from_numpy(rec))
