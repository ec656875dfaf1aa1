import sys
from pathlib import Path

import pytest
import torch

from mslcp import data

BENCH = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))  # the benchmark scripts, importable by the tests that check them

# the half-resolution CelebA copy beside the checkout (data.HALFRES): the real-face tests need it
HALFRES = (data.HALFRES / "img_align_celeba").is_dir()
needs_halfres = pytest.mark.skipif(not HALFRES, reason=f"the half-resolution CelebA copy is not in {data.HALFRES}")


@pytest.fixture
def one_thread():
    """Run a test on one thread: tiny nets on a shared 2-core machine lose 10-20x to OpenMP threads waiting on
    each other. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
