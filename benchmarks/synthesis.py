"""Synthesis throughput (Algorithm 2, mslcp.sampling.synthesize): images/s against the batch size.

    python benchmarks/synthesis.py                   # shipped 32x32 model on the CPU; the paper's 160x160 on CUDA
    python benchmarks/synthesis.py --batches 1 4 16

Every batch size draws the same first images (one generator per image), so the work per image is comparable;
the table also gives the batched denoiser calls, which grow only slowly with the batch.
"""
import argparse
import time

import torch

from mslcp import pretrained, presets, sampling


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64], help="batch sizes")
    ap.add_argument("--h0", type=float, default=0.01, help="Algorithm 1's initial step (default: the paper's 0.01)")
    args = ap.parse_args()
    torch.set_num_threads(presets.threads())
    cases = [("cpu", "shipped multiscale_rf5, 32x32", lambda: pretrained.shipped("multiscale_rf5"), 32)]
    if torch.cuda.is_available():
        cases.append(("cuda", "paper multi-scale RF 13, 160x160", lambda: pretrained.paper_multiscale(13), 160))
    print("| device | model | batch | calls | seconds | images/s |")
    print("|---|---|---|---|---|---|")
    for device, name, load, size in cases:
        model = load().to(device)
        sampling.synthesize(model, 1, size=size, generator=[0], h0=args.h0)  # warm-up
        for b in args.batches:
            t = time.perf_counter()
            with torch.no_grad():
                _, info = sampling.synthesize(model, b, size=size, generator=list(range(b)), h0=args.h0)
            if device == "cuda":
                torch.cuda.synchronize()
            s = time.perf_counter() - t
            print(f"| {device} | {name} | {b} | {info.calls} | {s:.2f} | {b / s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
