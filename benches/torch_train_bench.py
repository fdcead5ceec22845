#!/usr/bin/env python3
"""The PyTorch side of `cargo xtask bench-train`: training steps of a C3D-shaped model.

Loads the weights (any widths, PyTorch-port names) and the batch that vidlrp's side uses,
builds the port's architecture (padded pool5, dropout 0.5 after fc6 and fc7) and times
`--steps` SGD steps (momentum 0.9, weight decay 5e-4, lr 0.003): forward, mean cross-entropy,
backward, step. Prints one JSON line: {"times": [...], "peak_rss_mb": ...}.
"""
import argparse
import os
import sys
import json
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_c3d import C3D  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = C3D(load_file(a.weights))
    model.train()
    x = torch.from_numpy(np.load(a.batch))
    labels = torch.arange(x.shape[0]) % model.fc8.out_features
    opt = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9, weight_decay=5e-4)
    times = []
    for _ in range(a.steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"times": times[1:], "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
