"""Image quality metrics."""
import math
import numbers
import warnings

import torch

from .data import check_images


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB: x, ref (B, ...) -> (B,).

    10 log10(data_range² / mean squared error over all but the first dimension); identical
    images give inf. Computed in at least float32. Images follow data.check_images: floats on the [0, 1] scale;
    integer images are refused with the fix (a uint8 image against a float one gave -43 dB), except two uint8
    images compared with data_range=255.
    """
    both8 = torch.is_tensor(x) and torch.is_tensor(ref) and x.dtype == ref.dtype == torch.uint8
    if both8 and data_range != 255:
        raise ValueError(f"psnr: x and ref are uint8 (0..255) but data_range={data_range}: pass data_range=255, or "
                         "convert both with x.float() / 255")
    if not both8:
        check_images(x, "psnr: x", kind="any")
        check_images(ref, "psnr: ref", kind="any")
    if x.shape != ref.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.dim() < 2:
        raise ValueError(f"psnr: expected a batch (B, ...) of images, got shape {tuple(x.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, ref.dtype), torch.float32)
    mse = (x.to(dtype) - ref.to(dtype)).square().flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def denoising_psnr(models, x, sigmas, seed=0, cond=None, batch_size=None):
    """Denoising PSNR (dB) against the noise level: models {name: callable (B,C,H,W) -> (B,C,H,W)}, clean images
    x (B,C,H,W), noise levels sigmas -> {"noisy": input PSNR, name: output PSNR, ...}, each a list with one value
    per σ, the mean over the images. One noise draw z ~ N(0, I) (CPU generator `seed`) serves every model and
    σ, y = x + σ z, so the curves differ only through the models. cond: the clean conditions of conditional models,
    called model(cond, y) (`train.evaluate`); batch_size: images per call (None: all). Also the command line's."""
    if not isinstance(models, dict) or not all(callable(m) for m in models.values()):
        raise TypeError(f"denoising_psnr: models must be a dict {{name: denoiser}}, got {type(models).__name__}")
    if "noisy" in models:
        raise ValueError('denoising_psnr: "noisy" names the input PSNR; give the model another name')
    check_images(x, "denoising_psnr: x", kind="any")
    if isinstance(sigmas, (numbers.Number, torch.Tensor)) and not getattr(sigmas, "ndim", 0):
        raise ValueError(f"denoising_psnr: sigmas must be a list of noise levels, got the number {sigmas!r}: "
                         "write [sigma]")
    sigmas = list(sigmas)
    if not sigmas or not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and 0 <= s < math.inf
                             for s in map(lambda v: v.item() if torch.is_tensor(v) else v, sigmas)):
        raise ValueError(f"denoising_psnr: sigmas must be a non-empty list of finite numbers >= 0, got {sigmas!r:.80}")
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)
    b = batch_size or max(len(x), 1)
    table = {"noisy": [], **{name: [] for name in models}}
    with torch.no_grad():
        for s in sigmas:
            y = x + float(s) * z
            table["noisy"].append(psnr(y, x).mean().item())
            for name, model in models.items():
                p = [psnr(model(y[i:i + b]) if cond is None else model(cond[i:i + b], y[i:i + b]), x[i:i + b])
                     for i in range(0, len(x), b)]
                table[name].append(torch.cat(p).mean().item())
    return table


# --- sample quality: distances between distributions of image statistics (no downloaded network) ---

def layout_score(x: torch.Tensor, mean_image: torch.Tensor) -> torch.Tensor:
    """Correlation of each image with a mean image, both with their own mean removed: x (B,C,H,W), mean_image
    (C,H,W) -> (B,) in [-1, 1]. High when the dark and bright regions sit where the mean image has them."""
    if x.shape[1:] != mean_image.shape:
        raise ValueError(f"layout_score: images {tuple(x.shape)} do not match the mean image {tuple(mean_image.shape)}")
    t = mean_image.flatten().to(torch.float64)
    t = t - t.mean()
    a = x.flatten(1).to(torch.float64)
    a = a - a.mean(1, keepdim=True)
    return (a @ t / (a.norm(dim=1) * t.norm()).clamp_min(1e-12)).to(torch.promote_types(x.dtype, torch.float32))


def image_statistics(x: torch.Tensor, mean_image: torch.Tensor, levels: int) -> dict:
    """Per-image statistics {name: (B,)} of images x (B,C,H,W): "mean" intensity, "contrast" (std of the pixels),
    per level j = 0 (finest) .. levels-1 "log energy j" (log of the mean squared orthonormal Haar detail
    coefficient) and "kurtosis j" (of the detail coefficients, 3 for a Gaussian; heavy tails = sparse edges),
    and "layout" (layout_score against mean_image)."""
    from .wavelets import decompose
    x = x.to(torch.float64)
    _, details = decompose(x, levels, normalize="orthonormal")
    stats = {"mean": x.mean((1, 2, 3)), "contrast": x.flatten(1).std(1)}
    for j, d in enumerate(details):
        d = d.flatten(1)
        m2 = d.square().mean(1)
        stats[f"log energy {j}"] = m2.clamp_min(1e-20).log()
        stats[f"kurtosis {j}"] = d.pow(4).mean(1) / m2.square().clamp_min(1e-40)
    stats["layout"] = layout_score(x, mean_image.to(x)).double()
    return stats


def wasserstein1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2-Wasserstein distance between the empirical distributions of the samples a (n,) and b (m,): the root mean
    squared difference of their quantile functions, integrated exactly (both are piecewise constant, with steps at
    multiples of 1/n and 1/m). Two Gaussians N(m1, s1²), N(m2, s2²) are sqrt((m1 - m2)² + (s1 - s2)²) apart."""
    if a.dim() != 1 or b.dim() != 1 or not len(a) or not len(b):
        raise ValueError(f"wasserstein1d: need two non-empty 1-D samples, got shapes {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    a, b = a.to(torch.float64).sort().values, b.to(torch.float64).sort().values
    n, m = len(a), len(b)
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = u.unique()  # sorted breakpoints of both quantile functions in (0, 1]
    width = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - width / 2  # each piece's midpoint: the index of its quantile in a and in b
    ia, ib = (mid * n).long().clamp_max(n - 1), (mid * m).long().clamp_max(m - 1)
    return (width * (a[ia] - b[ib]).square()).sum().sqrt()


def sample_distance(x: torch.Tensor, data: torch.Tensor, levels: int = 3) -> dict:
    """How far the images x (B,C,H,W) are from the images `data` (N,C,H,W), statistic by statistic: for each
    statistic of image_statistics (layout against the mean of `data`), the 2-Wasserstein distance between its
    values on x and on data, divided by its standard deviation on data. Returns {name: distance} and "total",
    the mean over the statistics. 0 for identical sets; two independent draws from one distribution give a
    positive value that shrinks with their sizes (measure it: it is the noise floor)."""
    if x.dim() != 4 or data.dim() != 4 or x.shape[1:] != data.shape[1:]:
        raise ValueError(f"sample_distance: need two batches of images of one size, got {tuple(x.shape)}, "
                         f"{tuple(data.shape)}")
    if len(data) < 2:
        raise ValueError("sample_distance: data needs at least 2 images (the scales are its standard deviations)")
    check_images(x, "sample_distance: x", kind="any")
    check_images(data, "sample_distance: data", kind="any")
    if not torch.isfinite(data).all():
        raise ValueError(f"sample_distance: data has {int((~torch.isfinite(data).flatten(1).all(1)).sum())} images "
                         f"with NaN or inf of {len(data)}: the reference images must be clean")
    if not (ok := torch.isfinite(x).flatten(1).all(1)).all():
        if not ok.any():
            raise ValueError(f"sample_distance: every one of the {len(x)} images of x has NaN or inf values (failed "
                             "samples: see the sampler's info['status']): nothing to compare")
        warnings.warn(f"sample_distance: {int((~ok).sum())} of the {len(x)} images of x have NaN or inf values "
                      "(failed samples) and are left out: the distances describe the others only")
        x = x[ok]
    mean_image = data.to(torch.float64).mean(0)
    sx, sd = image_statistics(x, mean_image, levels), image_statistics(data, mean_image, levels)
    out = {k: float(wasserstein1d(sx[k], sd[k]) / sd[k].std().clamp_min(1e-12)) for k in sd}
    out["total"] = sum(out.values()) / len(sd)
    return out


def edge_share(samples: torch.Tensor, image: torch.Tensor, top: float = 0.1) -> float:
    """The share of the per-pixel variance of `samples` (k, 1, H, W) that lies on the `top` fraction of pixels where
    `image` (1, H, W) has the largest gradient: `top` itself if the variance were spread evenly."""
    gy, gx = torch.gradient(image[0])
    g = (gx**2 + gy**2).flatten()
    var = samples.flatten(1).var(0)
    return (var[g >= g.quantile(1 - top)].sum() / var.sum()).item()
