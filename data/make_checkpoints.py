"""Train the small checkpoints the book ships (data/checkpoints/NAME.safetensors), on synthetic faces, on a CPU.

    python data/make_checkpoints.py            # every recipe (about an hour on one idle CPU core)
    python data/make_checkpoints.py bf_small   # one recipe

Runs resume from runs/NAME.pt when interrupted. Afterwards, put the printed SHA-256 lines into
mslcp.pretrained.SHIPPED (the book checks them when it downloads a checkpoint in Colab).
"""
import sys
from pathlib import Path

import torch

from mslcp import data, hub, multiscale, nets, pretrained, train

HERE = Path(__file__).resolve().parent
SIZE, N_TRAIN, N_TEST = 32, 8192, 64  # 32x32 synthetic faces: the book's CPU preset


def faces():
    return data.synthetic_faces(N_TRAIN, SIZE, seed=0), data.synthetic_faces(N_TEST, SIZE, seed=1)


def flat(kwargs, steps, sigma_range, lr_end=None):
    def make(ckpt):
        x, x_test = faces()
        net = nets.BFCNN(**kwargs)
        train.train(net, x, steps=steps, batch_size=32, lr=1e-3, lr_end=lr_end, sigma_range=sigma_range,
                    test_data=x_test, eval_every=100, checkpoint=ckpt, checkpoint_every=100, seed=0)
        return net
    return make


def multiscale_small(ckpt, rf=5):
    """32x32 faces, J=2: a low-pass net on 8x8 (rf 13: nearly global; corner to corner needs 15) and rf-5 conditional
    nets per level. The low-pass net sees sigma/4 when the model denoises an image at sigma, but the whole range
    when Algorithm 2 draws x_J: it trains on log-uniform sigma in [0.001, 1]. (Measured with 6000 steps: uniform sigma
    gives 28.2 dB at sigma = 0.005, where the noisy input has 46 dB; log-uniform 36.8 dB, and 0.6 dB less at sigma = 1.)
    The details are small ("average" normalization: a noise sigma on the image is sigma/2^(j+1) on level j's details),
    so the conditional nets train on sigma in [0, 0.1] (a wider range leaves too few examples where the details
    are visible); bias-free nets extend beyond it (chapter 2)."""
    x, x_test = faces()
    if rf != 5:  # the other receptive fields share multiscale_rf5's low-pass net: only the conditionals differ
        return multiscale.MultiScaleDenoiser(pretrained.shipped("multiscale_rf5").low, conditionals(x, x_test, rf, ckpt))
    low = nets.BFCNN(width=32, depth=8, rf=13)
    train.train(low, multiscale.lowpass_data(x, 2), steps=6000, batch_size=64, lr_end=1e-5, sigma_range=(1e-3, 1.0),
                log_sigma=True, test_data=multiscale.lowpass_data(x_test, 2), eval_every=100,
                checkpoint=ckpt.with_suffix(".low.pt"), checkpoint_every=100, seed=0)
    return multiscale.MultiScaleDenoiser(low, conditionals(x, x_test, rf, ckpt))


def conditionals(x, x_test, rf, ckpt):
    conds = []
    for j in range(2):
        c = nets.ConditionalBFCNN(width=32, depth=8, rf=rf)
        train.train(c, multiscale.training_data(x, j), steps=3000, batch_size=64, lr_end=1e-5,
                    sigma_range=(0.0, 0.1), test_data=multiscale.training_data(x_test, j),
                    test_sigmas=(0.0125, 0.025, 0.05, 0.1), eval_every=100, checkpoint=ckpt.with_suffix(f".level{j}.pt"), checkpoint_every=100, seed=j + 1)
        conds.append(c)
    return conds


RECIPES = {  # name -> function(checkpoint path) -> trained model
    # chapter 2: the same net with and without biases, trained on a limited noise range (sigma <= 0.1 ~ 25/255)
    "bf_small": flat(dict(width=32, depth=8, rf=17), 700, (0.0, 0.1)),
    "biased_small": flat(dict(width=32, depth=8, rf=17, bias=True), 700, (0.0, 0.1)),
    # chapter 3: flat denoisers on the whole noise range, a small RF and one that covers the 32x32 image
    # (a cosine learning-rate decay to 1e-5: with a constant rate the nets stayed poor at small sigma)
    "flat_rf5": flat(dict(width=32, depth=8, rf=5), 4000, (0.0, 1.0), lr_end=1e-5),
    "flat_rf33": flat(dict(width=24, depth=16, rf=33), 5000, (0.0, 1.0), lr_end=1e-5),
    # chapter 4 and later: the multi-scale model of 32x32 faces
    "multiscale_rf5": multiscale_small,
    # chapter 5: equal-capacity families (depth 8, width 32, the same training budget as flat_rf5 / multiscale_rf5);
    # the receptive field is set by the kernel layout alone (nets.kernel_layout)
    "flat_rf9": flat(dict(width=32, depth=8, rf=9), 4000, (0.0, 1.0), lr_end=1e-5),
    "flat_rf13": flat(dict(width=32, depth=8, rf=13), 4000, (0.0, 1.0), lr_end=1e-5),
    "flat_rf17": flat(dict(width=32, depth=8, rf=17), 4000, (0.0, 1.0), lr_end=1e-5),
    "multiscale_rf9": lambda ckpt: multiscale_small(ckpt, rf=9),
    "multiscale_rf13": lambda ckpt: multiscale_small(ckpt, rf=13),
}

if __name__ == "__main__":
    for name in sys.argv[1:] or RECIPES:
        runs = HERE.parent / "runs"
        runs.mkdir(exist_ok=True)
        torch.manual_seed(0)  # the initial weights
        model = RECIPES[name](runs / f"{name}.pt")
        out = HERE / "checkpoints" / f"{name}.safetensors"
        pretrained.save(model, out)
        print(f'    "{name}": "{hub.sha256(out)}",')
