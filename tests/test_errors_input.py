"""Bad input, second pass (issue 23): each row is (id, call, expected exception type, words the message must contain),
as in tests/test_errors.py. The classes: images on the wrong scale or of the wrong type, scalars where a pair or a list
is expected, counts and sizes of zero, bad constructor arguments, the wrong kind of model, files; and failed samples
that a statistic must not average into NaN."""
import atexit
import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_refused  # tests/conftest.py
import torch

from mslcp import data, metrics, nets, presets, pretrained, recipes, sampling, synthetic
from mslcp.multiscale import MultiScaleDenoiser
from mslcp.nets import BFCNN, ConditionalBFCNN
from mslcp.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

TMP = Path(tempfile.mkdtemp(prefix="mslcp-errors-input-"))
atexit.register(shutil.rmtree, TMP, True)
torch.manual_seed(0)
NET = BFCNN(width=4, depth=3, rf=5).eval()
COND = ConditionalBFCNN(width=4, depth=3, rf=5).eval()
MS = MultiScaleDenoiser(BFCNN(width=4, depth=3, rf=5), [ConditionalBFCNN(width=4, depth=3, rf=5)]).eval()
X = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # clean images in [0, 1]
nan = math.nan


def fit(data=X, **kw):
    kw = {"steps": 1, "batch_size": 2, "progress": False, **kw}
    return lambda: train(BFCNN(width=4, depth=3, rf=5), data, **kw)


def a_file(name, text="not an image"):
    (p := TMP / name).write_text(text)
    return p


def with_nan(x, rows):
    x = x.clone()
    x[rows] = nan
    return x


LIB_CASES = [
    # ---- one rule for images (data.check_images): refuse the wrong scale and integer images, with the fix
    ("train float 0..255", fit(X * 255), ValueError, ["data", "[0, 1] scale", "divide by 255"]),
    ("train int64 0..255", fit((X * 255).long()), ValueError, ["data", "int64", "x.float() / 255"]),
    ("train int32 test_data", fit(test_data=(X * 255).int()), ValueError, ["test_data", "int32", "/ 255"]),
    ("train float 0..255 test_data", fit(test_data=X * 255), ValueError, ["test_data", "divide by 255"]),
    ("train bool data", fit(X > 0.5), ValueError, ["data", "bool"]),
    ("train 0..65535", fit(X * 65535), ValueError, ["data", "divide by 65535"]),
    ("train low-pass on [-1, 1]", fit(2 * X - 1, level="low", levels=1), ValueError, ["data", "(x + 1) / 2"]),
    ("train numpy data", fit(X.numpy()), TypeError, ["data", "torch.from_numpy"]),
    ("train NaN data", fit(with_nan(X, 0)), ValueError, ["data", "NaN or inf"]),
    ("psnr uint8 vs float", lambda: metrics.psnr((X * 255).byte(), X), ValueError, ["psnr: x", "uint8", "/ 255"]),
    ("psnr float vs int64", lambda: metrics.psnr(X, (X * 255).long()), ValueError, ["psnr: ref", "int64"]),
    ("psnr uint8 pair, range 1", lambda: metrics.psnr((X * 255).byte(), (X * 255).byte()), ValueError,
     ["uint8", "data_range=255"]),
    ("psnr numpy", lambda: metrics.psnr(X.numpy(), X), TypeError, ["psnr: x", "torch.from_numpy"]),
    ("super_resolve int64 low", lambda: sampling.super_resolve(MS, torch.zeros(2, 1, 4, 4, dtype=torch.long)),
     ValueError, ["low", "int64", "/ 255"]),
    ("denoising_psnr uint8 x", lambda: metrics.denoising_psnr({"net": NET}, (X * 255).byte(), [0.1]), ValueError,
     ["x", "uint8"]),
    ("stopping_level uint8", lambda: sampling.stopping_level(NET, (X * 255).byte()), ValueError,
     ["images", "uint8", "/ 255"]),
    ("stopping_level 0..255", lambda: sampling.stopping_level(NET, X * 255), ValueError, ["images", "divide by 255"]),
    ("stopping_level NaN", lambda: sampling.stopping_level(NET, with_nan(X, 1)), ValueError, ["images", "NaN"]),
    ("stopping_level 3-D", lambda: sampling.stopping_level(NET, X[0]), ValueError, ["images", "(B,C,H,W)"]),
    ("stopping_level factor=0", lambda: sampling.stopping_level(NET, X, factor=0), ValueError, ["factor", "> 0"]),
    ("stopping_level minimum<0", lambda: sampling.stopping_level(NET, X, minimum=-1), ValueError, ["minimum"]),
    ("stopping_level NaN net", lambda: sampling.stopping_level(lambda y: y * nan, X), ValueError,
     ["denoiser returned NaN"]),
    ("check_images 1x255 list", lambda: data.check_images([[0, 255]], "x"), TypeError, ["x", "torch tensor", "list"]),
    ("net numpy input", lambda: NET(X.numpy()), TypeError, ["input", "torch.from_numpy"]),
    ("cond net numpy low", lambda: COND(X.numpy(), torch.rand(8, 3, 8, 8)), TypeError, ["low", "torch.from_numpy"]),
    # ---- failed samples: a statistic must not turn them into NaN; nothing left names the argument
    ("sample_distance all NaN", lambda: metrics.sample_distance(torch.full((4, 1, 8, 8), nan), X), ValueError,
     ["x", "every one of the 4 images", "NaN"]),
    ("sample_distance NaN data", lambda: metrics.sample_distance(X, with_nan(X, 2)), ValueError,
     ["data", "1 images with NaN", "of 8"]),
    ("sample_distance uint8", lambda: metrics.sample_distance((X * 255).byte(), X), ValueError, ["x", "uint8"]),
    # ---- scalars where a pair or a list is expected
    ("train sigma_range=0.1", fit(sigma_range=0.1), ValueError, ["sigma_range", "pair (low, high)", "0.1"]),
    ("train sigma_range triple", fit(sigma_range=(0, 0.5, 1)), ValueError, ["sigma_range", "pair"]),
    ("train sigma_range strings", fit(sigma_range=("0", "1")), ValueError, ["sigma_range", "finite numbers"]),
    ("train test_sigmas=0.1", fit(test_data=X, test_sigmas=0.1), ValueError, ["test_sigmas", "list", "[0.1]"]),
    ("train test_sigmas=[]", fit(test_data=X, test_sigmas=[]), ValueError, ["test_sigmas", "non-empty"]),
    ("train test_sigmas negative", fit(test_data=X, test_sigmas=[-0.1]), ValueError, ["test_sigmas", ">= 0"]),
    ("denoising_psnr sigmas=0.1", lambda: metrics.denoising_psnr({"net": NET}, X, 0.1), ValueError,
     ["sigmas", "list", "[sigma]"]),
    ("denoising_psnr sigmas<0", lambda: metrics.denoising_psnr({"net": NET}, X, [-0.1]), ValueError,
     ["sigmas", ">= 0"]),
    ("denoising_psnr sigmas=[]", lambda: metrics.denoising_psnr({"net": NET}, X, []), ValueError,
     ["sigmas", "non-empty"]),
    ("denoising_psnr models=net", lambda: metrics.denoising_psnr(NET, X, [0.1]), TypeError, ["models", "dict"]),
    ("recipe sigma_range=0.1", lambda: recipes.get("flat_rf5", sigma_range=0.1), ValueError,
     ["flat_rf5", "sigma_range", "pair"]),
    ("recipe test_sigmas=0.1", lambda: recipes.get("flat_rf5", test_sigmas=0.1), ValueError,
     ["flat_rf5", "test_sigmas", "[0.1]"]),
    ("recipe level0.sigma_range", lambda: recipes.get("multiscale_rf5", **{"level0.sigma_range": 0.05}), ValueError,
     ["multiscale_rf5", "sigma_range", "pair"]),
    ("recipe lr='fast'", lambda: recipes.get("flat_rf5", lr="fast"), ValueError, ["lr", "number"]),
    # ---- counts and sizes of zero, ratios and floats where ints are meant
    ("block_average(0)", lambda: sampling.block_average(0), ValueError, ["s (block size)", "positive int"]),
    ("block_average(2.5)", lambda: sampling.block_average(2.5), ValueError, ["s (block size)", "2.5"]),
    ("random_projection k=0.25", lambda: sampling.random_projection((1, 4, 4), 0.25), ValueError,
     ["k", "an int", "ratio"]),
    ("random_projection shape 0", lambda: sampling.random_projection((0, 4, 4), 1), ValueError,
     ["shape", "positive ints"]),
    ("synthetic.faces size=16.0", lambda: synthetic.faces(2, 16.0), ValueError, ["size", "an int", "16.0"]),
    ("synthetic.faces n=2.5", lambda: synthetic.faces(2.5, 16), ValueError, ["n must be an int"]),
    # ---- constructor arguments: refused when the net is built, not at its first call
    ("BFCNN width=0", lambda: BFCNN(width=0, depth=3, rf=5), ValueError, ["width", ">= 1", "0"]),
    ("BFCNN width=-4", lambda: BFCNN(width=-4, depth=3, rf=5), ValueError, ["width", "-4"]),
    ("BFCNN width=8.0", lambda: BFCNN(width=8.0, depth=3, rf=5), ValueError, ["width", "an int"]),
    ("BFCNN depth=1", lambda: BFCNN(width=4, depth=1, rf=3), ValueError, ["depth", ">= 2"]),
    ("BFCNN rf=5.0", lambda: BFCNN(width=4, depth=3, rf=5.0), ValueError, ["rf", "an int"]),
    ("BFCNN in_channels=0", lambda: BFCNN(in_channels=0, width=4, depth=3, rf=5), ValueError, ["in_channels"]),
    ("BFCNN bias='yes'", lambda: BFCNN(width=4, depth=3, rf=5, bias="yes"), ValueError, ["bias", "True or False"]),
    ("BFCNN kernel_sizes=3", lambda: BFCNN(width=4, kernel_sizes=3), ValueError, ["kernel_sizes", "list"]),
    ("BFCNN kernel_sizes even", lambda: BFCNN(width=4, kernel_sizes=[3, 2]), ValueError, ["kernel_sizes", "odd"]),
    ("ConditionalBFCNN channels=0", lambda: ConditionalBFCNN(channels=0), ValueError, ["channels", ">= 1"]),
    ("recipe net.width=0", lambda: recipes.get("flat_rf5", **{"net.width": 0}), ValueError,
     ["flat_rf5", "net.width", ">= 1"]),
    ("recipe net.depth=1", lambda: recipes.get("flat_rf5", **{"net.depth": 1}), ValueError, ["net.depth", ">= 2"]),
    ("recipe net.kernel_sizes=3", lambda: recipes.get("flat_rf5", **{"net.kernel_sizes": 3}), ValueError,
     ["net.kernel_sizes", "list"]),
    ("recipe low.net.width=-1", lambda: recipes.get("multiscale_rf5", **{"low.net.width": -1}), ValueError,
     ["net.width", "-1"]),
    # ---- the wrong kind of model
    ("synthesize a flat net", lambda: sampling.synthesize(NET, 2, size=8), TypeError,
     ["synthesize", "multi-scale", "BFCNN", "sample()"]),
    ("super_resolve a flat net", lambda: sampling.super_resolve(NET, torch.rand(2, 1, 4, 4)), TypeError,
     ["super_resolve", "multi-scale"]),
    ("flat net as a conditional", lambda: MultiScaleDenoiser(NET, [BFCNN(width=4, depth=3, rf=5)]), ValueError,
     ["conditionals[0]", "flat", "ConditionalBFCNN"]),
    ("conditionals not a list", lambda: MultiScaleDenoiser(NET, COND), TypeError, ["conditionals", "list", "wrap"]),
    ("conditional as the low-pass", lambda: MultiScaleDenoiser(COND, [COND]), ValueError, ["low", "flat"]),
    ("a function as a conditional", lambda: MultiScaleDenoiser(NET, [lambda c, y: y]), TypeError,
     ["conditionals[0]", "nn.Module"]),
    # ---- files
    ("save into a missing folder", lambda: pretrained.save(NET, TMP / "missing" / "net.safetensors"),
     FileNotFoundError, ["cannot save", "missing", "does not exist"]),
    ("save onto a folder", lambda: pretrained.save(NET, TMP), IsADirectoryError, ["cannot save", "is a folder"]),
    ("image_folder of a file", lambda: data.image_folder(a_file("one.png"), 8), RuntimeError,
     ["one.png", "is a file, not a folder"]),
    ("gray_image of a text file", lambda: data.gray_image(a_file("text.png")), RuntimeError,
     ["cannot read image", "text.png"]),
    ("gray_image of a missing file", lambda: data.gray_image(TMP / "none.png"), RuntimeError,
     ["cannot read image", "none.png"]),
    # ---- `x or default`: a zero or an empty value is refused, not read as "not given"
    ("receptive_field size=0", lambda: nets.receptive_field(NET, size=0), ValueError, ["size", ">= 3", "0"]),
    ("presets.get('')", lambda: presets.get(""), ValueError, ["unknown preset ''"]),
    ("recipes.get budget=''", lambda: recipes.get("flat_rf5", budget=""), ValueError, ["unknown budget ''"]),
]


@pytest.mark.parametrize("case", LIB_CASES, ids=[c[0] for c in LIB_CASES])
def test_bad_input(case):
    assert_refused(case)


def test_table_size():
    assert len(LIB_CASES) >= 60 and len({c[0] for c in LIB_CASES}) == len(LIB_CASES)


# ---- inputs that are accepted (the rule is no stricter than it says)

def test_the_rule_accepts_what_the_library_makes():
    data.check_images(X, "x")  # [0, 1]
    data.check_images(X * 1.2 - 0.1, "x")  # overshoot of resampling and sampling: within [-0.5, 1.5]
    data.check_images((X * 255).byte(), "x", uint8=True)  # uint8 where a function stores images
    data.check_images(X * 255, "x", kind="any")  # noisy images, coefficients: the dtype only
    pts = torch.randn(64, 2, 1, 1, generator=torch.Generator().manual_seed(0)) * 3  # chapter 1's points
    data.check_images(pts, "data", kind="examples")  # examples that are not images: signed values pass
    data.check_images(3 * X, "data", kind="examples")  # and non-negative ones up to 10 (coefficients)
    for bad, kind, fix in ((X * 255, "examples", "divide by 255"), (X + 1, "images", "rescale to [0, 1]"),
                           (3 * X, "images", "rescale to [0, 1]")):
        with pytest.raises(ValueError, match=r"\[0, 1\] scale") as e:
            data.check_images(bad, "x", kind=kind)
        assert fix in str(e.value)


def test_train_takes_uint8_and_points():
    # uint8 is a storage format of train (the CelebA recipes: 4x less memory), divided by 255; chapter 1 trains on
    # signed 2-D points (N, 2, 1, 1)
    for d in ((X * 255).round().byte(), torch.randn(16, 2, 1, 1)):
        net = BFCNN(in_channels=d.shape[1], out_channels=d.shape[1], width=4, kernel_sizes=[1, 1])
        h = train(net, d, steps=1, batch_size=2, progress=False, eval_every=1)
        assert len(h["loss"]) == 1 and math.isfinite(h["loss"][0])


def test_psnr_of_two_uint8_images_with_their_range():
    u = torch.full((2, 1, 4, 4), 100, dtype=torch.uint8)
    np.testing.assert_allclose(metrics.psnr(u + 5, u, data_range=255).numpy(), 20 * math.log10(255 / 5), rtol=1e-6)


def test_sample_distance_leaves_failed_samples_out():
    g = torch.Generator().manual_seed(1)
    x, ref = torch.rand(6, 1, 8, 8, generator=g), torch.rand(10, 1, 8, 8, generator=g)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        d = metrics.sample_distance(with_nan(x, [1, 4]), ref)
    assert any("2 of the 6 images" in str(m.message) for m in w)
    want = metrics.sample_distance(x[[0, 2, 3, 5]], ref)  # the same, computed on the finite images alone
    assert d == pytest.approx(want) and math.isfinite(d["total"])

