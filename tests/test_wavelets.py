"""mslcp.wavelets against pywt (independent reference) and the closed forms of the Haar transform."""
import warnings

import numpy as np
import pytest
import pywt
import torch

from mslcp.wavelets import decompose, dwt2, idwt2, reconstruct

# (name, the pywt mode our periodic transform must equal)
WAVELETS = [("haar", "symmetric"), ("db2", "periodization"), ("db4", "periodization"),
            ("sym4", "periodization")]
SIZES = [(2, 3, 8, 8), (3, 2, 12, 20), (1, 1, 16, 6), (2, 1, 4, 2)]  # last: filters wrap >1 period


def _rand(shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _pywt_details(bands):
    """pywt (cH, cV, cD), each (B,C,h,w) -> (B,3C,h,w) with channel 3c+k = band k of channel c."""
    B, C, h, w = bands[0].shape
    out = np.empty((B, 3 * C, h, w))
    for c in range(C):
        for k in range(3):
            out[:, 3 * c + k] = bands[k][:, c]
    return out


def _wavedec2(x, name, mode, level):
    with warnings.catch_warnings():  # pywt warns that small images feel the boundary: fine here
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedec2(x, name, mode=mode, level=level, axes=(-2, -1))


@pytest.mark.parametrize("name,mode", WAVELETS)
@pytest.mark.parametrize("shape", SIZES)
def test_dwt2_matches_pywt(name, mode, shape):
    x = _rand(shape, seed=sum(shape))
    low, details = dwt2(x, name)
    cA, bands = pywt.dwt2(x.numpy(), name, mode=mode, axes=(-2, -1))
    B, C, H, W = shape
    assert low.shape == (B, C, H // 2, W // 2) and details.shape == (B, 3 * C, H // 2, W // 2)
    np.testing.assert_allclose(low.numpy(), cA, atol=1e-12)
    np.testing.assert_allclose(details.numpy(), _pywt_details(bands), atol=1e-12)
    # and the inverse against pywt.idwt2 on perturbed coefficients (not only our own output)
    cA2, bands2 = cA + 0.1, tuple(b * 1.5 for b in bands)
    ref = pywt.idwt2((cA2, bands2), name, mode=mode, axes=(-2, -1))
    out = idwt2(torch.from_numpy(cA2), torch.from_numpy(_pywt_details(bands2)), name)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


def test_haar_closed_form_signs_and_float32():
    # one 2x2 block [[a, b], [c, d]] = [[1, 2], [3, 5]]: the Haar closed forms, in float32
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    low, details = dwt2(x)
    assert low.dtype == details.dtype == torch.float32
    a, b, c, d = 1, 2, 3, 5
    assert low.item() == pytest.approx((a + b + c + d) / 2)
    expected = [(a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2]  # cH, cV, cD
    np.testing.assert_allclose(details.flatten().numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name,mode", WAVELETS)
def test_decompose_matches_wavedec2(name, mode):
    x = _rand((2, 2, 16, 24), seed=3)
    low, details = decompose(x, 3, name, normalize="orthonormal")
    ref = _wavedec2(x.numpy(), name, mode, 3)  # [cA3, (level 3 bands), ..., (level 1 bands)]
    np.testing.assert_allclose(low.numpy(), ref[0], atol=1e-12)
    assert len(details) == 3
    for j in range(3):  # details[0] is the finest = last entry of wavedec2
        np.testing.assert_allclose(details[j].numpy(), _pywt_details(ref[3 - j]), atol=1e-12)


def _block_mean(x, s):
    """Numpy s x s block averages of (B,C,H,W)."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H // s, s, W // s, s).mean((3, 5))


def test_average_normalization_closed_form():
    x = _rand((2, 3, 16, 8), seed=5)
    low, details = decompose(x, 3)  # the default normalization
    xn = x.numpy()
    np.testing.assert_allclose(low.numpy(), _block_mean(xn, 8), atol=1e-12)
    assert 0 <= low.min() and low.max() <= 1
    for j in range(3):
        m = _block_mean(xn, 2**j)  # input of level j, as block averages
        a, b, c, d = m[..., 0::2, 0::2], m[..., 0::2, 1::2], m[..., 1::2, 0::2], m[..., 1::2, 1::2]
        bands = ((a + b - c - d) / 4, (a - b + c - d) / 4, (a - b - c + d) / 4)
        np.testing.assert_allclose(details[j].numpy(), _pywt_details(bands), atol=1e-12)


@pytest.mark.parametrize("name", ["haar", "db2", "sym4"])
@pytest.mark.parametrize("normalize", ["orthonormal", "average"])
def test_perfect_reconstruction(name, normalize):
    x = _rand((2, 3, 16, 32), seed=7, dtype=torch.float32)
    low, details = decompose(x, 2, name, normalize)
    out = reconstruct(low, details, name, normalize)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["haar", "db4"])
def test_energy_preserved_orthonormal(name):
    x = torch.randn(3, 2, 32, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    low, details = decompose(x, 3, name, normalize="orthonormal")
    energy = low.square().sum() + sum(d.square().sum() for d in details)
    assert energy.item() == pytest.approx(x.square().sum().item(), rel=1e-12)


@pytest.mark.parametrize("name", ["haar", "db2"])
def test_gradcheck(name):
    x = _rand((1, 2, 4, 4), seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: dwt2(t, name), (x,))
    low, details = (t.detach().requires_grad_() for t in dwt2(x.detach(), name))
    assert torch.autograd.gradcheck(lambda lo, d: idwt2(lo, d, name), (low, details))

    def roundtrip(t):
        lo, ds = decompose(t, 2, name)
        return lo.sum() + sum((k + 1) * d.square().sum() for k, d in enumerate(ds))
    assert torch.autograd.gradcheck(roundtrip, (x,))


def test_errors():
    x = torch.rand(1, 1, 12, 12)
    with pytest.raises(ValueError, match=r"12x12.*2\*\*levels = 8.*levels=3"):
        decompose(x, 3)
    with pytest.raises(ValueError, match="4-D"):
        dwt2(torch.rand(12, 12))
    with pytest.raises(ValueError, match="even.*7x8"):
        dwt2(torch.rand(1, 1, 7, 8))
    with pytest.raises(ValueError, match="unknown wavelet 'nope'"):
        dwt2(x, "nope")
    with pytest.raises(ValueError, match="not orthogonal"):
        dwt2(x, "bior2.2")
    with pytest.raises(ValueError, match="normalize"):
        decompose(x, 1, normalize="mean")
    with pytest.raises(ValueError, match="normalize"):
        reconstruct(x, [], normalize="Average")
    low, details = dwt2(x)
    with pytest.raises(ValueError, match="details must have shape"):
        idwt2(low, details[:, :2])


@pytest.mark.parametrize("name,mode", [("haar", "symmetric"), ("db4", "periodization")])
def test_band_energy_matches_pywt_and_parseval(name, mode):
    from mslcp.wavelets import band_energy

    x = _rand((3, 2, 32, 16), seed=11)
    low, details = decompose(x, 3, name, normalize="orthonormal")
    e = band_energy(details)
    ref = _wavedec2(x.numpy(), name, mode, 3)  # coarsest first
    assert e.shape == (3, 3)
    for j in range(3):
        for k in range(3):  # numpy mean of squares of pywt's band k at level j
            assert e[j, k].item() == pytest.approx(np.mean(ref[3 - j][k] ** 2), rel=1e-12)
    # Parseval: each level's coefficient count (d.numel(), 3 equal bands) times its mean energy, summed, adds up to the energy of x
    total = low.square().sum() + sum(d.numel() * e[j].mean() for j, d in enumerate(details))
    assert total.item() == pytest.approx(float(np.sum(x.numpy() ** 2)), rel=1e-12)
    with pytest.raises(ValueError, match="multiple of 3"):
        band_energy([details[0][:, :2]])
