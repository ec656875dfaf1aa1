"""Bad and edge inputs across the public API, as a careless user would try them: each row is (id, call, expected
exception type, words the message must contain). The message must name the argument and what is allowed."""
import atexit
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_refused  # tests/conftest.py
import torch
from PIL import Image
from safetensors.torch import save_file

from mslcp import data, hub, pretrained
from mslcp.multiscale import MultiScaleDenoiser
from mslcp.nets import BFCNN, ConditionalBFCNN
from mslcp.sampling import inpainting, sample, super_resolve, synthesize
from mslcp.wavelets import idwt2

pytestmark = pytest.mark.usefixtures("one_thread")

TMP = Path(tempfile.mkdtemp(prefix="mslcp-errors-"))
atexit.register(shutil.rmtree, TMP, True)
torch.manual_seed(0)
NET = BFCNN(width=4, depth=3, rf=5).eval()
COND = ConditionalBFCNN(width=4, depth=3, rf=5).eval()
MS = MultiScaleDenoiser(BFCNN(width=4, depth=3, rf=5), [ConditionalBFCNN(width=4, depth=3, rf=5)]).eval()  # J = 1
SHAPE = (2, 1, 4, 4)
shrink = lambda y: 0.5 + 0.9 * (y - 0.5)  # a plain-function "denoiser"
nan, inf = math.nan, math.inf


def rand(*shape, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)


def _dir(name):
    d = TMP / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def truncated_jpeg():
    d = _dir("truncated")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "bad.jpg")
    raw = (d / "bad.jpg").read_bytes()
    (d / "bad.jpg").write_bytes(raw[:len(raw) // 2])
    return d


def celeba_folder(name, sizes, partition=None):
    """A CelebA-like folder: img_align_celeba/00000i.jpg of the given (W, H) sizes, optional partition text."""
    d = _dir(name)
    (d / "img_align_celeba").mkdir()
    for i, wh in enumerate(sizes, 1):
        Image.new("RGB", wh, (100, 100, 100)).save(d / "img_align_celeba" / f"{i:06d}.jpg")
    if partition is not None:
        (d / "list_eval_partition.txt").write_text(partition)
    return d


def checkpoint(name, state=None, meta=None):
    """A safetensors file with NET's weights (or `state`) and the given 'mslcp' metadata."""
    path = TMP / f"{name}.safetensors"
    save_file(state or NET.state_dict(), str(path), metadata={"mslcp": meta})
    return path


def nan_weights():
    sd = {k: v.clone() for k, v in NET.state_dict().items()}
    sd["conv_layers.0.weight"][0, 0, 0, 0] = nan
    return sd


def with_env(key, value, fn):
    """Run fn() with os.environ[key] = value (unset if None), restoring it afterwards."""
    old = os.environ.get(key)
    os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, str(value))
    try:
        return fn()
    finally:
        os.environ.pop(key, None) if old is None else os.environ.__setitem__(key, old)


def cache_is_file():
    (f := TMP / "cache-file").write_text("not a folder")
    return f


CASES = [
    # ---- sampling: noise levels, steps, step sizes
    ("sigma0=0", lambda: sample(shrink, SHAPE, sigma0=0), ValueError, ["sigma0", "> 0"]),
    ("sigma0=inf", lambda: sample(shrink, SHAPE, sigma0=inf), ValueError, ["sigma0", "finite"]),
    ("sigma0=nan", lambda: sample(shrink, SHAPE, sigma0=nan), ValueError, ["sigma0", "finite"]),
    ("sigma0='1'", lambda: sample(shrink, SHAPE, sigma0="1"), ValueError, ["sigma0", "number"]),
    ("sigma_final>sigma0", lambda: sample(shrink, SHAPE, sigma_final=2), ValueError,
     ["sigma_final", "< sigma0 = 1"]),
    ("sigma_final=0", lambda: sample(shrink, SHAPE, sigma_final=0), ValueError, ["sigma_final", "0 < sigma_final"]),
    ("sigma_final<0", lambda: sample(shrink, SHAPE, sigma_final=-0.1), ValueError, ["sigma_final"]),
    ("max_steps=inf", lambda: sample(shrink, SHAPE, max_steps=inf), ValueError, ["max_steps", "positive integer"]),
    ("max_steps=0", lambda: sample(shrink, SHAPE, max_steps=0), ValueError, ["max_steps", "positive integer"]),
    ("max_steps=2.5", lambda: sample(shrink, SHAPE, max_steps=2.5), ValueError, ["max_steps", "integer"]),
    ("h0=0", lambda: sample(shrink, SHAPE, h0=0), ValueError, ["h0", "0 < h0 <= 1"]),
    ("beta=1.5", lambda: sample(shrink, SHAPE, beta=1.5), ValueError, ["beta", "0 < beta <= 1"]),
    ("record_every=0", lambda: sample(shrink, SHAPE, record_every=0), ValueError, ["record_every", "positive"]),
    # ---- sampling: generator
    ("generator='abc'", lambda: sample(shrink, SHAPE, generator="abc"), TypeError,
     ["generator", "int seed", "torch.Generator"]),
    ("generator=1.7", lambda: sample(shrink, SHAPE, generator=1.7), TypeError, ["generator", "1.7"]),
    ("generator=True", lambda: sample(shrink, SHAPE, generator=True), TypeError, ["generator"]),
    ("generator list with a str", lambda: sample(shrink, SHAPE, generator=[1, "x"]), TypeError, ["generator"]),
    ("generator=-1", lambda: sample(shrink, SHAPE, generator=-1), ValueError, ["generator (seed)", "[0, 2**64)"]),
    ("3 generators, 2 images", lambda: sample(shrink, SHAPE, generator=[1, 2, 3]), ValueError,
     ["3 generators for 2 images"]),
    # ---- sampling: shape, measurements, mean, dtypes
    ("shape=(2,)", lambda: sample(shrink, (2,)), ValueError, ["shape", "length >= 2"]),
    ("shape with 0", lambda: sample(shrink, (0, 1, 4, 4)), ValueError, ["shape", "positive ints"]),
    ("shape with float", lambda: sample(shrink, (2, 1, 4.5, 4)), ValueError, ["shape", "positive ints"]),
    ("cond with NaN", lambda: sample(lambda c, y: y, SHAPE, cond=torch.full(SHAPE, nan)), ValueError,
     ["cond", "NaN or inf"]),
    ("cond uint8", lambda: sample(lambda c, y: y, SHAPE, cond=torch.zeros(SHAPE, dtype=torch.uint8)), ValueError,
     ["cond", "floating-point"]),
    ("cond rows", lambda: sample(lambda c, y: y, SHAPE, cond=torch.zeros(3, 1, 4, 4)), ValueError,
     ["cond has 3 rows for 2 images"]),
    ("m with inf", lambda: sample(shrink, SHAPE, measure=inpainting(torch.ones(4, 4, dtype=torch.bool)),
                                  m=torch.full((2, 16), inf)), ValueError, ["m contains", "NaN or inf"]),
    ("measure without m", lambda: sample(shrink, SHAPE, measure=inpainting(torch.ones(4, 4, dtype=torch.bool))),
     ValueError, ["measure", "measurements m"]),
    ("mean=nan", lambda: sample(shrink, SHAPE, mean=nan), ValueError, ["mean", "finite"]),
    ("mean wrong shape", lambda: sample(shrink, SHAPE, mean=torch.zeros(3, 3)), ValueError,
     ["mean", "broadcastable to (1, 4, 4)"]),
    ("dtype= vs net", lambda: sample(NET, SHAPE, dtype=torch.float64), ValueError,
     ["dtype=", "torch.float64", "the denoiser", "torch.float32"]),
    ("cond dtype vs net", lambda: sample(COND, (2, 3, 4, 4), cond=rand(2, 1, 4, 4, dtype=torch.float64)),
     ValueError, ["cond", "torch.float64", "the denoiser", "torch.float32"]),
    ("denoiser changes shape", lambda: sample(lambda y: y[..., :2], SHAPE), ValueError,
     ["denoiser returned shape"]),
    # ---- sampling: runs that fail or only look finished
    ("y drifts, sigma flat", lambda: sample(lambda y: y + 0.05, (1, 1, 4, 4), generator=0), RuntimeError,
     ["diverged", "drifted"]),
    ("NaN denoiser", lambda: sample(lambda y: y * nan, SHAPE, generator=0), RuntimeError,
     ["diverged for 2 of 2", "non-finite"]),
    # ---- synthesize / super_resolve
    ("size not divisible", lambda: synthesize(MS, 2, size=7), ValueError, ["size", "divisible by 2**levels = 2"]),
    ("size=0", lambda: synthesize(MS, 2, size=0), ValueError, ["size", "positive"]),
    ("size=(8,)", lambda: synthesize(MS, 2, size=(8,)), ValueError, ["size", "(H, W) pair"]),
    ("size='8'", lambda: synthesize(MS, 2, size="8"), ValueError, ["size"]),
    ("n=0", lambda: synthesize(MS, 0, size=8), ValueError, ["n must be a positive int"]),
    ("n=2.0", lambda: synthesize(MS, 2.0, size=8), ValueError, ["n must be a positive int"]),
    ("per-level list too long", lambda: synthesize(MS, 2, size=8, sigma0=[1, 1, 1]), ValueError,
     ["sigma0", "levels+1 = 2"]),
    ("per-level sigma_final", lambda: synthesize(MS, 2, size=8, sigma_final=[0.01, 2]), ValueError,
     ["sigma_final (level 1)", "< sigma0"]),
    ("synthesize max_steps=inf", lambda: synthesize(MS, 2, size=8, max_steps=inf), ValueError, ["max_steps"]),
    ("level=-1", lambda: super_resolve(MS, rand(2, 1, 4, 4), level=-1), ValueError, ["level", "0..1"]),
    ("level=5", lambda: super_resolve(MS, rand(2, 1, 4, 4), level=5), ValueError, ["level", "0..1"]),
    ("level=0.5", lambda: super_resolve(MS, rand(2, 1, 4, 4), level=0.5), ValueError, ["level", "an int"]),
    ("low with NaN", lambda: super_resolve(MS, torch.full((2, 1, 4, 4), nan)), ValueError, ["low", "NaN or inf"]),
    ("low uint8", lambda: super_resolve(MS, torch.zeros(2, 1, 4, 4, dtype=torch.uint8)), ValueError,
     ["low", "floating-point"]),
    ("low 3-D", lambda: super_resolve(MS, rand(1, 4, 4)), ValueError, ["low", "(B,C,h,w)"]),
    ("low generator", lambda: super_resolve(MS, rand(2, 1, 4, 4), generator="x"), TypeError, ["generator"]),
    # ---- nets, multi-scale, wavelets
    ("net float64 input", lambda: NET(rand(1, 1, 8, 8, dtype=torch.float64)), ValueError,
     ["input is torch.float64", "net is torch.float32"]),
    ("net uint8 input", lambda: NET(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)), ValueError, ["uint8", "/ 255"]),
    ("cond net uint8 low", lambda: COND(torch.full((1, 1, 8, 8), 200, dtype=torch.uint8), rand(1, 3, 8, 8)),
     ValueError, ["low must be a float", "uint8"]),
    ("cond net sizes", lambda: COND(rand(1, 1, 8, 8), rand(1, 3, 4, 4)), ValueError, ["low", "noisy_details", "(h,w)"]),
    ("cond net low channels", lambda: COND(rand(1, 2, 8, 8), rand(1, 3, 8, 8)), ValueError,
     ["low: expected shape (B,1,h,w)"]),
    ("cond net details channels", lambda: COND(rand(1, 1, 8, 8), rand(1, 2, 8, 8)), ValueError,
     ["noisy_details: expected shape (B,3,h,w)"]),
    ("cond net mixed dtypes", lambda: COND(rand(1, 1, 8, 8, dtype=torch.float64), rand(1, 3, 8, 8)), ValueError,
     ["low is torch.float64", "noisy_details is torch.float32"]),
    ("multiscale inf", lambda: MS(torch.full((1, 1, 8, 8), inf)), ValueError, ["NaN or inf"]),
    ("idwt2 mixed dtypes", lambda: idwt2(rand(1, 1, 4, 4), rand(1, 3, 4, 4, dtype=torch.float64)), ValueError,
     ["low is torch.float32", "details are torch.float64"]),
    # ---- pretrained.load
    ("load NaN weights", lambda: pretrained.load(checkpoint("nan", state=nan_weights(), meta=json.dumps(
        {"cls": "BFCNN", "config": NET.config}))), ValueError, ["non-finite", "conv_layers.0.weight"]),
    ("load bad JSON", lambda: pretrained.load(checkpoint("json", meta="{not json")), ValueError,
     ["metadata", "not usable", "JSONDecodeError"]),
    ("load unknown class", lambda: pretrained.load(checkpoint("cls", meta=json.dumps({"cls": "UNet", "config": {}}))),
     ValueError, ["metadata", "unknown architecture", "UNet"]),
    ("load bad config", lambda: pretrained.load(checkpoint("cfg", meta=json.dumps({"cls": "BFCNN", "config": {
        "depth": 1}}))), ValueError, ["metadata", "not usable", "depth"]),
    # ---- data
    ("truncated JPEG", lambda: data.image_folder(truncated_jpeg(), 8), RuntimeError,
     ["cannot read image", "bad.jpg"]),
    ("CelebA mixed sizes", lambda: data.celeba(celeba_folder("mixed", [(178, 218), (89, 109)]), "all"), ValueError,
     ["000002.jpg", "89x109", "178x218", "one size"]),
    ("CelebA bad partition", lambda: data.celeba(celeba_folder("part", [(89, 109)] * 2, "000001.jpg 0\n000002.jpg\n")),
     ValueError, ["list_eval_partition.txt, line 2", "<0|1|2>"]),
    ("CelebA partition split 7", lambda: data.celeba(celeba_folder("part7", [(89, 109)], "000001.jpg 7\n")),
     ValueError, ["line 1", "<0|1|2>"]),
    ("CelebA n=-1", lambda: data.celeba(celeba_folder("n", [(89, 109)] * 2), "all", n=-1), ValueError,
     ["n must be", ">= 0"]),
    ("image_folder n=-1", lambda: data.image_folder(celeba_folder("nf", [(8, 8)]), 8, n=-1), ValueError,
     ["n must be", ">= 0"]),
    ("image_folder size=0", lambda: data.image_folder(celeba_folder("s0", [(8, 8)]), 0), ValueError,
     ["size must be a positive int"]),
    ("image_folder size=8.5", lambda: data.image_folder(celeba_folder("s8", [(8, 8)]), 8.5), ValueError,
     ["size must be a positive int"]),
    # ---- download cache
    ("MSLCP_CACHE is a file", lambda: with_env("MSLCP_CACHE", cache_is_file(), lambda: hub.fetch(
        "http://invalid/x", hub.cache_dir() / "x")), RuntimeError, ["MSLCP_CACHE", "cache-file"]),
    ("MSLCP_CACHE below a file", lambda: with_env("MSLCP_CACHE", cache_is_file() / "sub", lambda: hub.fetch(
        "http://invalid/x", hub.cache_dir() / "x")), RuntimeError, ["MSLCP_CACHE", "writable"]),
    ("paper weights, bad cache", lambda: with_env("MSLCP_WEIGHTS", None, lambda: with_env(
        "MSLCP_CACHE", cache_is_file(), lambda: pretrained.paper_flat(5))), RuntimeError, ["MSLCP_CACHE"]),
]


def pytest_generate_tests(metafunc):  # at collection, so rows appended below are included
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES, ids=[c[0] for c in CASES])


def test_bad_input(case):
    assert_refused(case)


def test_table_size():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


# --- training cases: appended by the training owner ---
