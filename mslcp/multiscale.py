"""Multi-scale denoising with one low-pass denoiser and one conditional denoiser per wavelet level.

Level j = 0 is the finest. With J levels, x_0 = image, (x_{j+1}, details_j) = one wavelet step of x_j, and
p(x_0) = p(x_J) prod_j p(details_j | x_{j+1}). Coefficients follow `wavelets.decompose` ("average": each low-pass is
a block average, the paper's convention; one wavelet step relates consecutive levels in the same way at every j).
"""
import torch
import torch.nn as nn

from .data import check_images
from .nets import BFCNN, ConditionalBFCNN
from .wavelets import decompose, reconstruct


class MultiScaleDenoiser(nn.Module):
    """low: denoiser of x_J (B,C,H/2^J,W/2^J); conditionals[j]: call(low_{j+1}, noisy details_j) -> denoised details_j.

    call(noisy (B,C,H,W)) -> denoised (B,C,H,W): decompose the noisy image in J = len(conditionals) levels, denoise
    x_J with .low, then for j = J-1 ... 0 denoise details_j conditioned on the already denoised x_{j+1} and
    reconstruct x_j. return_levels=True also returns a dict of intermediates (lists indexed by level j):
    "noisy_low" (noisy x_J), "noisy_details", "details" (denoised), "lows" (denoised x_j, j = 0..J; lows[0] = output).
    """

    def __init__(self, low, conditionals, wavelet="haar", normalize="average"):
        super().__init__()
        _check_nets(low, conditionals)
        self.low, self.conditionals = low, nn.ModuleList(conditionals)
        self.levels, self.wavelet, self.normalize = len(self.conditionals), wavelet, normalize

    def forward(self, noisy, return_levels=False):
        c = getattr(self.low, "in_channels", None)
        if noisy.ndim != 4 or (c is not None and noisy.shape[1] != c):
            raise ValueError(f"expected a noisy image (B,{c if c is not None else 'C'},H,W), got {tuple(noisy.shape)}")
        if not torch.isfinite(noisy).all():
            raise ValueError("the noisy image contains NaN or inf values")
        noisy_low, noisy_details = decompose(noisy, self.levels, self.wavelet, self.normalize)
        lows, details = [self.low(noisy_low)], []
        for j in reversed(range(self.levels)):
            details.insert(0, self.conditionals[j](lows[0], noisy_details[j]))
            lows.insert(0, reconstruct(lows[0], details[:1], self.wavelet, self.normalize))
        if not return_levels:
            return lows[0]
        return lows[0], dict(noisy_low=noisy_low, noisy_details=noisy_details, details=details, lows=lows)


def _check_nets(low, conditionals):
    """ValueError/TypeError naming the argument unless low is a flat denoiser and conditionals a list of conditional
    ones (a net of mslcp.nets, or any nn.Module whose channels, if it says them, are 4C -> 3C)."""
    if not isinstance(conditionals, (list, tuple, nn.ModuleList)):
        raise TypeError(f"conditionals must be a list of conditional nets (one per level, finest first), got "
                        f"{type(conditionals).__name__}: wrap a single net in a list")
    if isinstance(low, ConditionalBFCNN):
        raise ValueError("low must be a flat denoiser of the low-pass image (nets.BFCNN), got a ConditionalBFCNN")
    for j, c in enumerate(conditionals):
        if not isinstance(c, nn.Module):
            raise TypeError(f"conditionals[{j}] must be an nn.Module (nets.ConditionalBFCNN), got {type(c).__name__}")
        cin, cout = getattr(c, "in_channels", None), getattr(c, "out_channels", None)
        flat = isinstance(c, BFCNN) and not isinstance(c, ConditionalBFCNN)
        if flat or (cin is not None and cout is not None and (cout % 3 or cin != cout // 3 * 4)):
            raise ValueError(f"conditionals[{j}] is a flat net ({cin} -> {cout} channels): a conditional net takes "
                             "(low, noisy_details), 4C -> 3C channels (nets.ConditionalBFCNN)")


def _coefficients(images, levels, wavelet, normalize, chunk=1024):
    """images (N,C,H,W) float in [0,1] or uint8 -> decompose() of each chunk, concatenated: (low, [details_j])."""
    check_images(images, "images", kind="any", uint8=True)
    if images.ndim != 4:
        raise ValueError(f"expected images (N,C,H,W), got shape {tuple(images.shape)}")
    parts = [decompose(x.float() / 255 if x.dtype == torch.uint8 else x, levels, wavelet, normalize)
             for x in images.split(chunk)]
    return torch.cat([p[0] for p in parts]), [torch.cat([p[1][j] for p in parts]) for j in range(levels)]


def training_data(images, level, wavelet="haar", normalize="average"):
    """Training examples for the conditional denoiser of `level`: images (N,C,H,W) -> (N,4C,H/2^(level+1),...) =
    [clean low_{level+1}, clean details_level]; train() adds noise to the last 3C channels only."""
    low, details = _coefficients(images, level + 1, wavelet, normalize)
    return torch.cat([low, details[level]], 1)


def lowpass_data(images, levels, wavelet="haar", normalize="average"):
    """Training examples for the low-pass denoiser: images (N,C,H,W) -> clean x_J (N,C,H/2^J,W/2^J), J = levels."""
    return _coefficients(images, levels, wavelet, normalize)[0]


class LowpassOnly(nn.Module):
    """The authors' "low-pass only" baseline of a multi-scale denoiser (their `multi_scale_identity_denoising`):
    call(noisy (B,C,H,W)) -> (B,C,H,W): x_J of the noisy image denoised by `model.low`, every detail set to zero,
    reconstructed (with Haar and "average" normalization: each 2^J x 2^J block takes its denoised average)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, noisy):
        m = self.model
        noisy_low, noisy_details = decompose(noisy, m.levels, m.wavelet, m.normalize)
        return reconstruct(m.low(noisy_low), [torch.zeros_like(d) for d in noisy_details], m.wavelet, m.normalize)
