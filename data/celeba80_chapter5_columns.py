"""Chapter 5's columns of data/celeba80_denoising.csv, measured as `python -m mslcp evaluate` measures the others
(the 473 test faces of data.celeba_halfres, one noise image from seed 0 scaled to each sigma, PSNR per image in
chunks of 64, the mean): the pair celeba80_flat_rf5_short(_quadratic) and the low-pass only baseline of
celeba80_multiscale_rf5 (multiscale.LowpassOnly)."""
import csv
from pathlib import Path

import torch

from mslcp import data, metrics, multiscale, pretrained

torch.set_num_threads(1)
CSV = Path("data/celeba80_denoising.csv")
rows = list(csv.DictReader(open(CSV)))
models = {n: pretrained.load(f"data/checkpoints/{n}.safetensors") for n in
          ("celeba80_flat_rf5_short", "celeba80_flat_rf5_short_quadratic")}
models["celeba80_lowpass_only"] = multiscale.LowpassOnly(pretrained.shipped("celeba80_multiscale_rf5"))
x = data.celeba_halfres(split="test", n=473)
noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    for r in rows:
        y = x + float(r["sigma"]) * noise
        assert abs(metrics.psnr(y, x).mean().item() - float(r["noisy"])) < 1e-3  # the table's noise draw
        for name, m in models.items():
            v = torch.cat([metrics.psnr(m(y[i:i + 64]), x[i:i + 64]) for i in range(0, len(x), 64)]).mean().item()
            r[name] = f"{v:.3f}"
        print(r, flush=True)
cols = list(rows[0])
with open(CSV, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(cols)
    w.writerows([[r[c] for c in cols] for r in rows])
