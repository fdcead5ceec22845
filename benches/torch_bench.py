#!/usr/bin/env python3
"""The PyTorch/Zennit side of `cargo xtask bench`: one task, timed, in a fresh process.

Loads the same safetensors weights and .npy clip as vidlrp, builds the PyTorch C3D port at the
weights' widths (torch_c3d.py, pool5 padding (0,1,1)), and times: forward; DTD (Zennit ZBox on
conv1 with the caffe bounds, ZPlus(zero_params='bias') above, max pooling by gradient); SA
(autograd, squared); train (one SGD step: momentum 0.9, weight decay 5e-4, lr 0.003, mean
cross-entropy, dropout 0.5). Prints one JSON line: {"task", "times", "peak_rss_mb"}.
"""
import argparse
import json
import resource
import time

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import Pass, ZBox, ZPlus
from zennit.types import Activation, Convolution

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_c3d import C3D  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=["forward", "dtd", "sa", "train"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    # Full float32 on both sides: no TF32 tensor-core shortcuts in cuDNN/cuBLAS.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(a.device)
    model = C3D(load_file(a.weights)).eval()
    model.to(dev)
    if a.task == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9, weight_decay=5e-4)
    x = torch.from_numpy(np.load(a.input))
    mean = torch.tensor([90.25, 97.66, 101.41]).view(1, 3, 1, 1, 1)
    low, high = (-mean).expand_as(x).to(dev), (255 - mean).expand_as(x).to(dev)
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Convolution, ZPlus(zero_params="bias")),
                   (torch.nn.Linear, ZPlus(zero_params="bias"))],
        first_map=[(Convolution, ZBox(low, high))])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for _ in range(a.repeat):
        sync()
        start = time.perf_counter()
        # Like vidlrp's timing: copy the clip in, explain, copy the result out.
        x_dev = x.to(dev)
        if a.task == "train":
            labels = torch.arange(x_dev.shape[0], device=dev) % model.fc8.out_features
            opt.zero_grad()
            F.cross_entropy(model(x_dev), labels).backward()
            opt.step()
        elif a.task == "forward":
            with torch.no_grad():
                model(x_dev).cpu()
        elif a.task == "dtd":
            with Gradient(model=model, composite=composite) as attributor:
                out, rel = attributor(x_dev, lambda o: torch.zeros_like(o).scatter_(
                    1, o.argmax(1, keepdim=True), o.gather(1, o.argmax(1, keepdim=True))))
            rel.cpu()
        else:
            xg = x_dev.clone().requires_grad_(True)
            out = model(xg)
            (g,) = torch.autograd.grad(out, xg, torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1.0))
            (g ** 2).cpu()
        sync()
        times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"task": a.task, "times": times, "peak_rss_mb": rss, "torch": torch.__version__}
    if dev.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        result["gpu"] = torch.cuda.get_device_name(dev)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
