"""The benchmark scripts run, and count what they claim to count (tiny settings)."""
import argparse
import os
import subprocess
import sys

import pytest
import torch
from conftest import BENCH, script

from mslcp import pretrained, synthetic

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

quality_per_call = script("quality_per_call")
README = (BENCH / "README.md").read_text()  # its tables and the sentences drawn from them
FLAT = " ".join(README.split())  # the same, its lines joined


def test_quality_per_call_measure():
    model = pretrained.shipped("multiscale_rf5")
    reference = synthetic.faces(64, 32, seed=0)
    d, calls = quality_per_call.measure(model, 32, 1, reference, range(3), h0=0.5, beta=0.5)
    d2, _ = quality_per_call.measure(model, 32, 1, reference, range(3), h0=0.5, beta=0.5)
    assert d == d2 and 0 < d < 10  # seeded: the same images
    assert 3 <= calls < 3 * 50  # at least one call per level, far fewer than Algorithm 1's cap
    # at 2x2 block averages: compared with 16x16 references
    d16, _ = quality_per_call.measure(model, 32, 2, torch.nn.functional.avg_pool2d(reference, 2), range(3),
                                      h0=0.5, beta=0.5)
    assert d16 > 0 and d16 != d


def test_quality_per_call_fixed_settings_are_checked():
    assert quality_per_call.step_and_beta("0.1,0.05") == (0.1, 0.05)
    for bad in ("0.1", "0.1,0.1,0.1", "a,b", "0,0.1", "0.1,1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="--fixed"):
            quality_per_call.step_and_beta(bad)


def test_synthesis_benchmark_runs():
    r = subprocess.run([sys.executable, str(BENCH / "synthesis.py"), "--batches", "1", "2", "--h0", "0.5"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "MSLCP_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| cpu")]
    assert len(rows) == 2 and all(float(line.split("|")[-2]) > 0 for line in rows)


def test_quality_tables_are_read_back_and_plotted(tmp_path):
    tables = quality_per_call.read_tables(README)
    assert [model for model, _ in tables] == ["multiscale_rf5", "celeba80_multiscale_rf9", "paper13"]
    rows = dict((s, (c, *d)) for s, c, d in tables[2][1])
    assert rows["fixed h=0.01, beta=0.01, all levels"] == (42893, 1.20, 1.48)
    assert rows["fixed h=0.1, beta=0.1"] == (954, 1.12, 1.14)
    fig = quality_per_call.plot(tables, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 10_000
    ax = fig.axes[2]
    points = sorted((line.get_xdata()[0], *line.get_ydata()) for line in ax.get_lines()
                    if line.get_label() in ("ascending", "fixed", "all levels", "demo"))
    measured = sorted((c, a, b) for c, a, b in rows.values())
    assert points == measured  # one line per setting: (calls, A), (calls, B)
    assert ax.get_xscale() == "log"


def test_quality_per_call_plots_its_own_run(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "quality_per_call.py"), "--n", "1", "--quick", "--h0", "0.5",
                        "--beta", "0.5", "--fixed", "--plot", str(tmp_path / "q.png")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "MSLCP_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    (model, rows), = quality_per_call.read_tables(r.stdout)  # the output can be replotted
    assert model == "multiscale_rf5" and [s for s, *_ in rows] == ["ascending h0=0.5, beta=0.5"]
    assert (tmp_path / "q.png").stat().st_size > 10_000
    bad = subprocess.run([sys.executable, str(BENCH / "quality_per_call.py"), "--replot", str(BENCH / "README.md")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--replot needs --plot" in bad.stderr


def test_the_readme_names_the_settings_that_meet_the_target():
    # "a point below the band [the two runs of h = beta = 0.01 at every level] and left of the line [a tenth of its
    # calls]"
    def meeting(rows):
        (calls, slow), = [(c, d) for s, c, d in rows if "all levels" in s]
        return {s for s, c, d in rows if "all levels" not in s and c <= calls / 10 and max(d) < min(slow)}

    small, faces, paper = (rows for _, rows in quality_per_call.read_tables(README))
    assert meeting(paper) == {"fixed h=0.1, beta=0.1", "fixed h=0.1, beta=0.02", "fixed h=0.05, beta=0.05"}
    assert "only the fixed steps with h = 0.1 and 0.05 get there" in FLAT
    assert "10 of the 13 other settings get there on synthetic faces and 4 of 10 on real ones" in FLAT
    assert (len(meeting(small)), len(small) - 1, len(meeting(faces)), len(faces) - 1) == (10, 13, 4, 10)
    (demo,) = [(c, d) for s, c, d in small if s.startswith("authors' demo")]
    assert "are below the band but right of the line (2,621 calls)" in FLAT
    calls = {s: c for s, c, _ in small}
    assert demo[0] == 2621 and demo[0] > calls["fixed h=0.01, beta=0.01, all levels"] / 10
    # "the lowest distance of the table on this model (0.77 / 0.76) ... with 2,621 calls per image: 18x and 58x"
    assert max(demo[1]) <= min(min(d) for s, c, d in small if not s.startswith("authors' demo")) + 0.01
    assert (round(2621 / calls["ascending h0=0.01, beta=0.5"]), round(2621 / calls["ascending h0=0.2, beta=0.5"])) \
        == (18, 58) and "calls per image: 18× and 58× as many" in FLAT
    assert meeting(faces) == {"ascending h0=0.01, beta=0.5", "ascending h0=0.05, beta=0.5", "fixed h=0.2, beta=0.2",
                              "fixed h=0.1, beta=0.1"}


def test_the_four_run_table_agrees_with_the_two_run_table_and_the_text():
    head = "| setting | calls per image (4 runs) | total distance A / B / C / D | mean |"
    (_, four), = quality_per_call.read_tables(README, header=head)
    means = [float(row.split("|")[-2]) for row in README[README.index(head):].splitlines()[2:2 + len(four)]]
    for (_, _, d), mean in zip(four, means):
        assert mean == round(sum(d) / len(d) + 1e-9, 2)
    runs = {setting.replace(" (the paper's)", ""): list(d) for setting, _, d in four}
    (_, paper), = [t for t in quality_per_call.read_tables(README) if t[0] == "paper13"]
    for setting, _, (a, b) in paper:  # runs A and B are the two-run table's
        if setting in runs:
            assert runs[setting][:2] == [a, b]
    demo, asc = runs.pop("fixed h=0.01, beta=0.01, all levels"), runs["ascending h0=0.01, beta=0.1"]
    for setting, span in (("fixed h=0.1, beta=0.1", "0.79–1.14"), ("fixed h=0.1, beta=0.02", "0.76–1.11")):
        assert max(runs[setting]) < min(demo) and f"{min(runs[setting]):.2f}–{max(runs[setting]):.2f}" == span
        assert span in FLAT
    assert f"{sum(asc) / 4 - sum(demo) / 2:.2f}" == "0.18" and f"{max(demo) - min(demo):.2f}" == "0.28"
    assert [f"{x - y:.2f}" for x, y in zip(asc, demo)] == ["0.37", "0.17"]
    assert f"{max(max(d) - min(d) for d in runs.values()):.2f}" == "0.56"
    for phrase in ("is 0.18 above the two-run mean of h = β = 0.01", "by 0.37 (A) and 0.17 (B)",
                   "differ by up to 0.56"):
        assert phrase in FLAT


def test_relative_stop_is_the_authors_signal_to_noise_test():
    # one_scale_synthesis stops once 20 log10(std(y_t) / sigma_t) >= 20 log10(1 / sigma_L): sigma_t <= sigma_L std(y_t)
    from mslcp import sampling

    def shrink(y):  # the least-squares denoiser of x ~ N(0.5, 0.2^2) at noise sigma = 0.3 (a fixed shrinkage)
        return 0.5 + (y - 0.5) * 0.04 / (0.04 + 0.09)

    kw = dict(sigma_final=0.05, h0=0.1, beta=0.5, record_every=1, generator=[0, 1, 2])
    _, rel = sampling.sample(shrink, (3, 1, 8, 8), relative_stop=True, **kw)
    _, ab = sampling.sample(shrink, (3, 1, 8, 8), **kw)
    for i in range(3):
        steps, sig = int(rel.steps[i]), rel.sigma[i]
        std = rel.trajectory[1:steps + 1, i].flatten(1).std(1)  # y_t after step t = 1..steps
        hit = (sig <= 0.05 * std).nonzero()[:, 0]
        assert len(hit) and int(hit[0]) + 1 == steps  # it stops at the first step that passes the test
        assert int(ab.steps[i]) != steps  # the absolute test (sigma_t <= 0.05) stops elsewhere


def test_no_row_calls_the_all_levels_fixed_step_the_demo():
    # the released demo uses h = beta = 0.01 for the low-pass only: no table row may call that step "the demo"
    for _, rows in quality_per_call.read_tables(README):
        assert not [s for s, *_ in rows if "demo" in s and "all levels" in s]
    assert "authors' demo)" not in README and "for the *low-pass only*" in README
    assert quality_per_call.SLOW == "fixed h=0.01, beta=0.01, all levels"


def test_lowpass_benchmark_measures():
    lowpass = script("lowpass")

    x = torch.rand(5, 1, 40, 40)
    r = lowpass.rescale(x)
    assert torch.allclose(r.amin((1, 2, 3)), torch.zeros(5))
    assert torch.allclose(r.amax((1, 2, 3)), torch.full((5,), 0.8))
    faces = synthetic.faces(64, 40, seed=0)
    train, test = faces[:48], faces[48:]
    t = lowpass.face_threshold(train, test)  # the held-out median: half of them count as a face layout
    from mslcp import metrics
    assert float((metrics.layout_score(test, train.mean(0)) >= t).float().mean()) == 0.5
    net = pretrained.shipped("flat_rf5")  # fully convolutional: runs on 40x40
    face, lay, d, d8, calls, xs = lowpass.measure(net, range(3), train, t, h0=0.2, beta=0.5, sigma_final=0.05)
    again = lowpass.measure(net, range(3), train, t, h0=0.2, beta=0.5, sigma_final=0.05)
    assert (face, d) == again[:3:2] and 0 <= face <= 1 and d > 0 and d8 > 0 and lay >= 0  # seeded
    assert xs.shape == (3, 1, 40, 40) and 2 <= calls < 50
    assert lowpass.DEMO[next(iter(lowpass.DEMO))] == dict(h0=0.01, beta=0.01, fixed_step=True, sigma_final=0.25,
                                                            relative_stop=True, mean=0.0)  # the demo's low-pass


def test_peer_shims_and_settings():
    peer = script("peer")

    net = pretrained.shipped("flat_rf5")
    y = torch.rand(2, 1, 16, 16)
    shim = peer.Noise(net)
    with torch.no_grad():
        assert torch.allclose(shim(y), y - net(y)) and shim.calls == 1  # their model(y) is the noise estimate
        cond = pretrained.shipped("multiscale_rf5").conditionals[0]
        low, det = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 8, 8) * 0.1
        assert torch.allclose(peer.Noise(cond, cond=True)(torch.cat([low, det], 1)), det - cond(low, det))
    theirs, ours = peer.demo_settings(3, 0.5, (0.01, 0.01, True, 0.25))
    assert theirs["sig_L"] == {"low": 0.25, 0: 0.015, 1: 0.01, 2: 0.01} and theirs["fixed_h"]["low"] is True
    assert ours["sigma_final"] == (0.015, 0.01, 0.01, 0.25) and ours["beta"] == (0.5, 0.5, 0.5, 0.01)
    assert peer.low_setting("0.05,0.5,ascending,0.01") == (0.05, 0.5, False, 0.01)
    with pytest.raises(argparse.ArgumentTypeError, match="--low"):
        peer.low_setting("0.05,0.5")
    r = subprocess.run([sys.executable, str(BENCH / "peer.py"), "--peer", "/nonexistent"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "code/algorithm_inv_prob.py" in r.stderr


def test_the_lowpass_table_and_its_reading():
    head = "| setting | calls per image | face layout | layout | distance | distance after [0, 0.8] |"
    lines = README[README.index(head):].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        name, *v = (c.strip() for c in line.strip("|").split("|"))
        rows[name] = [float(x) for x in v]
    asc = lambda h0, b: rows[f"ascending h0={h0}, beta={b}"]  # calls, face, layout, distance, rescaled
    h0s = (0.1, 0.05, 0.01)
    for h0 in h0s:  # beta = 0.1 draws a face layout more often, with the lower layout distance, ~2x the calls
        assert asc(h0, 0.1)[1] > asc(h0, 0.5)[1] and asc(h0, 0.1)[2] < asc(h0, 0.5)[2], h0
        assert 1.5 < asc(h0, 0.1)[0] / asc(h0, 0.5)[0] < 2.5, h0
    span = lambda b, k: (min(asc(h, b)[k] for h in h0s), max(asc(h, b)[k] for h in h0s))
    for b, k, text in ((0.1, 1, "0.44–0.50"), (0.5, 1, "0.12–0.31"), (0.1, 2, "0.27–0.33"),
                       (0.5, 2, "0.39–0.75")):
        assert "%.2f–%.2f" % span(b, k) == text and text in FLAT
    gaps = [asc(h, 0.1)[1] - asc(h, 0.5)[1] for h in h0s]
    assert f"by {min(gaps):.2f}–{max(gaps):.2f}" in FLAT
    assert all(r[4] < r[3] for r in rows.values())  # "rescaling to [0, 0.8] lowers every row's distance"
    best_asc = min((k for k in rows if k.startswith("ascending")), key=lambda k: rows[k][3])
    assert best_asc == "ascending h0=0.01, beta=0.1" and f"β = 0.1: {rows[best_asc][3]:.2f})" in FLAT
    assert all(r[3] < rows[best_asc][3] for k, r in rows.items() if k.startswith("fixed"))  # "and the fixed steps"
    assert asc(0.1, 0.1)[:2] == [40, 0.50] and "40 calls per image and a face-layout fraction of 0.50" in FLAT


def test_the_peer_table_and_its_reading():
    head = "| work | sampler | calls per image | CPU seconds | images per CPU second | PSNR vs astronaut (dB) |"
    rows = {}
    for line in README[README.index(head):].splitlines()[2:]:
        if not line.startswith("|"):
            break
        work, who, calls, sec, rate, p = (c.strip() for c in line.strip("|").split("|"))
        rows[work, who] = int(calls), float(sec), float(rate), None if p == "–" else float(p)
    works = sorted({w for w, _ in rows})
    assert set(works) == {"sr160", "sr320", "syn160", "syn320"}
    for w in works:
        (c0, s0, r0, p0), (c1, s1, r1, p1) = rows[w, "theirs"], rows[w, "ours"]
        assert abs(c1 / c0 - 1) < 0.05  # "calls per image within 5 % of theirs"
        assert p0 is None or abs(p1 - p0) < 0.15  # "PSNR within 0.15 dB"
        assert abs(r0 - 2 / s0) < 1e-3 and abs(r1 - 2 / s1) < 1e-3  # two images per run
        ratio = f"{s0 / s1:.2f}"  # images per CPU second, ours / theirs
        assert ratio in FLAT and (s1 > s0) == (w == "syn320"), w  # "at 320, where ours was slower"
    (c0, *_), (c1, *_) = rows["syn320", "theirs"], rows["syn320", "ours"]
    assert f"{100 * (c1 / c0 - 1):.0f} % of that is its extra calls" in FLAT
