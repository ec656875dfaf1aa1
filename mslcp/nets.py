"""Bias-free CNN denoisers (Mohan et al. 2020) and their conditional variant.

Attribute names (`conv_layers`, `BN_layers`, `running_sd`, `gammas`) match the authors' checkpoints, so their state
dicts load with strict=True once the DataParallel prefix "module." is stripped (see `BFCNN.from_state_dict`).
"""
import copy
import numbers

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .data import check_images


class BFBatchNorm2d(nn.Module):
    """Bias-free batch norm: x / sd * gammas, no mean subtraction, no shift (so it is positively homogeneous).

    train: sd = batch std per channel (over B,H,W; biased, +eps inside the sqrt), running_sd updated with momentum.
    eval: sd = running_sd. Shapes: x (B,C,H,W); running_sd, gammas (1,C,1,1). A channel whose batch sd is not
    finite (NaN or inf in the batch) keeps its running_sd, so one bad batch does not spoil later eval outputs.
    When torch.distributed is initialized with several processes, the batch statistics are those of every
    rank's batches together.
    """

    def __init__(self, channels, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_sd", torch.ones(1, channels, 1, 1))
        self.gammas = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        if not self.training:
            return x / self.running_sd * self.gammas
        xf = x if x.dtype == torch.float64 else x.float()  # statistics in >= fp32 (AMP)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            var = _global_var(xf)  # DistributedDataParallel: statistics of the whole batch, as one process
        else:
            var = xf.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        sd = torch.sqrt(var + self.eps)
        with torch.no_grad():
            new = (1 - self.momentum) * self.running_sd + self.momentum * sd
            self.running_sd.copy_(torch.where(torch.isfinite(sd), new, self.running_sd))
        return x / sd * self.gammas


class _Sum(torch.autograd.Function):
    """Sum of a tensor over all ranks; its gradient is the sum of every rank's gradients."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _global_var(x):
    """Per-channel biased variance (1,C,1,1) of x (B,C,H,W) over the union of every rank's batch (equal batches)."""
    n = x.numel() // x.shape[1] * dist.get_world_size()
    mean = _Sum.apply(x.sum((0, 2, 3), keepdim=True)) / n
    return _Sum.apply((x - mean).square().sum((0, 2, 3), keepdim=True)) / n


def _int(name, value, low=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        raise ValueError(f"{name} must be an int{'' if low is None else f' >= {low}'}, got {value!r:.80}")


def kernel_layout(depth, rf):
    """Kernel sizes (3 or 1) for `depth` layers with receptive field `rf`: (rf-1)/2 3x3 layers spread evenly over the
    depth, the first and the last always 3x3 (a single 3x3 layer, rf=3, is the first)."""
    _int("depth", depth, 2)
    _int("rf", rf)  # its range is said below
    if rf % 2 == 0 or not 3 <= rf <= 1 + 2 * depth:
        raise ValueError(f"rf={rf} is unreachable with depth={depth}: rf must be odd, 3 <= rf <= {1 + 2 * depth}")
    k = (rf - 1) // 2
    where = {0} if k == 1 else {(2 * i * (depth - 1) + k - 1) // (2 * (k - 1)) for i in range(k)}  # round(i(d-1)/(k-1))
    return [3 if i in where else 1 for i in range(depth)]


def check_config(in_channels=1, out_channels=1, width=64, depth=21, rf=43, kernel_sizes=None, bias=False):
    """Check BFCNN's constructor arguments (ValueError naming the argument) -> the kernel sizes (list of ints).
    Builds nothing (no random draws), so a recipe can be checked before any work."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width)):
        _int(name, value, 1)
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be True or False, got {bias!r:.80}")
    if kernel_sizes is None:
        return kernel_layout(depth, rf)
    ks = list(kernel_sizes) if isinstance(kernel_sizes, (list, tuple)) else None
    if ks is None or len(ks) < 2 or any(isinstance(k, bool) or not isinstance(k, numbers.Real) or int(k) != k
                                         or k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"kernel_sizes must be a list of >= 2 odd positive ints, got {kernel_sizes!r:.80}")
    return [int(k) for k in ks]


class BFCNN(nn.Module):
    """The paper's denoiser: linear conv0, [conv -> BN -> ReLU] x (depth-2), linear conv.

    No subsampling, padding k//2, every conv `width` channels. `.residual(y)` (B,in,H,W) -> noise estimate
    (B,out,H,W); the call returns the denoised y - residual(y). bias=False (default) removes every additive constant
    (BFBatchNorm2d, bias-free convs); bias=True is the same net with conv biases and nn.BatchNorm2d, for comparison.
    kernel_sizes (list of odd ints, one per layer) overrides depth and rf. `.rf` = 1 + sum(k - 1).
    """

    def __init__(self, in_channels=1, out_channels=1, width=64, depth=21, rf=43, kernel_sizes=None, bias=False):
        super().__init__()
        ks = check_config(in_channels, out_channels, width, depth, rf, kernel_sizes, bias)
        self.in_channels, self.out_channels, self.rf = in_channels, out_channels, 1 + sum(k - 1 for k in ks)
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=width, kernel_sizes=ks,
                           bias=bias)  # constructor kwargs: type(net)(**net.config)
        chans = [in_channels] + [width] * (len(ks) - 1) + [out_channels]
        self.conv_layers = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], k, padding=k // 2, bias=bias) for i, k in enumerate(ks))
        self.BN_layers = nn.ModuleList(
            (nn.BatchNorm2d if bias else BFBatchNorm2d)(width) for _ in range(len(ks) - 2))
        for bn in self.BN_layers:  # the authors' init: tiny gains, so an untrained net starts near identity (x̂ ≈ y)
            w = bn.weight if bias else bn.gammas  # (convs keep PyTorch's default init)
            with torch.no_grad():
                w.copy_((torch.randn(w.shape) * (2 / 9 / 64)).clamp(-0.025, 0.025))

    def residual(self, y):
        """y (B,in,H,W) -> estimated noise (B,out,H,W)."""
        if not torch.is_tensor(y) or not y.is_floating_point():
            check_images(y, "the net's input", kind="any")  # refuses numpy arrays and integer images, with the fix
        if y.ndim != 4 or y.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B,{self.in_channels},H,W), got shape {tuple(y.shape)}")
        w = self.conv_layers[0].weight
        if (y.dtype, y.device) != (w.dtype, w.device) and not torch.is_autocast_enabled(y.device.type):
            raise ValueError(f"input is {y.dtype} on {y.device} but the net is {w.dtype} on {w.device}: convert "
                             "one (y.to(...) or net.to(...))")
        x = self.conv_layers[0](y)
        for conv, bn in zip(self.conv_layers[1:-1], self.BN_layers):
            x = F.relu(bn(conv(x)))
        return self.conv_layers[-1](x)

    def forward(self, y):
        """y (B,C,H,W) noisy -> denoised (B,C,H,W)."""
        if self.in_channels != self.out_channels:
            raise ValueError(f"forward needs in_channels == out_channels (got {self.in_channels} -> "
                             f"{self.out_channels}); use .residual or ConditionalBFCNN")
        return y - self.residual(y)

    @staticmethod
    def _io_kwargs(c_in, c_out):
        return dict(in_channels=c_in, out_channels=c_out)

    @classmethod
    def from_state_dict(cls, state_dict):
        """Build the net whose architecture the state dict's shapes imply and load it (strict). Accepts the authors'
        DataParallel keys ("module." prefix)."""
        sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
        n = sum(k.startswith("conv_layers.") and k.endswith(".weight") for k in sd)
        if n < 2:
            raise ValueError(f"not a BFCNN state dict: found {n} conv_layers.*.weight keys (keys: {list(sd)[:4]}...)")
        w = [sd[f"conv_layers.{i}.weight"] for i in range(n)]
        net = cls(**cls._io_kwargs(w[0].shape[1], w[-1].shape[0]), width=w[0].shape[0],
                  kernel_sizes=[x.shape[-1] for x in w], bias="conv_layers.0.bias" in sd)
        net.load_state_dict(sd)
        return net


class ConditionalBFCNN(BFCNN):
    """Conditional denoiser for one wavelet level: call(low (B,C,h,w), noisy_details (B,3C,h,w)) -> denoised details
    (B,3C,h,w) = noisy_details - residual(cat([low, noisy_details], 1)). Other kwargs as BFCNN."""

    def __init__(self, channels=1, **kwargs):
        _int("channels", channels, 1)
        super().__init__(4 * channels, 3 * channels, **kwargs)
        self.channels = channels
        self.config = dict(channels=channels, **{k: v for k, v in self.config.items() if "channels" not in k})

    @staticmethod
    def _io_kwargs(c_in, c_out):
        if c_out % 3 or c_in != c_out // 3 * 4:
            raise ValueError(f"conditional net needs in = 4C, out = 3C channels; state dict has {c_in} -> {c_out}")
        return dict(channels=c_out // 3)

    def forward(self, low, noisy_details):
        c = self.channels
        for name, x, k in (("low", low, c), ("noisy_details", noisy_details, 3 * c)):
            if not torch.is_tensor(x):
                check_images(x, name, kind="any")
            if x.ndim != 4 or x.shape[1] != k:
                raise ValueError(f"{name}: expected shape (B,{k},h,w), got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise ValueError(f"{name} must be a float tensor ([0,1] scale), got {x.dtype} (for uint8 0..255 "
                                 "images use x.float() / 255)")
        if low.shape[0] != noisy_details.shape[0] or low.shape[2:] != noisy_details.shape[2:]:
            raise ValueError(f"low {tuple(low.shape)} and noisy_details {tuple(noisy_details.shape)} need the same "
                             "batch size and (h,w)")
        if low.dtype != noisy_details.dtype:
            raise ValueError(f"low is {low.dtype} but noisy_details is {noisy_details.dtype}")
        return noisy_details - self.residual(torch.cat([low, noisy_details], 1))


def parameter_count(model):
    """Number of parameters (int) of a model: every weight and gain, trainable or not."""
    return sum(p.numel() for p in model.parameters())


def train_flops(net, size):
    """Convolution FLOPs of one training step on one size x size image: a k x k convolution from c_in to c_out
    channels costs 2 k^2 c_in c_out per pixel, and a step (forward, gradients of input and weights) ~3x forward."""
    return 3 * size * size * sum(2 * c.kernel_size[0] * c.kernel_size[1] * c.in_channels * c.out_channels
                                 for c in net.conv_layers)


def receptive_field(model, size=None, n=4, seed=0):
    """Measured receptive field (int): width of the square support of the input gradient of the centre output pixel of
    model.residual, on n random (size x size) inputs, eval mode, float64 (model is not modified)."""
    size = size if size is not None else getattr(model, "rf", 57) + 8
    _int("size", size, 3)
    net = copy.deepcopy(model).double().eval()
    p = next(net.parameters())
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, net.in_channels, size, size, generator=g, dtype=torch.float64).to(p.device).requires_grad_()
    net.residual(y)[:, :, size // 2, size // 2].sum().backward()
    rows, cols = torch.nonzero(y.grad.abs().sum((0, 1)), as_tuple=True)
    if len(rows) == 0:
        raise RuntimeError("the centre output does not depend on the input (all gradients are zero)")
    if min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) == size - 1:
        raise RuntimeError(f"receptive field reaches the border of the {size}x{size} probe: pass a larger size")
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1
