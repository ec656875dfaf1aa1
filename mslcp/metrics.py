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
