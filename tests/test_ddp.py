"""train() under DistributedDataParallel: 2 CPU processes (gloo) with global batch B compute what one process with
batch B computes, BFBatchNorm2d statistics included."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mslcp import nets
from mslcp.train import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
KW = dict(steps=4, batch_size=8, patch_size=12, lr=3e-3, lr_end=1e-4, eval_every=2, checkpoint_every=3, seed=5,
          progress=False)


def make(kind):
    torch.manual_seed(0)
    if kind == "flat":
        return nets.BFCNN(width=8, depth=4, rf=7)
    return nets.ConditionalBFCNN(width=8, depth=4, rf=7)


def images():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 4, 4, generator=g)
    return torch.nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False)


def worker(rank, world, port, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for kind in ("flat", "conditional"):
            model = make(kind)
            h = train(model, images(), level=None if kind == "flat" else 0, test_data=images()[:2],
                      checkpoint=f"{folder}/{kind}.pt", **KW)
            torch.save({"state": model.state_dict(), "history": h}, f"{folder}/{kind}{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both kinds trained by 2 processes (one spawn: starting processes is the slow part)."""
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(2, free_port(), str(folder)), nprocs=2)
    return folder


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["flat", "conditional"])
def test_two_processes_equal_one(ranks, kind):
    ref = make(kind)
    h = train(ref, images(), level=None if kind == "flat" else 0, test_data=images()[:2], **KW)
    r0, r1 = (torch.load(ranks / f"{kind}{r}.pt", weights_only=True) for r in (0, 1))
    worst = 0.0
    for k, p in ref.state_dict().items():
        for r in (r0, r1):
            worst = max(worst, ((r["state"][k] - p).norm() / p.norm()).item())
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # every rank holds the same weights and running_sd
    print(f"max relative difference, 2 ranks vs 1 process: {worst:.2e}")
    assert worst < 1e-5
    assert r0["history"]["loss"] == pytest.approx(h["loss"], rel=1e-5)  # the loss of the whole batch
    assert r0["history"]["test_psnr"] == [pytest.approx(p, rel=1e-5) for p in h["test_psnr"]]  # rank 0 evaluates
    assert r1["history"]["test_psnr"] == []
    ck = torch.load(ranks / f"{kind}.pt", weights_only=True)  # written by rank 0
    assert ck["step"] == 4 and torch.equal(ck["model"]["conv_layers.0.weight"], r0["state"]["conv_layers.0.weight"])
