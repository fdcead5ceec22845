#!/usr/bin/env python3
"""The PyTorch side of `cargo xtask bench-train`: training steps of a C3D-shaped model.

Loads the weights (any widths, PyTorch-port names) and the batch that vidlrp's side uses,
builds the port's architecture (padded pool5, dropout 0.5 after fc6 and fc7) and times
`--steps` SGD steps (momentum 0.9, weight decay 5e-4, lr 0.003): forward, mean cross-entropy,
backward, step. Prints one JSON line: {"times": [...], "peak_rss_mb": ...}.
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

CONV = ["conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b"]
POOL = {"conv1": ((1, 2, 2), (0, 0, 0)), "conv2": ((2, 2, 2), (0, 0, 0)), "conv3b": ((2, 2, 2), (0, 0, 0)),
        "conv4b": ((2, 2, 2), (0, 0, 0)), "conv5b": ((2, 2, 2), (0, 1, 1))}


class C3D(torch.nn.Module):
    def __init__(self, sd):
        super().__init__()
        for name in CONV:
            w = sd[f"{name}.weight"]
            setattr(self, name, torch.nn.Conv3d(w.shape[1], w.shape[0], 3, padding=1))
        for name in ["fc6", "fc7", "fc8"]:
            w = sd[f"{name}.weight"]
            setattr(self, name, torch.nn.Linear(w.shape[1], w.shape[0]))
        self.load_state_dict(sd)

    def forward(self, x):
        for name in CONV:
            x = F.relu(getattr(self, name)(x))
            if name in POOL:
                k, p = POOL[name]
                x = F.max_pool3d(x, k, k, p)
        x = x.flatten(1)
        x = F.dropout(F.relu(self.fc6(x)), 0.5, self.training)
        x = F.dropout(F.relu(self.fc7(x)), 0.5, self.training)
        return self.fc8(x)


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
