"""Orthogonal 2-D wavelet transforms in pure torch (batched, differentiable, any device/dtype).

One level maps x (B,C,H,W) to a low-pass (B,C,H/2,W/2) and details (B,3C,H/2,W/2), where details
channel 3c+k is band k in (cH, cV, cD) of input channel c, exactly as ``pywt.dwt2`` returns them
(cH: high-pass along H, cV: high-pass along W, cD: both). Boundaries are periodic, which equals
pywt mode "periodization"; for Haar (no overlap between blocks) it also equals mode "symmetric".
For a 2x2 Haar block [[a, b], [c, d]]: cA = (a+b+c+d)/2, cH = (a+b-c-d)/2, cV = (a-b+c-d)/2,
cD = (a-b-c+d)/2.

Level indices (one convention for the library, its tests and the book): 0-based. x_0 is the image; one
wavelet step maps x_j to (x_{j+1}, x̄_j), so the details x̄_j (3 bands) have the resolution of x_{j+1}, and
p(x_0) = p(x_J) prod_{j=0}^{J-1} p(x̄_j | x_{j+1}). In code, `decompose(x, J)[1][j]` (`details[j]`) is x̄_j,
`lows[j]` is x_j and `conditionals[j]` models p(x̄_j | x_{j+1}). The paper numbers the same levels from 1.
"""
import pywt
import torch
import torch.nn.functional as F

NORMALIZATIONS = ("orthonormal", "average")


def _filters(wavelet: str, like: torch.Tensor, kind: str) -> torch.Tensor:
    """The four separable 2-D filters (4,1,L,L) in band order (A, H, V, D).

    kind="dec": pywt's analysis filters reversed (conv2d correlates); kind="rec": synthesis filters.
    """
    try:
        w = pywt.Wavelet(wavelet)
    except (ValueError, TypeError) as e:
        raise ValueError(f"unknown wavelet {wavelet!r} (expected a pywt discrete wavelet name "
                         f"such as 'haar', 'db2', 'sym4')") from e
    if not w.orthogonal:
        raise ValueError(f"wavelet {wavelet!r} is not orthogonal; use e.g. 'haar', 'dbN', 'symN', 'coifN'")
    if kind == "dec":
        lo, hi = w.dec_lo[::-1], w.dec_hi[::-1]
    else:
        lo, hi = w.rec_lo, w.rec_hi
    f = torch.tensor([lo, hi], dtype=like.dtype, device=like.device)  # (2, L): rows lo, hi
    # band (fh, fw) in order A=(lo,lo), H=(hi,lo), V=(lo,hi), D=(hi,hi): first filter along H
    pairs = [(0, 0), (1, 0), (0, 1), (1, 1)]
    return torch.stack([torch.outer(f[i], f[j]) for i, j in pairs]).unsqueeze(1)


def _wrap(x: torch.Tensor, p: int) -> torch.Tensor:
    """Periodic padding of p on each side of the last two dims (by gather: wraps any number of times)."""
    H, W = x.shape[-2:]
    ih = torch.arange(-p, H + p, device=x.device) % H
    iw = torch.arange(-p, W + p, device=x.device) % W
    return x[..., ih, :][..., iw]


def _check_image(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name}: expected a 4-D tensor (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def dwt2(x: torch.Tensor, wavelet: str = "haar") -> tuple[torch.Tensor, torch.Tensor]:
    """One analysis level: x (B,C,H,W), H and W even -> (low (B,C,H/2,W/2), details (B,3C,H/2,W/2))."""
    _check_image(x, "dwt2")
    B, C, H, W = x.shape
    if H % 2 or W % 2:
        raise ValueError(f"dwt2: height and width must be even, got {H}x{W}")
    k = _filters(wavelet, x, "dec")
    p = k.shape[-1] // 2 - 1  # periodic padding each side (pywt periodization alignment)
    y = F.conv2d(_wrap(x.reshape(B * C, 1, H, W), p), k, stride=2).reshape(B, C, 4, H // 2, W // 2)
    return y[:, :, 0], y[:, :, 1:].reshape(B, 3 * C, H // 2, W // 2)


def idwt2(low: torch.Tensor, details: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """Inverse of dwt2: low (B,C,h,w), details (B,3C,h,w) -> x (B,C,2h,2w)."""
    _check_image(low, "idwt2 (low)")
    _check_image(details, "idwt2 (details)")
    if low.dtype != details.dtype:
        raise ValueError(f"idwt2: low is {low.dtype} but details are {details.dtype}: convert one to match")
    B, C, h, w = low.shape
    if details.shape != (B, 3 * C, h, w):
        raise ValueError(f"idwt2: details must have shape (B, 3C, h, w) = {(B, 3 * C, h, w)} "
                         f"for low {tuple(low.shape)}, got {tuple(details.shape)}")
    k = _filters(wavelet, low, "rec")
    p = k.shape[-1] // 2 - 1
    y = torch.cat([low.unsqueeze(2), details.reshape(B, C, 3, h, w)], 2).reshape(B * C, 4, h, w)
    # transpose of the analysis: wrap p coefficients each side, upsample-filter, keep the periodic window
    x = F.conv_transpose2d(_wrap(y, p), k, stride=2)[..., 3 * p:3 * p + 2 * h, 3 * p:3 * p + 2 * w]
    return x.reshape(B, C, 2 * h, 2 * w)


def _check_normalize(normalize: str) -> float:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    return 2.0 if normalize == "average" else 1.0


def decompose(x: torch.Tensor, levels: int, wavelet: str = "haar",
              normalize: str = "average") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """J = levels analysis steps: x (B,C,H,W) -> (low (B,C,H/2^J,W/2^J), [details_0, ..., details_{J-1}]).

    details_j (B,3C,H/2^(j+1),W/2^(j+1)), 0 = finest. normalize="average" (the paper's and every model's) divides
    level-j coefficients by 2^(j+1), so (Haar) every low-pass is a block average of x; "orthonormal": pywt's."""
    s = _check_normalize(normalize)
    _check_image(x, "decompose")
    H, W = x.shape[-2:]
    if not isinstance(levels, int) or levels < 0:
        raise ValueError(f"decompose: levels must be a non-negative int, got {levels!r}")
    if H % 2**levels or W % 2**levels:
        raise ValueError(f"decompose: image size {H}x{W} is not divisible by 2**levels = {2**levels} "
                         f"(levels={levels})")
    details = []
    for j in range(levels):
        x, d = dwt2(x, wavelet)
        details.append(d / s ** (j + 1))
    return x / s**levels, details


def reconstruct(low: torch.Tensor, details: list[torch.Tensor], wavelet: str = "haar",
                normalize: str = "average") -> torch.Tensor:
    """Inverse of decompose: low (B,C,h,w), details [finest, ..., coarsest] -> x (B,C,h*2^J,w*2^J)."""
    s = _check_normalize(normalize)
    x = low * s ** len(details)
    for j in reversed(range(len(details))):
        x = idwt2(x, details[j] * s ** (j + 1), wavelet)
    return x


def band_energy(details: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared coefficient of every detail band: [details_j (B,3C,h_j,w_j), j = 0 finest] -> (J, 3), row j =
    (cH, cV, cD) of level j, averaged over images, channels and positions. Detail filters sum to zero, so for images
    this is the band's variance; white noise of std σ gives σ² in every band of the orthonormal transform."""
    for j, d in enumerate(details):
        _check_image(d, f"band_energy (details[{j}])")
        if d.shape[1] % 3:
            raise ValueError(f"band_energy: details[{j}] has {d.shape[1]} channels, expected a multiple of 3")
    return torch.stack([d.unflatten(1, (-1, 3)).square().mean((0, 1, 3, 4)) for d in details])
