"""Training throughput of mslcp.train.train: images/s and convolution FLOP/s, with the same run's matmul rate.

    python benchmarks/train_throughput.py            # CPU (and CUDA too when available)
    python benchmarks/train_throughput.py --steps 20

FLOPs count the convolutions only: a training step costs about 3x the forward pass (forward, gradient with respect
to the input, gradient with respect to the weights), and a k x k convolution from c_in to c_out channels costs
2 k^2 c_in c_out per pixel. On the CPU the efficiency is given as a ratio to a float32 matmul measured in the
same run (machines are shared and noisy: ratios travel, seconds do not). Every net is timed as `train` runs it and
with compile=True (torch.compile of the training step; its compile time is spent in the warm-up, not timed). On CUDA
the step uses bf16 autocast, channels_last, fused Adam and device-side data (what `train` does there).
"""
import argparse
import time

import torch

from mslcp import nets, presets, train

NETS = {  # name -> (constructor kwargs, patch size, batch sizes on CPU, batch sizes on CUDA)
    "paper (width 64, depth 21, RF 43)": (dict(width=64, depth=21, rf=43), 40, [16], [128, 512]),
    "CPU preset (width 32, depth 8, RF 5)": (dict(width=32, depth=8, rf=5), 32, [32], [512]),
}


def matmul_rate(device, n=1024, reps=20):
    """float32 matmul FLOP/s (n x n) on device."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    (a @ b).sum().item()
    t = time.perf_counter()
    for _ in range(reps):
        c = a @ b
    c.sum().item()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps per net (default 5)")
    args = ap.parse_args()
    torch.set_num_threads(presets.threads())
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads (presets.threads())")
    print("| device | net | batch | compiled | images/s | conv TFLOP/s | matmul TFLOP/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for device in devices:
        mm = matmul_rate(device)
        for name, (kw, patch, b_cpu, b_cuda) in NETS.items():
            for batch in b_cpu if device == "cpu" else b_cuda:
                for compile in (False, True):
                    torch.manual_seed(0)
                    net = nets.BFCNN(**kw)
                    ips = train.throughput(net, patch_size=patch, batch_size=batch, steps=args.steps, device=device,
                                           amp=device == "cuda", compile=compile)
                    rate = ips * nets.train_flops(net, patch)
                    print(f"| {device} | {name} | {batch} | {'yes' if compile else 'no'} | {ips:.1f} | "
                          f"{rate / 1e12:.4f} | {mm / 1e12:.4f} | {rate / mm:.2f} |", flush=True)

if __name__ == "__main__":
    main()
