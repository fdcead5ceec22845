#!/usr/bin/env python3
"""The PyTorch/Zennit side of `cargo xtask bench`: one task, timed, in a fresh process.

Loads the same safetensors weights and .npy clip as vidlrp, builds the PyTorch C3D port
(pool5 padding (0,1,1)), and times: forward; DTD (Zennit ZBox on conv1 with the caffe bounds,
ZPlus(zero_params='bias') above, max pooling by gradient); SA (autograd, squared). Prints one
JSON line: {"task", "times", "peak_rss_mb"}.
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import Pass, ZBox, ZPlus
from zennit.types import Activation, Convolution


class C3D(torch.nn.Module):
    def __init__(self):
        super().__init__()
        c = torch.nn.Conv3d
        self.conv1 = c(3, 64, 3, padding=1)
        self.pool1 = torch.nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.conv2 = c(64, 128, 3, padding=1)
        self.pool2 = torch.nn.MaxPool3d(2, 2)
        self.conv3a = c(128, 256, 3, padding=1)
        self.conv3b = c(256, 256, 3, padding=1)
        self.pool3 = torch.nn.MaxPool3d(2, 2)
        self.conv4a = c(256, 512, 3, padding=1)
        self.conv4b = c(512, 512, 3, padding=1)
        self.pool4 = torch.nn.MaxPool3d(2, 2)
        self.conv5a = c(512, 512, 3, padding=1)
        self.conv5b = c(512, 512, 3, padding=1)
        self.pool5 = torch.nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fc6 = torch.nn.Linear(8192, 4096)
        self.fc7 = torch.nn.Linear(4096, 4096)
        self.fc8 = torch.nn.Linear(4096, 487)
        self.relus = torch.nn.ModuleList([torch.nn.ReLU() for _ in range(10)])

    def forward(self, x):
        r = iter(self.relus)
        x = self.pool1(next(r)(self.conv1(x)))
        x = self.pool2(next(r)(self.conv2(x)))
        x = self.pool3(next(r)(self.conv3b(next(r)(self.conv3a(x)))))
        x = self.pool4(next(r)(self.conv4b(next(r)(self.conv4a(x)))))
        x = self.pool5(next(r)(self.conv5b(next(r)(self.conv5a(x)))))
        x = next(r)(self.fc6(x.flatten(1)))
        x = next(r)(self.fc7(x))
        return self.fc8(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=["forward", "dtd", "sa"])
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
    model = C3D().eval()
    model.load_state_dict(load_file(a.weights))
    model.to(dev)
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
        if a.task == "forward":
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
