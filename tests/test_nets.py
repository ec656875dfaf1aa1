import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mslcp import nets
from mslcp.nets import BFBatchNorm2d, BFCNN, ConditionalBFCNN, kernel_layout, receptive_field

WEIGHTS = os.environ.get("MSLCP_WEIGHTS")  # the authors' weights (.ci/setup sets it)


def randomize(net, seed=0):
    """Non-trivial eval-mode statistics and gains (and biases for the bias=True net), float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith(("running_sd", "running_var")):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
            elif name.endswith(("gammas", "bias", "running_mean")) or ("BN_layers" in name and "weight" in name):
                t.copy_(torch.randn(t.shape, generator=g))
    return net.double().eval()


def test_bf_batchnorm_train_and_eval_match_numpy():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1) + 1.0
    bn = BFBatchNorm2d(3).double()
    with torch.no_grad():
        bn.gammas.copy_(torch.tensor([0.3, -1.0, 2.0]).view(1, 3, 1, 1))
    out = bn.train()(x)
    xn, gam = x.numpy(), bn.gammas.detach().numpy()
    sd = np.sqrt(((xn - xn.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out.detach().numpy(), xn / sd * gam, rtol=1e-12)
    np.testing.assert_allclose(bn.running_sd.numpy(), 0.9 * 1.0 + 0.1 * sd, rtol=1e-12)
    np.testing.assert_allclose(bn.eval()(x).detach().numpy(), xn / (0.9 + 0.1 * sd) * gam, rtol=1e-12)
    # channels_last input gives the same result
    torch.testing.assert_close(bn.train()(x.to(memory_format=torch.channels_last)), bn.train()(x))


def test_no_bias_anywhere_in_bias_free_net():
    names = [n for n, _ in BFCNN(width=8, depth=5, rf=7).named_parameters()]
    names += [n for n, _ in ConditionalBFCNN(width=8, depth=5, rf=7).named_parameters()]
    assert names and not [n for n in names if "bias" in n]
    assert any("bias" in n for n, _ in BFCNN(width=8, depth=5, rf=7, bias=True).named_parameters())


@pytest.mark.parametrize("bias", [False, True])
def test_shapes_and_channels_last(bias):
    net = BFCNN(width=8, depth=5, rf=7, bias=bias).eval()
    y = torch.rand(2, 1, 12, 10)
    assert net(y).shape == net.residual(y).shape == (2, 1, 12, 10)
    torch.testing.assert_close(net(y.to(memory_format=torch.channels_last)), net(y))
    cond = ConditionalBFCNN(channels=2, width=8, depth=4, rf=5, bias=bias)
    assert cond.in_channels == 8 and cond.out_channels == 6
    assert cond(torch.rand(3, 2, 6, 8), torch.randn(3, 6, 6, 8)).shape == (3, 6, 6, 8)
    net.train()(y).sum().backward()  # train mode runs and backpropagates
    assert net.conv_layers[0].weight.grad is not None


@pytest.mark.parametrize("alpha", [0.01, 0.7, 3.0, 250.0])
def test_positive_homogeneity_bias_free(alpha):
    net = randomize(BFCNN(width=8, depth=6, rf=9))
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(net(alpha * y), alpha * net(y), rtol=1e-10, atol=1e-12)
    cond = randomize(ConditionalBFCNN(width=8, depth=5, rf=7))
    low, det = torch.rand(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(cond(alpha * low, alpha * det), alpha * cond(low, det), rtol=1e-10, atol=1e-12)


def test_bias_net_is_not_homogeneous():
    net = randomize(BFCNN(width=8, depth=6, rf=9, bias=True))
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    err = (net(3.0 * y) - 3.0 * net(y)).abs().max() / (3.0 * net(y)).abs().max()
    assert err > 1e-2


def test_jacobian_linearity():
    """D(y) = J(y) y for the bias-free net (piecewise linear and homogeneous), not for the net with biases."""
    y = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    for bias in (False, True):
        net = randomize(BFCNN(width=8, depth=5, rf=7, bias=bias))
        J = torch.autograd.functional.jacobian(net, y).reshape(36, 36)
        gap = (J @ y.flatten() - net(y).flatten()).abs().max()
        assert (gap < 1e-10) if not bias else (gap > 1e-3)


def test_determinism_with_seed():
    torch.manual_seed(3)
    a = BFCNN(width=8, depth=5, rf=7)
    torch.manual_seed(3)
    b = BFCNN(width=8, depth=5, rf=7)
    c = BFCNN(width=8, depth=5, rf=7)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.conv_layers[1].weight, c.conv_layers[1].weight)
    y = torch.rand(2, 1, 8, 8)
    assert torch.equal(a.eval()(y), b.eval()(y))


@pytest.mark.parametrize("depth,rf", [(2, 3), (2, 5), (3, 3), (5, 7), (6, 9), (7, 11), (21, 5), (21, 9), (21, 13),
                                      (21, 43)])
def test_receptive_field_measured_equals_declared(depth, rf):
    net = BFCNN(width=8, depth=depth, rf=rf)
    ks = net.config["kernel_sizes"]
    assert len(ks) == depth and ks.count(3) == (rf - 1) // 2 and ks[0] == 3 and (rf == 3 or ks[-1] == 3)
    assert net.rf == rf
    assert receptive_field(net) == rf


def test_receptive_field_conditional_and_explicit_layout():
    assert receptive_field(ConditionalBFCNN(width=8, depth=7, rf=9)) == 9
    net = BFCNN(width=8, kernel_sizes=[3, 1, 1, 3, 1, 3])
    assert net.rf == 7 and receptive_field(net, size=21) == 7
    with pytest.raises(RuntimeError, match="larger size"):
        receptive_field(net, size=7)


def test_layout_matches_paper_where_even():
    # the authors' 21-layer layouts for RF 5, 13, 23, 43 (RF 9 is 0,8,16,20 there; ours spreads 0,7,13,20)
    assert kernel_layout(21, 5) == [3] + [1] * 19 + [3]
    assert [i for i, k in enumerate(kernel_layout(21, 13)) if k == 3] == [0, 4, 8, 12, 16, 20]
    assert kernel_layout(21, 23) == [3, 1] * 10 + [3] and kernel_layout(21, 43) == [3] * 21


@pytest.mark.parametrize("depth,rf", [(21, 10), (21, 1), (21, 45), (5, 13), (1, 3)])
def test_unreachable_rf_errors(depth, rf):
    with pytest.raises(ValueError, match="rf|depth") as e:
        BFCNN(depth=depth, rf=rf)
    if depth > 1:
        assert str(1 + 2 * depth) in str(e.value)  # the message gives the reachable range


def test_bad_inputs():
    net = BFCNN(width=8, depth=3, rf=5)
    with pytest.raises(ValueError, match="channels|shape"):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        net(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        BFCNN(2, 1, width=8, depth=3, rf=5)(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="kernel_sizes"):
        BFCNN(kernel_sizes=[3, 2, 3])
    cond = ConditionalBFCNN(width=8, depth=3, rf=5)
    with pytest.raises(ValueError, match="noisy_details: expected shape"):
        cond(torch.rand(1, 1, 8, 8), torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="low: expected shape"):
        cond(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 8))


def test_from_state_dict_roundtrip_and_config():
    torch.manual_seed(0)
    a = ConditionalBFCNN(width=8, depth=5, rf=7)
    sd = {"module." + k: v for k, v in a.state_dict().items()}
    b = ConditionalBFCNN.from_state_dict(sd)
    assert b.config == a.config and type(b)(**b.config).config == a.config
    low, det = torch.rand(1, 1, 8, 8), torch.randn(1, 3, 8, 8)
    assert torch.equal(a.eval()(low, det), b.eval()(low, det))
    assert isinstance(BFCNN.from_state_dict(BFCNN(width=4, depth=3, rf=5, bias=True).state_dict()).BN_layers[0],
                      torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="4C"):
        ConditionalBFCNN.from_state_dict(BFCNN(width=4, depth=3, rf=5).state_dict())


def test_load_authors_state_dicts_strict():
    files = sorted(Path(WEIGHTS).glob("denoisers/*/*/*/model.pt")) if WEIGHTS else []
    if not files:
        pytest.skip(f"authors' reference weights not found under MSLCP_WEIGHTS={WEIGHTS!r}")
    for f in files:
        sd = torch.load(f, map_location="cpu", weights_only=True)
        low, flat = "_low" in f.parent.name, "/flat/" in f.as_posix()
        cls = BFCNN if (low or flat) else ConditionalBFCNN
        net = cls.from_state_dict(sd).eval()
        assert set(net.state_dict()) == {k.removeprefix("module.") for k in sd}
        assert len(net.conv_layers) == (20 if low else 21) and len(net.BN_layers) == len(net.conv_layers) - 2
        if not low:  # folder name says the RF
            rf = int(f.parent.name.split("RF_")[1].split("x")[0])
            assert net.rf == rf and (rf == 9 or net.config["kernel_sizes"] == kernel_layout(21, rf))
        else:
            assert net.config["kernel_sizes"] == [3] * 20 and net.in_channels == net.out_channels == 1
        if not (low or flat):
            assert net.channels == 1
    # a loaded flat net measures its declared RF
    net = BFCNN.from_state_dict(torch.load(files[0], map_location="cpu", weights_only=True))
    if net.rf <= 13:
        assert receptive_field(net) == net.rf


def test_nan_batch_keeps_running_statistics():
    """One train-mode pass with a NaN pixel: that batch's output is NaN, but running_sd keeps its finite values, so
    later eval outputs are unaffected (every channel's batch sd is NaN once the conv spreads the NaN)."""
    torch.manual_seed(0)
    net = BFCNN(width=8, depth=4, rf=7)
    y = torch.rand(4, 1, 12, 12)
    net.train()(y)
    before = [bn.running_sd.clone() for bn in net.BN_layers]
    ref = net.eval()(y)
    bad = y.clone()
    bad[0, 0, 5, 5] = float("nan")
    assert torch.isnan(net.train()(bad)).any()
    assert all(torch.equal(bn.running_sd, b) for bn, b in zip(net.BN_layers, before))
    torch.testing.assert_close(net.eval()(y), ref, rtol=0, atol=0)
    bn = BFBatchNorm2d(2)  # a NaN in channel 1 only: channel 0 is updated as usual, channel 1 kept
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    x[0, 1, 0, 0] = float("nan")
    bn.double().train()(x)
    sd0 = torch.sqrt(x[:, 0].var(unbiased=False) + bn.eps)
    torch.testing.assert_close(bn.running_sd.flatten(), torch.stack([0.9 + 0.1 * sd0, torch.tensor(1.0).double()]))


def test_train_flops_and_parameter_count_of_the_paper_net():
    # 21 layers of 3x3: 1 -> 64, 19 x (64 -> 64), 64 -> 1; forward 2 k^2 c_in c_out per pixel, training 3x that
    net = nets.BFCNN(width=64, depth=21, rf=43)
    per_pixel = 2 * 9 * (64 + 19 * 64 * 64 + 64)
    assert nets.train_flops(net, 40) == 3 * 40 * 40 * per_pixel
    # the conv weights above (k^2 c_in c_out each, no biases) and one gain per channel of the 19 batch norms
    assert nets.parameter_count(net) == per_pixel // 2 + 19 * 64
    cond = nets.ConditionalBFCNN(width=8, depth=3, rf=5)  # kernels 3, 1, 3: 4 -> 8 -> 8 -> 3 channels, one norm
    assert nets.parameter_count(cond) == 9 * 4 * 8 + 8 * 8 + 9 * 8 * 3 + 8
