#!/usr/bin/env python3
"""The PyTorch/Zennit side of `cargo xtask bench`: one task, timed, in a fresh process.

Loads the same safetensors weights and .npy clip as vidlrp, builds the network -- the PyTorch
C3D port at the weights' widths (torch_c3d.py, pool5 padding (0,1,1)), or torchvision's video
ResNet (--arch r3d_18 / mc3_18 / r2plus1d_18) -- and times: forward; DTD (Zennit ZBox on the
first convolution with the bounds vidlrp uses, ZPlus(zero_params='bias') above; C3D's max
pooling by gradient; for the ResNets batch norm merged into the convolutions (Zennit's
SequentialMergeBatchNorm) and each block's `out += residual` rewritten as Zennit's Sum layer
(VideoBasicBlockCanonizer below, as Zennit's ResNetCanonizer does for 2-D ResNets), the sums
and the average pool under Zennit's Norm rule, i.e. split in proportion to their inputs); SA
(autograd, squared); train (C3D: one SGD step, momentum 0.9, weight decay 5e-4, lr 0.003,
mean cross-entropy, dropout 0.5). Prints one JSON line: {"task", "times", "peak_rss_mb"}.
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


def video_resnet(arch, weights):
    """torchvision's video ResNet with vidlrp's safetensors weights (float32), in eval mode."""
    from torchvision.models import video
    sd = load_file(weights)
    model = getattr(video, arch)(num_classes=sd["fc.weight"].shape[0])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (
        missing, unexpected)
    return model.eval()


def resnet_canonizers():
    """Batch norm merged into the convolution before it; each BasicBlock's residual sum as a
    zennit Sum module (Zennit canonizes only 2-D torchvision ResNets)."""
    from torchvision.models.video.resnet import BasicBlock
    from zennit.canonizers import AttributeCanonizer, SequentialMergeBatchNorm
    from zennit.layer import Sum

    class VideoBasicBlockCanonizer(AttributeCanonizer):
        def __init__(self):
            super().__init__(self._attribute_map)

        @classmethod
        def _attribute_map(cls, name, module):
            if isinstance(module, BasicBlock):
                return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
            return None

        @staticmethod
        def forward(self, x):
            residual = x if self.downsample is None else self.downsample(x)
            out = self.conv2(self.conv1(x))
            out = self.canonizer_sum(torch.stack([out, residual], dim=-1))
            return self.relu(out)

    return [SequentialMergeBatchNorm(), VideoBasicBlockCanonizer()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=["forward", "dtd", "sa", "train"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--arch", default="c3d", help="c3d, r3d_18, mc3_18 or r2plus1d_18")
    ap.add_argument("--low", default="-90.25,-97.66,-101.41", help="z^B lower bound per channel")
    ap.add_argument("--high", default="164.75,157.34,153.59", help="z^B upper bound per channel")
    ap.add_argument("--save", help="write the last run's output (logits, relevance) as .npy")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    # Full float32 on both sides: no TF32 tensor-core shortcuts in cuDNN/cuBLAS.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(a.device)
    resnet = a.arch != "c3d"
    model = video_resnet(a.arch, a.weights) if resnet else C3D(load_file(a.weights)).eval()
    model.to(dev)
    if a.task == "train":
        assert not resnet, "the train task times C3D only"
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9, weight_decay=5e-4)
    x = torch.from_numpy(np.load(a.input))
    bound = lambda v: torch.tensor([float(t) for t in v.split(",")]).view(1, 3, 1, 1, 1)
    low, high = bound(a.low).expand_as(x).to(dev), bound(a.high).expand_as(x).to(dev)
    layer_map = [(Activation, Pass()), (Convolution, ZPlus(zero_params="bias")),
                 (torch.nn.Linear, ZPlus(zero_params="bias"))]
    if resnet:
        from zennit.layer import Sum
        from zennit.rules import Norm
        from zennit.types import AvgPool
        layer_map += [(Sum, Norm()), (AvgPool, Norm())]
    composite = SpecialFirstLayerMapComposite(
        layer_map=layer_map, first_map=[(Convolution, ZBox(low, high))],
        canonizers=resnet_canonizers() if resnet else None)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    output = None
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
                output = model(x_dev).cpu()
        elif a.task == "dtd":
            with Gradient(model=model, composite=composite) as attributor:
                out, rel = attributor(x_dev, lambda o: torch.zeros_like(o).scatter_(
                    1, o.argmax(1, keepdim=True), o.gather(1, o.argmax(1, keepdim=True))))
            output = rel.cpu()
        else:
            xg = x_dev.clone().requires_grad_(True)
            out = model(xg)
            (g,) = torch.autograd.grad(out, xg, torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1.0))
            output = (g ** 2).cpu()
        sync()
        times.append(time.perf_counter() - start)
    if a.save and output is not None:
        np.save(a.save, output.detach().numpy().astype(np.float32))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"task": a.task, "times": times, "peak_rss_mb": rss, "torch": torch.__version__}
    if dev.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        result["gpu"] = torch.cuda.get_device_name(dev)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
