import math
import warnings

import pytest
import torch
from torch import nn

from mslcp import multiscale
from mslcp.train import TrainConfig, _quadratic_sigmas, _sigmas, get_batch, learning_rate, throughput, train


class Flat(nn.Module):
    """Stand-in bias-free denoiser: y - net(y)."""

    def __init__(self, c=1, width=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.in_channels = self.out_channels = c
        self.net = nn.Sequential(nn.Conv2d(c, width, 3, padding=1, bias=False), nn.ReLU(),
                                 nn.Conv2d(width, c, 3, padding=1, bias=False))

    def forward(self, y):
        return y - self.net(y)


class Cond(nn.Module):
    """Stand-in conditional denoiser: called (low, noisy_details)."""

    def __init__(self, c=1, width=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.in_channels, self.out_channels = 4 * c, 3 * c
        self.net = nn.Sequential(nn.Conv2d(4 * c, width, 3, padding=1, bias=False), nn.ReLU(),
                                 nn.Conv2d(width, 3 * c, 3, padding=1, bias=False))

    def forward(self, low, noisy):
        return noisy - self.net(torch.cat([low, noisy], 1))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def smooth_data(n=16, c=1, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size // 4, size // 4, generator=g)
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Interrupt(Exception):
    pass


def interrupt_at(model, step):
    """Make the model raise in its training forward pass of the given (1-based) step, as a killed run would."""
    calls = [0]

    def hook(module, args):
        if module.training:
            calls[0] += 1
            if calls[0] == step:
                raise Interrupt
    return model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("kind", ["flat", "cond"])
def test_resume_is_bit_identical(tmp_path, kind):
    make = Flat if kind == "flat" else Cond
    data = smooth_data(c=make().in_channels)
    # with a decaying learning rate: the resumed run must pick up the schedule where it stopped
    kw = dict(batch_size=4, patch_size=8, lr=3e-3, lr_end=1e-4, eval_every=4, checkpoint_every=3, progress=False,
              test_data=data[:3], seed=7)
    a = make(seed=1)
    ha = train(a, data, steps=14, checkpoint=tmp_path / "a.pt", **kw)
    b = make(seed=1)
    interrupt_at(b, 8)  # killed during step 8: the last checkpoint is that of step 6
    with pytest.raises(Interrupt):
        train(b, data, steps=14, checkpoint=tmp_path / "b.pt", **kw)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 6
    b = make(seed=2)  # a fresh instance with other initial weights: everything comes from the checkpoint
    hb = train(b, data, steps=14, checkpoint=tmp_path / "b.pt", **kw)
    assert not a.training and not b.training
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    assert ha == hb and ha["step"] == [4, 8, 12, 14] and len(ha["test_psnr"][0]) == 4
    # the checkpoint loads with weights_only=True and holds the final state
    ck = torch.load(tmp_path / "b.pt", weights_only=True)
    assert ck["step"] == 14 and torch.equal(ck["model"]["net.0.weight"], a.net[0].weight)
    # already trained: no training, weights restored from the checkpoint, same history
    c = make(seed=3)
    assert train(c, data, steps=14, checkpoint=tmp_path / "b.pt", **kw) == hb
    assert torch.equal(c.net[0].weight, a.net[0].weight)


def test_cosine_learning_rate_matches_torch_scheduler(tmp_path):
    # independent reference: torch's CosineAnnealingLR over steps - 1 intervals, eta_min = lr_end
    steps, lr, lr_end = 11, 2e-3, 1e-4
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - 1, eta_min=lr_end)
    for step in range(steps):
        assert learning_rate(step, steps, lr, lr_end) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    assert learning_rate(5, steps, lr) == lr  # no lr_end: constant
    # train() applies it: the optimizer saved at the end holds the rate of the last step, lr_end
    data = smooth_data()
    kw = dict(batch_size=4, patch_size=8, lr=lr, lr_end=lr_end, checkpoint_every=4, progress=False)
    train(Flat(), data, steps=4, checkpoint=tmp_path / "a.pt", **kw)
    last = torch.load(tmp_path / "a.pt", weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    assert last == pytest.approx(learning_rate(3, 4, lr, lr_end)) and last == pytest.approx(lr_end)
    with pytest.raises(ValueError, match="lr_end"):
        train(Flat(), data, steps=2, batch_size=4, lr=1e-3, lr_end=1e-2, progress=False)


def test_noise_levels_uniform_and_log_uniform():
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = _sigmas(u, 0.1, 0.5, False)
    assert s.min() >= 0.1 and s.max() <= 0.5 and abs(s.mean() - 0.3) < 1e-3  # U(0.1, 0.5): mean 0.3
    s = _sigmas(u, 1e-3, 1.0, True)
    a, b = math.log(1e-3), 0.0  # log-uniform: log s ~ U(a, b), so P(s < 0.01) = 1/3 and the mean is (1 - 1e-3)/(b - a)
    assert s.min() >= 1e-3 and s.max() <= 1.0
    assert abs(float((s < 0.01).double().mean()) - 1 / 3) < 5e-3
    assert abs(float(s.log().mean()) - (a + b) / 2) < 0.02 and abs(float(s.log().var()) - (b - a) ** 2 / 12) < 0.05
    assert abs(float(s.mean()) - (1 - 1e-3) / (b - a)) < 2e-3
    with pytest.raises(ValueError, match="low > 0"):
        train(Flat(), smooth_data(), steps=1, batch_size=2, log_sigma=True, progress=False)


def test_quadratic_noise_levels_are_the_released_draw():
    # the authors' code/dataloader_func.py, add_noise_torch(mode="B", quadratic=True) with noise_level_range
    # [0, 255]: std = torch.randint(0, 255)/255, then std**2. Closed form: sigma = (k/255)^2, k uniform in 0..254,
    # so P(sigma <= (k/255)^2) = (k + 1)/255, the median is (127/255)^2 and the density is about 1/(2 sqrt(sigma))
    n = 255 * 2000
    u = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = _quadratic_sigmas(u, 0.0, 1.0)
    k = 255 * s.sqrt()
    assert torch.allclose(k, k.round(), atol=1e-9) and k.min() == 0 and k.max() == 254
    counts = torch.bincount(k.round().long(), minlength=255).double()
    chi2 = float(((counts - n / 255) ** 2 / (n / 255)).sum())  # 254 degrees of freedom: mean 254, sd 22.5
    assert chi2 < 254 + 5 * 22.5
    grid = ((torch.arange(255, dtype=torch.float64) + 0.5) / 255) ** 2  # between the atoms (k/255)^2
    ecdf = torch.searchsorted(s.sort().values, grid, right=True).double() / n
    exact = (torch.arange(255, dtype=torch.float64) + 1) / 255
    assert float((ecdf - exact).abs().max()) < 1.63 / n ** 0.5  # Kolmogorov-Smirnov at the 1% level
    assert float((ecdf - grid.sqrt()).abs().max()) < 1 / 255 + 1.63 / n ** 0.5  # P(sigma <= x) ~ sqrt(x)
    assert float(s.median()) == pytest.approx((127 / 255) ** 2)
    ref = (torch.randint(0, 255, (n,), generator=torch.Generator().manual_seed(1)).double() / 255) ** 2
    assert float((s.sort().values - ref.sort().values).abs().max()) <= (1 / 255) * 2  # quantiles agree
    # another range: k from round(255 sqrt(lo)) to round(255 sqrt(hi)) - 1; equal ends give that one value
    s = _quadratic_sigmas(u, 0.01, 0.25)
    assert {round(v) for v in (255 * s.sqrt()).tolist()} == set(range(26, 128))
    assert torch.equal(_quadratic_sigmas(u[:5], 0.25, 0.25), torch.full((5,), (128 / 255) ** 2, dtype=u.dtype))


def sigmas_seen(**kw):
    """The σ of every training example of 10 steps, (steps * batch,)."""
    config = TrainConfig(steps=10, **kw)
    return torch.cat([get_batch(torch.zeros(8, 1, 16, 16), config, step)[2].flatten() for step in range(10)])


def test_training_draws_quadratic_sigma():
    sd = sigmas_seen(batch_size=50, quadratic_sigma=True)  # median 0.25, mean 1/3 (not 0.5)
    assert 0.2 < sd.median() < 0.3 and 0.29 < sd.mean() < 0.38 and float((sd < 0.05).double().mean()) > 0.15
    with pytest.raises(ValueError, match="log_sigma and quadratic_sigma must be True or False, two ways"):
        train(Flat(), smooth_data(), steps=1, batch_size=2, sigma_range=(0.1, 1), log_sigma=True,
              quadratic_sigma=True, progress=False)


def test_loss_goes_down_and_psnr_goes_up():
    data = smooth_data(n=32, size=16)
    h = train(Flat(), data, steps=150, batch_size=16, patch_size=12, lr=1e-2, eval_every=50,
              test_data=smooth_data(n=4, size=16, seed=1), test_sigmas=(0.1, 0.3), progress=False)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    first, last = h["test_psnr"][0], h["test_psnr"][-1]
    assert all(b > a for a, b in zip(first, last))
    assert last[0] > 20 + 1 and last[1] > 10.5 + 1  # better than the noisy input (20 and 10.5 dB)


def test_uint8_data_equals_float_data():
    u = (smooth_data() * 255).round().to(torch.uint8)
    a, b = Flat(), Flat()
    kw = dict(steps=5, batch_size=4, patch_size=8, progress=False)
    train(a, u, **kw)
    train(b, u.float() / 255, **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_noise_on_details_only_and_blind_sigma():
    n = 8
    low = (torch.arange(n, dtype=torch.float32) / n).view(n, 1, 1, 1).expand(n, 1, 6, 6)
    data = torch.cat([low, low, 2 * low, 3 * low], 1)  # details = (1, 2, 3) x low
    for step in range(2):  # σ = 0: the model sees the clean details, and the clean condition
        x, noisy, sigma = get_batch(data, TrainConfig(steps=2, batch_size=4, sigma_range=(0.0, 0.0)), step, 3)
        assert torch.equal(noisy, x[:, 1:])
        assert torch.equal(noisy, x[:, :1] * torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1))
        assert torch.equal(sigma, torch.zeros(4, 1, 1, 1))
    for step in range(2):
        x, noisy, sigma = get_batch(data, TrainConfig(steps=2, batch_size=4, sigma_range=(0.5, 0.5)), step, 3)
        cond = x[:, :1]
        assert (cond == cond[:, :, :1, :1]).all() and ((cond * n) == (cond * n).round()).all()
        assert 0.3 < (noisy - 2 * cond).std() < 0.7 and (sigma == 0.5).all()

    sd = sigmas_seen(batch_size=20)  # σ ~ U(0, 1)
    assert sd.min() < 0.1 and sd.max() > 0.9 and 0.4 < sd.mean() < 0.6


def test_batches_are_a_function_of_the_seed_and_the_step():
    data = smooth_data(n=8, size=16)
    c = TrainConfig(steps=4, batch_size=6, patch_size=8, seed=3)
    a, b = get_batch(data, c, 2), get_batch(data, c, 2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # pure: no hidden generator state
    assert not torch.equal(a[0], get_batch(data, c, 3)[0])
    assert not torch.equal(a[0], get_batch(data, TrainConfig(steps=4, batch_size=6, patch_size=8, seed=4), 2)[0])
    assert a[0].shape == (6, 1, 8, 8) and a[1].shape == (6, 1, 8, 8) and a[2].shape == (6, 1, 1, 1)
    for x in a[0]:  # every example is a crop of an image
        assert any((data[:, :, i:i + 8, j:j + 8] == x).flatten(1).all(1).any() for i in range(9) for j in range(9))
    # a process of a distributed run gets its slice of the whole batch
    part = get_batch(data, c, 2, part=slice(2, 4))
    assert all(torch.equal(p, q[2:4]) for p, q in zip(part, a))
    # the model's layout: a conditional model of level j sees [x_{j+1}, x̄_j], noise on x̄_j only
    x, noisy, sigma = get_batch(data, TrainConfig(steps=1, batch_size=4, level=1, sigma_range=(0.0, 0.0)), 0)
    assert x.shape == (4, 4, 4, 4) and torch.equal(noisy, x[:, 1:])


def test_errors(tmp_path):
    data = smooth_data()
    with pytest.raises(ValueError, match="in_channels=4"):
        train(Cond(), data, steps=1, progress=False)
    bad = data.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        train(Flat(), bad, steps=1, progress=False)
    with pytest.raises(ValueError, match="patch_size"):
        train(Flat(), data, steps=1, patch_size=20, progress=False)
    m = Flat()
    with torch.no_grad():
        m.net[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="loss is nan"):
        train(m, data, steps=3, batch_size=2, progress=False)
    train(Flat(), data, steps=2, batch_size=2, checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(RuntimeError, match="(?s)does not match the model.*size mismatch"):
        train(Flat(width=4), data, steps=4, batch_size=2, checkpoint=tmp_path / "c.pt", progress=False)


def test_bfcnn_batchnorm_train_eval():
    from mslcp.nets import BFCNN, ConditionalBFCNN

    torch.manual_seed(0)
    for net, c in ((BFCNN(width=8, depth=3, rf=5), 1), (ConditionalBFCNN(width=8, depth=3, rf=5), 4)):
        data = smooth_data(c=c)
        sd0 = net.BN_layers[0].running_sd.clone()
        h = train(net, data, steps=20, batch_size=8, patch_size=8, eval_every=10, test_data=data[:2],
                  progress=False)
        assert not net.training and not torch.equal(sd0, net.BN_layers[0].running_sd)
        assert all(torch.isfinite(torch.tensor(p)).all() for p in h["test_psnr"])
        assert h["loss"][-1] < h["loss"][0]


def test_compiled_training_matches_eager_and_resumes_bit_identically(tmp_path, recwarn):
    data = smooth_data()
    kw = dict(batch_size=4, patch_size=8, lr=3e-3, eval_every=2, progress=False, seed=7)
    e = Flat(seed=1)
    he = train(e, data, steps=6, **kw)
    a = Flat(seed=1)
    ha = train(a, data, steps=6, compile=True, **kw)
    assert not [w for w in recwarn if "without compiling" in str(w.message)]  # it compiled
    assert ha["loss"] == pytest.approx(he["loss"], rel=1e-4)
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in zip(a.parameters(), e.parameters()))
    b = Flat(seed=1)
    train(b, data, steps=4, compile=True, checkpoint=tmp_path / "b.pt", **kw)  # lr_end None: steps not a setting
    b = Flat(seed=2)
    hb = train(b, data, steps=6, compile=True, checkpoint=tmp_path / "b.pt", **kw)
    assert hb == ha and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


class NoCompiler(nn.Module):
    """What torch.compile returns where it cannot compile: it fails at the first call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args):
        raise RuntimeError("no C++ compiler")


def refuse(model):
    raise RuntimeError("torch.compile is not supported on this Python")


@pytest.mark.parametrize("fake", [NoCompiler, refuse])
def test_compile_falls_back_to_the_model(monkeypatch, fake):
    data = smooth_data()
    kw = dict(batch_size=4, patch_size=8, lr=3e-3, eval_every=2, progress=False, seed=7)
    e = Flat(seed=1)
    he = train(e, data, steps=4, **kw)
    monkeypatch.setattr(torch, "compile", fake)
    a = Flat(seed=1)
    with pytest.warns(UserWarning, match="without compiling"):
        ha = train(a, data, steps=4, compile=True, **kw)
    assert ha == he and all(torch.equal(p, q) for p, q in zip(a.parameters(), e.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compile", [False, True])
def test_training_steps_never_wait_for_the_host_on_cuda(compile):
    # synchronizing calls are counted by CUDA's sync debug mode: a longer run must not make more of them (the
    # ones it makes belong to the start and to the final log, not to the steps)
    from mslcp import nets

    data = (smooth_data(n=64, size=32) * 255).to(torch.uint8)  # host data, moved to the GPU once

    def syncs(steps):
        net = nets.BFCNN(width=16, depth=4, rf=9).cuda()
        train(net, data, steps=2, batch_size=8, patch_size=16, amp=True, compile=compile, progress=False)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train(net, data, steps=steps, batch_size=8, patch_size=16, amp=True, compile=compile,
                      progress=False, eval_every=10**6)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(30) == syncs(3)


def test_throughput():
    m = Flat()
    w = m.net[0].weight.clone()
    assert throughput(m, patch_size=8, batch_size=4, steps=2) > 0
    assert torch.equal(m.net[0].weight, w)  # the model itself is untouched


def test_resume_refuses_other_settings(tmp_path):
    data, ck = smooth_data(), tmp_path / "c.pt"
    kw = dict(steps=4, batch_size=4, patch_size=8, lr=1e-3, lr_end=1e-4, progress=False, checkpoint=ck)
    train(Flat(), data, **kw)
    changes = [(dict(lr=2e-3), "lr"), (dict(batch_size=2), "batch_size"), (dict(seed=1), "seed"),
               (dict(steps=6), "steps"), (dict(patch_size=12), "patch_size"), (dict(sigma_range=(0, 0.5)), "sigma"),
               (dict(lr_end=None), "lr_end"), (dict(quadratic_sigma=True), "quadratic_sigma")]
    for change, field in changes:
        with pytest.raises(ValueError, match=f"other settings .*{field}.*delete it to restart"):
            train(Flat(), data, **{**kw, **change})
    # a finished checkpoint with other data: refused, not the old model returned
    with pytest.raises(ValueError, match=r"data \[\[16, 1, 12, 12\], 'float32', '\w+'\] -> \[\[16, 1, 12, 12\]"):
        train(Flat(), data.flip(-1), **kw)
    with pytest.raises(ValueError, match="data"):
        train(Flat(), data[:8], **kw)
    # a constant learning rate: training longer from a checkpoint is allowed
    train(Flat(), data, **{**kw, "lr_end": None, "checkpoint": tmp_path / "d.pt"})
    h = train(Flat(), data, **{**kw, "lr_end": None, "checkpoint": tmp_path / "d.pt", "steps": 6})
    assert h["step"] == [4, 6]


def test_checkpoint_stores_the_config_and_old_checkpoints_resume(tmp_path):
    import dataclasses

    images, kw = smooth_data(size=16), dict(batch_size=4, patch_size=8, level=0, lr_end=1e-4, eval_every=2, seed=3)
    a = Cond(seed=1)
    config = TrainConfig(steps=6, **kw)
    ha = train(a, images, config, checkpoint=tmp_path / "a.pt", progress=False)
    settings = torch.load(tmp_path / "a.pt", weights_only=True)["settings"]
    assert {k: v for k, v in settings.items() if k != "data"} == dataclasses.asdict(config)
    with pytest.raises(ValueError, match="steps must be an int >= 0"):  # keywords override the config's fields
        train(Cond(), images, config, steps=-1)
    # a checkpoint of step 3 as the train of before wrote it: the level named `scale`, no quadratic_sigma, no free
    # settings, steps only with lr_end
    b = Cond(seed=1)
    interrupt_at(b, 4)
    with pytest.raises(Interrupt):
        train(b, images, config, checkpoint=tmp_path / "b.pt", progress=False)
    ck = torch.load(tmp_path / "b.pt", weights_only=True)
    old = {k: v for k, v in ck["settings"].items() if k not in ("test_sigmas", "eval_every", "checkpoint_every",
                                                                  "amp", "quadratic_sigma", "level")}
    ck["settings"] = {**old, "scale": 0}
    torch.save(ck, tmp_path / "b.pt")
    b = Cond(seed=2)
    assert train(b, images, config, checkpoint=tmp_path / "b.pt", progress=False) == ha
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="other settings .*level 0 -> 1"):
        train(Cond(), images, **{**kw, "level": 1}, steps=6, checkpoint=tmp_path / "b.pt", progress=False)


def test_bad_checkpoint_files(tmp_path):
    from safetensors.torch import save_file

    data, good = smooth_data(), tmp_path / "good.pt"
    train(Flat(), data, steps=2, batch_size=2, checkpoint=good, progress=False)
    files = {"truncated.pt": good.read_bytes()[:300], "foreign.pt": b"hello, not a checkpoint\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    torch.save({"model": {}}, tmp_path / "partial.pt")  # a torch file, but not ours
    for name in (*files, "weights.safetensors", "partial.pt"):
        with pytest.raises(RuntimeError, match="delete it to restart") as e:
            train(Flat(), data, steps=2, batch_size=2, checkpoint=tmp_path / name, progress=False)
        assert str(tmp_path / name) in str(e.value) and "weights_only" not in str(e.value)


def test_unwritable_checkpoint_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("")
    m = Flat()
    calls = []
    m.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(OSError, match="cannot write the checkpoint .*file/c.pt"):
        train(m, smooth_data(), steps=50, batch_size=2, checkpoint=tmp_path / "file" / "c.pt", progress=False)
    assert calls == []  # no training step was done


def test_restart_after_interrupt_before_first_checkpoint(tmp_path):
    data = smooth_data()
    kw = dict(steps=6, batch_size=4, patch_size=8, checkpoint_every=100, progress=False)
    a = Flat(seed=1)
    train(a, data, checkpoint=tmp_path / "a.pt", **kw)
    b = Flat(seed=1)
    hook = interrupt_at(b, 4)  # steps 1-3 changed b's weights, no checkpoint but the initial one
    with pytest.raises(Interrupt):
        train(b, data, checkpoint=tmp_path / "b.pt", **kw)
    hook.remove()
    train(b, data, checkpoint=tmp_path / "b.pt", **kw)  # the same (partly trained) instance
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("level", [0, 1, "low"])
def test_per_batch_coefficients_equal_materialized(level):
    images = smooth_data(n=8, size=16)
    kw = dict(steps=3, batch_size=4, sigma_range=(0.0, 0.2), progress=False, eval_every=3)
    make = Flat if level == "low" else Cond
    a, b = make(seed=1), make(seed=1)
    whole = multiscale.lowpass_data(images, 2) if level == "low" else multiscale.training_data(images, level)
    ha = train(a, images, level=level, levels=2 if level == "low" else None, test_data=images[:2], **kw)
    hb = train(b, whole, test_data=whole[:2], **kw)
    assert all(torch.allclose(p, q, rtol=1e-5, atol=1e-7) for p, q in zip(a.parameters(), b.parameters()))
    assert ha["test_psnr"][0] == pytest.approx(hb["test_psnr"][0], rel=1e-5)


@pytest.mark.parametrize("j", [0, 1])
def test_crops_aligned_to_wavelet_blocks(j):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 16, 16, generator=g)
    whole = multiscale.training_data(images, j)  # (3, 4, 16/2^(j+1), ...): every example must be a block of it
    p = 8 // 2 ** (j + 1)
    blocks = whole.unfold(2, p, 1).unfold(3, p, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4, p, p)
    config = TrainConfig(steps=4, batch_size=4, patch_size=8, level=j)
    for step in range(4):
        for x in get_batch(images, config, step)[0]:
            assert ((blocks - x).abs().amax((1, 2, 3)) < 1e-6).any()
    with pytest.raises(ValueError, match="multiple of 4"):
        train(Cond(), images, level=1, steps=1, batch_size=2, patch_size=6, progress=False)


def test_fingerprint_of_a_large_tensor():
    from mslcp.train import _fingerprint

    x = torch.zeros(2**25 + 3, dtype=torch.uint8)  # float32 index arithmetic would step past the end here
    a = _fingerprint(x)
    x[-1] = 1  # the last element is always in the sample
    assert a[:2] == [[2**25 + 3], "uint8"] and _fingerprint(x) != a


def test_host_memory_of_multiscale_training_on_a_large_uint8_set():
    """A conditional net trained on 50,000 uint8 images of 160x160 (1.28 GB): coefficients are made per batch, so
    the process's peak resident memory stays under the images' size + 1 GB (float32 coefficients of the whole set
    would be 5 GB)."""
    import subprocess
    import sys

    code = """
import resource, torch
from mslcp import nets
from mslcp.train import train
torch.set_num_threads(1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # torch imported, before the data
x = torch.full((50_000, 1, 160, 160), 100, dtype=torch.uint8)  # every page written: resident
x[::7] = 200
train(nets.ConditionalBFCNN(width=8, depth=3, rf=5), x, level=0, steps=3, batch_size=16, progress=False)
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, x.numel())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    base, peak, size = map(int, r.stdout.split()[-3:])
    assert size == 50_000 * 160 * 160 and peak - base < size + 2**30, (peak - base) / 2**30
