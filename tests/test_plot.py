"""mslcp.presets and mslcp.plot: preset selection, and figures that show what they claim (the pyramid's
layout is checked against pywt.coeffs_to_array)."""
import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pywt  # noqa: E402
import torch  # noqa: E402

from mslcp import plot, presets  # noqa: E402


def test_setup_sets_the_thread_policy(monkeypatch, one_thread):
    """Every chapter's first line sets torch's CPU threads to presets.threads() (one_thread restores them)."""
    monkeypatch.setenv("MSLCP_THREADS", "1")
    torch.set_num_threads(2)
    presets.setup("cpu")
    assert torch.get_num_threads() == 1


def test_preset_choice(monkeypatch):
    monkeypatch.delenv("MSLCP_PRESET", raising=False)
    assert presets.get().name == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("MSLCP_PRESET", "gpu")
    assert presets.get().name == "gpu"
    assert presets.get("cpu").name == "cpu"  # the argument wins over the environment
    p = presets.get("cpu", n_samples=7)
    assert p.n_samples == 7 and p.h0 == presets.PRESETS["cpu"]["h0"]
    assert {f.name for f in dataclasses.fields(p)} == {"name", "device", *presets.PRESETS["cpu"]}
    assert set(presets.PRESETS["cpu"]) == set(presets.PRESETS["gpu"])
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("tpu")
    with pytest.raises(ValueError, match="no_such_field: not a field"):
        presets.get("cpu", no_such_field=1)


def test_setup_prints_one_line(capsys):
    preset, device = presets.setup("cpu", seed=3)
    assert capsys.readouterr().out.count("\n") == 1
    assert device.type == preset.device and torch.initial_seed() == 3


def test_images_fixed_limits_and_titles():
    x = torch.rand(5, 1, 8, 8) * 0.1  # a dark batch must stay dark: no auto-contrast
    fig = plot.images(x, titles=list("abcde"), ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and len(fig.axes) == 6
    assert all(ax.images[0].get_clim() == (0.0, 1.0) for ax in shown)
    assert [ax.get_title() for ax in shown] == list("abcde")
    plt.close(fig)


def test_psnr_trajectory_filters_return_figures():
    s = np.linspace(0.05, 1, 5)
    fig = plot.psnr_vs_sigma(s, {"net": 30 - 10 * s}, train_range=(0, 0.4))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "noise level σ" and ax.get_ylabel() == "PSNR (dB)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), -20 * np.log10(s))  # the noisy-input reference
    fig2 = plot.sigma_trajectory([[1.0, 0.5, 0.1], [1.0, 0.2]], sigma_final=0.1)
    assert fig2.axes[0].get_yscale() == "log" and len(fig2.axes[0].lines) == 3
    rows = torch.randn(3, 9, 9)
    fig3 = plot.filters(rows, image=torch.rand(1, 1, 9, 9), pixels=[(1, 1), (4, 4), (7, 2)])
    clims = [ax.images[0].get_clim() for ax in fig3.axes[1:4]]
    vmax = rows.abs().max().item()
    assert all(np.allclose(c, (-vmax, vmax)) for c in clims)  # one symmetric scale, with a colour bar
    assert len(fig3.axes) == 5
    # crop: the window of each row around its own pixel, clipped at the border
    fig4 = plot.filters(rows, pixels=[(1, 1), (4, 4), (7, 2)], crop=2)
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig4.axes[:3]]
    np.testing.assert_array_equal(shown[0], rows[0, 0:4, 0:4].numpy())
    np.testing.assert_array_equal(shown[1], rows[1, 2:7, 2:7].numpy())
    np.testing.assert_array_equal(shown[2], rows[2, 5:9, 0:5].numpy())
    with pytest.raises(ValueError, match="pixels"):
        plot.filters(rows, crop=2)
    for f in (fig, fig2, fig3, fig4):
        plt.close(f)


def test_pyramid_layout_matches_pywt():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    coeffs = pywt.wavedec2(img, "haar", level=3)  # [cA3, (cH3, cV3, cD3), ..., (cH1, cV1, cD1)]
    low = torch.tensor(coeffs[0])[None, None]
    details = [torch.tensor(np.stack(c))[None] for c in coeffs[:0:-1]]  # finest first, as decompose returns
    fig = plot.pyramid(low, details)
    canvas = fig.axes[0].images[0].get_array()
    _, slices = pywt.coeffs_to_array(coeffs)

    def norm(b):  # each band contrast-normalised on its own
        return 0.5 + 0.5 * b / np.abs(b).max()

    a = coeffs[0]
    np.testing.assert_allclose(canvas[slices[0]], (a - a.min()) / np.ptp(a), atol=1e-6)
    for level, bands in zip(slices[1:], coeffs[1:]):
        for key, band in zip(("da", "ad", "dd"), bands):  # pywt's keys for cH, cV, cD
            np.testing.assert_allclose(canvas[level[key]], norm(band), atol=1e-6)
    names = sorted(t.get_text() for t in fig.axes[0].texts)  # every band is labelled
    assert names == sorted(["$x_{3}$"] + [f"${b}_{{{j}}}$" for j in range(3) for b in "HVD"])
    plt.close(fig)
    with pytest.raises(ValueError, match="do not fit"):
        plot.pyramid(low, details[::-1])


def test_band_energy_plots_every_band_per_level():
    e = torch.tensor([[1e-3, 2e-3, 1e-4], [4e-3, 8e-3, 5e-4]])
    fig = plot.band_energy({"faces": e, "other": 2 * e}, noise={"σ = 0.1": [0.01, 0.01]}, title="t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "t" and len(ax.lines) == 7
    np.testing.assert_allclose(ax.lines[1].get_ydata(), e[:, 1].numpy())  # faces, cV
    np.testing.assert_allclose(ax.lines[3].get_xdata(), [0, 1])  # levels count from 0 (finest), as details[j]
    assert ax.lines[6].get_linestyle() == ":" and all(line.get_linestyle() == "-" for line in ax.lines[:6])
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["faces: cH", "faces: cV"]
    plt.close(fig)


def test_density2d_draws_the_density_points_and_paths():
    mean, var = np.array([0.3, 0.6]), 0.02  # isotropic Gaussian: its peak density is 1 / (2 pi var)
    seen = []

    def log_density(g):
        seen.append(g)
        return -((g - mean) ** 2).sum(1) / (2 * var) - np.log(2 * np.pi * var)
    pts = np.random.default_rng(0).random((50, 2))
    paths = np.random.default_rng(1).random((6, 3, 2))
    fig = plot.density2d(log_density, extent=(0, 1, 0, 1.5), points=pts, paths=paths, n=101, title="t")
    ax = fig.axes[0]
    g = seen[0]
    assert g.shape == (101 * 101, 2) and g.dtype == np.float64
    np.testing.assert_allclose([g[:, 0].min(), g[:, 0].max(), g[:, 1].min(), g[:, 1].max()], [0, 1, 0, 1.5])
    peak = 1 / (2 * np.pi * var)  # the grid holds the mean (0.3 = 30 steps of 0.01, 0.6 = 40 of 0.015)
    cs = ax.collections[0]  # the filled contours of p = exp(log_density) span its range on the grid
    assert cs.levels[0] <= 1e-12 and peak * (1 - 1e-9) <= cs.levels[-1] < 1.5 * peak
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), pts)
    lines = ax.lines[:3]  # one line per trajectory, then start and end markers
    for k, line in enumerate(lines):
        np.testing.assert_allclose(line.get_xydata(), paths[:, k])
    np.testing.assert_allclose(ax.lines[3].get_xydata(), paths[0])
    np.testing.assert_allclose(ax.lines[4].get_xydata(), paths[-1])
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.5) and ax.get_title() == "t"
    plt.close(fig)
