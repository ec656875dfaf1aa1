"""Image quality metrics."""
import torch


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB: x, ref (B, ...) -> (B,).

    10 log10(data_range² / mean squared error over all but the first dimension); identical
    images give inf. Computed in at least float32 (uint8 inputs work with data_range=255).
    """
    if x.shape != ref.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if x.dim() < 2:
        raise ValueError(f"psnr: expected a batch (B, ...) of images, got shape {tuple(x.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, ref.dtype), torch.float32)
    mse = (x.to(dtype) - ref.to(dtype)).square().flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def denoising_psnr(models, x, sigmas, seed=0):
    """Denoising PSNR (dB) against the noise level: models {name: callable (B,C,H,W) -> (B,C,H,W)}, clean images
    x (B,C,H,W), noise levels sigmas -> {"noisy": input PSNR, name: output PSNR, ...}, each a list with one value
    per σ, the mean over the images. One noise draw z ~ N(0, I) (CPU generator `seed`) serves every model and
    σ, y = x + σ z, so the curves differ only through the models."""
    if "noisy" in models:
        raise ValueError('denoising_psnr: "noisy" names the input PSNR; give the model another name')
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)
    table = {"noisy": [], **{name: [] for name in models}}
    with torch.no_grad():
        for s in sigmas:
            y = x + float(s) * z
            table["noisy"].append(psnr(y, x).mean().item())
            for name, model in models.items():
                table[name].append(psnr(model(y), x).mean().item())
    return table
