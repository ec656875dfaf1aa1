"""Figure helpers used by several chapters (matplotlib only). Each returns a pyplot figure, shown at the end
of the cell like any other: write `fig = plot.images(x)` (or end the line with `;`) so it is not shown twice.
Inputs may be torch tensors or numpy arrays."""
import matplotlib.pyplot as plt
import numpy as np


WIDTH = 8.0  # inches: wider figures are shrunk to the book's column and their text becomes unreadable


def _np(x):
    """Tensor / array / number -> float numpy array (on the CPU, detached)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _gray(x):
    """(H,W), (1,H,W) or (B,1,H,W) with B=1 -> (H,W); (3,H,W) is shown as the mean of its channels."""
    x = _np(x)
    while x.ndim > 2:
        x = x.mean(0) if x.shape[0] in (1, 3) or x.ndim > 3 else x[0]
    return x


def _list(x):
    """A list of images, or a (B,1,H,W) / (B,H,W) batch -> list of (H,W) arrays."""
    if isinstance(x, (list, tuple)):
        return [_gray(im) for im in x]
    x = _np(x)
    return list(x.reshape(-1, *x.shape[-2:]))


def images(x, titles=None, ncols=None, size=1.8, vmin=0.0, vmax=1.0, suptitle=None):
    """Grid of grayscale images with fixed limits [vmin, vmax] (no auto-contrast, so noise and bias show).
    x: (B,1,H,W) / (B,H,W) tensor or a list of images; titles: one string per image (e.g. 'σ=0.1, 24.3 dB').
    `size` is inches per image, capped so the figure fits the book's column."""
    ims = _list(x)
    ncols = ncols or min(len(ims), 8)
    nrows = -(-len(ims) // ncols)
    size = min(size, WIDTH / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(ims):
            ax.imshow(ims[i], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def psnr_vs_sigma(sigmas, curves, train_range=None, title=None, ax=None):
    """Output PSNR (dB) against noise σ (on the [0,1] intensity scale) for each {label: psnr values}.
    Draws the input PSNR −20·log10 σ as a dashed reference and shades the training range (lo, hi) if given."""
    fig, ax = (plt.subplots(figsize=(5, 3.6), layout="constrained") if ax is None else (ax.figure, ax))
    s = _np(sigmas)
    ax.plot(s, -20 * np.log10(s), "k--", lw=1, label="noisy input")
    for label, values in curves.items():
        ax.plot(s, _np(values), "o-", ms=3, label=label)
    if train_range is not None:
        ax.axvspan(*train_range, color="0.85", zorder=0, label="training range")
    ax.set(xlabel="noise level σ", ylabel="PSNR (dB)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def filters(rows, image=None, pixels=None, titles=None, crop=None, size=1.8, cmap="RdBu_r"):
    """Adaptive filters: Jacobian rows (K,H,W) of a locally linear denoiser, D(y) = J(y) y, each on a symmetric
    colour scale with a colour bar. Optionally the image first, with the K output pixels (row, col) marked;
    crop=r shows only the (2r+1)x(2r+1) window of each row centred on its pixel (clipped at the borders)."""
    rows = _list(rows)
    if crop is not None:
        if pixels is None:
            raise ValueError("filters: crop needs the pixels the rows belong to")
        rows = [r[max(i - crop, 0):i + crop + 1, max(j - crop, 0):j + crop + 1] for r, (i, j) in zip(rows, pixels)]
    n = len(rows) + (image is not None)
    size = min(size, (WIDTH - 0.6) / n)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.6, size + 0.4), squeeze=False, layout="constrained")
    axes = list(axes.flat)
    if image is not None:
        ax = axes.pop(0)
        ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1)
        if pixels is not None:
            for k, (i, j) in enumerate(pixels):
                ax.plot(j, i, "o", mfc="none", mec=f"C{k}", ms=8, mew=1.5)
        ax.set_title("image", fontsize=9)
        ax.set_axis_off()
    vmax = max(np.abs(r).max() for r in rows) or 1.0
    for k, (ax, r) in enumerate(zip(axes, rows)):
        im = ax.imshow(r, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        if titles is not None or pixels is not None:
            title = titles[k] if titles is not None else f"pixel {tuple(int(p) for p in pixels[k])}"
            ax.set_title(title, fontsize=9, color="k" if pixels is None else f"C{k}")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
    return fig


def sigma_trajectory(sigmas, sigma_final=None, labels=None, title="effective noise level during sampling", ax=None):
    """σ_t against iteration t (log scale), one line per image: `sigmas` is info.sigma from mslcp.sampling
    (a list of per-image lists) or a single sequence; `sigma_final` draws the stopping level."""
    fig, ax = (plt.subplots(figsize=(5, 3.4), layout="constrained") if ax is None else (ax.figure, ax))
    runs = [sigmas] if np.ndim(_np(sigmas[0])) == 0 else sigmas
    for k, s in enumerate(runs):
        ax.plot(np.arange(1, len(s) + 1), _np(s), lw=1.2, label=None if labels is None else labels[k])
    if sigma_final is not None:
        ax.axhline(sigma_final, color="k", ls="--", lw=1, label="σ_final")
    ax.set(yscale="log", xlabel="iteration t", ylabel="σ_t", title=title)
    ax.grid(alpha=0.3, which="both")
    if labels is not None or sigma_final is not None:
        ax.legend(fontsize=8)
    return fig


def pyramid(low, details, title=None, size=4.0, index=0, labels=True):
    """Wavelet pyramid of image `index` from mslcp.wavelets.decompose's (low, [details_0 (finest), ...]) in the
    layout of pywt.coeffs_to_array, each band where its frequencies are: low-pass top-left, then per level
    cV (vertical edges) top-right, cH (horizontal edges) bottom-left, cD bottom-right. Every band is
    contrast-normalised on its own (grey = 0); only channel 0 is shown. labels: name each band (x_J; H_j, V_j, D_j
    for cH, cV, cD of details_j) in a corner of it."""
    lo = _np(low)[index, 0]
    canvas = (lo - lo.min()) / (np.ptp(lo) or 1.0)
    for d in reversed(details):  # coarsest first
        d = _np(d)[index, :3]
        bands = [0.5 + 0.5 * b / (np.abs(b).max() or 1.0) for b in d]
        h, w = canvas.shape
        if d.shape[-2:] != (h, w):
            raise ValueError(f"details of shape {d.shape[-2:]} do not fit a {h}x{w} low-pass: wrong order?")
        canvas = np.block([[canvas, bands[1]], [bands[0], bands[2]]])
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    h, w = lo.shape
    text = dict(fontsize=7, color="C1", va="top", ha="left", bbox=dict(fc="white", ec="none", alpha=0.7, pad=1))
    if labels:
        ax.text(0, 0, f"$x_{{{len(details)}}}$", **text)
    for j in reversed(range(len(details))):  # band boundaries and names of each level, coarsest first
        ax.plot([-0.5, 2 * w - 0.5], [h - 0.5, h - 0.5], color="C1", lw=0.8)
        ax.plot([w - 0.5, w - 0.5], [-0.5, 2 * h - 0.5], color="C1", lw=0.8)
        if labels:
            for name, (r, c) in (("V", (0, w)), ("H", (h, 0)), ("D", (h, w))):
                ax.text(c, r, f"${name}_{{{j}}}$", **text)
        h, w = 2 * h, 2 * w
    ax.set_axis_off()
    ax.set_title(title or f"wavelet pyramid, J = {len(details)}")
    return fig


def band_energy(energies, noise=None, title=None, ax=None):
    """Energy per detail band across scales, log scale: `energies` {label: (J,3) from wavelets.band_energy}, one
    colour per label, one marker per band (cH circles, cV squares, cD triangles; solid lines); x = level j = 0
    (finest) ... J-1. `noise` {label: J values} (e.g. the noise energy per level) is drawn as grey dotted lines."""
    fig, ax = (plt.subplots(figsize=(7.5, 3.8), layout="constrained") if ax is None else (ax.figure, ax))
    for i, (label, e) in enumerate(energies.items()):
        e = _np(e)
        lv = np.arange(len(e))
        for k, (band, style) in enumerate(zip(("cH", "cV", "cD"), ("o-", "s-", "^-"))):
            ax.plot(lv, e[:, k], style, color=f"C{i}", ms=4, label=f"{label}: {band}")
    for i, (label, e) in enumerate((noise or {}).items()):
        e = _np(e)
        ax.plot(np.arange(len(e)), e, ":", color=str(0.2 + 0.2 * (i % 4)), lw=1.2, label=label)
    ax.set(yscale="log", xlabel="level j (0 = finest)", ylabel="mean squared coefficient", title=title)
    ax.set_xticks(np.arange(max(len(_np(e)) for e in energies.values())))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def density2d(log_density, extent=(0.0, 1.0, 0.0, 1.0), points=None, paths=None, title=None, ax=None, n=150,
              levels=8):
    """A 2-D density as filled contours of p = exp(log_density) on an n x n grid over extent (x0, x1, y0, y1);
    log_density maps a float64 numpy array (m,2) to (m,) values. points (k,2): dots; paths (T,k,2): k trajectories
    from a hollow circle (t = 0) to a dot (t = T-1), e.g. mslcp.sampling's info.trajectory."""
    fig, ax = (plt.subplots(figsize=(3.6, 3.4), layout="constrained") if ax is None else (ax.figure, ax))
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    p = np.exp(_np(log_density(np.stack([gx.ravel(), gy.ravel()], 1)))).reshape(n, n)
    ax.contourf(gx, gy, p, levels=levels, cmap="Blues")
    if paths is not None:
        paths = _np(paths)
        ax.plot(paths[..., 0], paths[..., 1], color="C1", lw=0.7, alpha=0.8)
        ax.plot(paths[0, :, 0], paths[0, :, 1], "o", mfc="none", mec="C1", ms=4)
        ax.plot(paths[-1, :, 0], paths[-1, :, 1], "o", color="C3", ms=3)
    if points is not None:
        points = _np(points)
        ax.scatter(points[:, 0], points[:, 1], s=2, color="C3", alpha=0.5, lw=0)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")
    return fig
