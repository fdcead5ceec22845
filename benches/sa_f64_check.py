#!/usr/bin/env python3
"""How far f32 rounding alone moves a video ResNet's SA: PyTorch's own f32 autograd against its
f64 autograd on the same torchvision network and clip, and vidlrp's saved SA (from `cargo xtask
bench ... --tasks sa`, target/bench/out-sa-1-vidlrp.npy) against the same f64 reference.

    python benches/sa_f64_check.py --arch r2plus1d_18 \\
        --weights target/bench/r2plus1d_18.safetensors \\
        --input target/bench/clip-kinetics-s112-b1.npy --ours target/bench/out-sa-1-vidlrp.npy

Prints both differences as ||a - b|| / ||b|| and as the largest difference over max |b|.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import video_resnet  # noqa: E402


def sa(model, x):
    """Squared input gradient of the top logit (vidlrp's and torch_bench.py's SA)."""
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    seed = torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1.0)
    (g,) = torch.autograd.grad(out, xg, seed)
    return (g ** 2).detach().double()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, help="r3d_18, mc3_18 or r2plus1d_18")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--ours", required=True, help="vidlrp's SA as .npy")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = video_resnet(a.arch, a.weights)
    x = torch.from_numpy(np.load(a.input))
    f32 = sa(model, x)
    f64 = sa(model.double(), x.double())
    ours = torch.from_numpy(np.load(a.ours)).double()
    for name, t in [("PyTorch f32", f32), ("vidlrp f32", ours)]:
        d = t - f64
        print(f"{name} vs PyTorch f64: {(d.norm() / f64.norm()).item():.3e} of the norm, "
              f"largest {(d.abs().max() / f64.abs().max()).item():.3e} of max |f64|")


if __name__ == "__main__":
    main()
