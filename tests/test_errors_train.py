"""Bad input to training gets a clear error: each row is (call, exception type, words the message must contain).

TRAIN_CASES continues the table CASES of tests/test_errors.py (same row format)."""
import pytest
import torch

from mslcp import nets, presets, recipes
from mslcp.train import train

X = torch.rand(8, 1, 16, 16)


def fit(**kw):
    kw = {"steps": 1, "batch_size": 2, "progress": False, **kw}
    return lambda: train(nets.BFCNN(width=4, depth=3, rf=5), X, **kw)


TRAIN_CASES = [
    (fit(steps=-1), ValueError, ["steps", ">= 0", "-1"]),
    (fit(steps=2.5), ValueError, ["steps", "int"]),
    (fit(batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    (fit(patch_size=0), ValueError, ["patch_size", ">= 1"]),
    (fit(eval_every=0), ValueError, ["eval_every", ">= 1"]),
    (fit(checkpoint_every=0), ValueError, ["checkpoint_every", ">= 1"]),
    (fit(patch_size=20), ValueError, ["patch_size", "at most", "16x16"]),
    (fit(sigma_range=(0.5, 0.1)), ValueError, ["sigma_range", "low <= high"]),
    (fit(lr=0), ValueError, ["lr > 0"]),
    (fit(level="high"), ValueError, ["level", "None", "'low'", "j >= 0"]),
    (fit(level="low", levels=0), ValueError, ["levels", ">= 1"]),
    (fit(level=0), ValueError, ["level=0", "conditional", "4C"]),
    (fit(level="low", levels=5), ValueError, ["not divisible", "32"]),
    (fit(scale=0), TypeError, ["unknown settings ['scale']", "`level`", "choose from", "steps"]),
    (lambda: presets.get("cpu", n_test=0), ValueError, ["n_test", ">= 1"]),
    (lambda: presets.get("cpu", h0=-1.0), ValueError, ["h0", "0 < h0 <= 1", "-1.0"]),
    (lambda: presets.get("cpu", steps=-5), ValueError, ["steps", "not a field", "n_test"]),
    (lambda: presets.get("cpu", paper_h0=0), ValueError, ["paper_h0", "0 < paper_h0 <= 1"]),
    (lambda: presets.get("cpu", sr_samples=0), ValueError, ["sr_samples", ">= 1"]),
    (lambda: presets.get("cpu", assignment=dict(steps=3)), ValueError, ["assignment", "width, depth, rfs"]),
    (lambda: recipes.get("nope"), ValueError, ["unknown recipe", "bf_small"]),
    (lambda: recipes.get("bf_small", steps=-5), ValueError, ["steps", ">= 0"]),
    (lambda: recipes.get("bf_small", stepz=5), ValueError, ["stepz", "steps"]),
    (lambda: recipes.get("bf_small", budget="tpu"), ValueError, ["budget", "colab"]),
    (lambda: recipes.get("bf_small", **{"low.steps": 2}), ValueError, ["low", "multi-scale"]),
]


@pytest.mark.parametrize("call, kind, words", TRAIN_CASES)
def test_bad_input(call, kind, words):
    with pytest.raises(kind) as e:
        call()
    for w in words:
        assert w in str(e.value), (w, str(e.value))
