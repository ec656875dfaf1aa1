"""The benchmark scripts run, and count what they claim to count (tiny settings)."""
import argparse
import os
import subprocess
import sys

import pytest
import quality_per_call  # benchmarks/, on the path by tests/conftest.py
import torch
import train_throughput
from conftest import BENCH

from mslcp import data, nets, pretrained

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_train_flops_of_the_paper_net():
    # 21 layers of 3x3: 1 -> 64, 19 x (64 -> 64), 64 -> 1; forward 2 k^2 c_in c_out per pixel, training 3x that
    net = nets.BFCNN(width=64, depth=21, rf=43)
    per_pixel = 2 * 9 * (64 + 19 * 64 * 64 + 64)
    assert train_throughput.train_flops(net, 40) == 3 * 40 * 40 * per_pixel


def test_quality_per_call_measure():
    model = pretrained.shipped("multiscale_rf5")
    reference = data.synthetic_faces(64, 32, seed=0)
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
