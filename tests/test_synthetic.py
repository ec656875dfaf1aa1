"""Procedural synthetic faces (mslcp.synthetic): shape, range, determinism, and the structure they are made for."""
import numpy as np
import pytest
import pywt
import torch

from mslcp import synthetic


def test_synthetic_shape_range_determinism():
    x = synthetic.faces(6, 32, seed=0)
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.1
    assert torch.equal(x, synthetic.faces(6, 32, seed=0))
    assert torch.equal(x[:3], synthetic.faces(3, 32, seed=0))      # first images do not depend on n
    assert (x - synthetic.faces(6, 32, seed=1)).abs().mean() > 0.05
    assert synthetic.faces(0, 16).shape == (0, 1, 16, 16)
    assert synthetic.faces(2, 160).shape == (2, 1, 160, 160)


@pytest.mark.parametrize("size", [0, 4, 12, 60])
def test_synthetic_size_errors(size):
    with pytest.raises(ValueError, match="multiple of 8"):
        synthetic.faces(2, size)


def test_synthetic_long_range_and_nonstationary():
    x = synthetic.faces(512, 64, seed=3)[:, 0]
    texture = synthetic._field(torch.Generator().manual_seed(0), 512, 16, 64)[:, 0]   # stationary control

    def eye_corr(imgs):  # per-pixel correlation across images of the two eye regions (same offsets)
        L, R = imgs[:, 22:34, 20:30], imgs[:, 22:34, 34:44]
        L, R = (z.flatten(1) - z.flatten(1).mean((1,), keepdim=True) for z in (L, R))   # drop patch means
        L, R = L - L.mean(0), R - R.mean(0)
        return ((L * R).sum(0) / (L.norm(dim=0) * R.norm(dim=0))).mean().item()
    assert eye_corr(x) > 0.5                       # eyes share size, gaze, position
    assert abs(eye_corr(texture)) < 0.1            # 14 px apart: independent in a stationary texture
    m = x.mean(0)
    assert m.std() > 0.2 * x.std() and texture.mean(0).std() < 0.1 * texture.std()   # non-stationary mean
    assert (m - m.flip(-1)).abs().mean() < 0.2 * (m - m.mean()).abs().mean()   # symmetric layout
    details = pywt.wavedec2(x.numpy(), "haar", level=3, axes=(-2, -1))[1:]
    assert all(np.std(b) > 0.01 for level in details for b in level)    # every scale carries signal
