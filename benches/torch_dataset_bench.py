#!/usr/bin/env python3
"""The Python side of `cargo xtask bench-dataset`: a step-size sweep as a researcher writes it.

For every video of the manifest: decode it once with PyAV up to the last frame any step needs,
keeping the frames the snippets use; for every step, cut the snippet (frames offset + i*step),
preprocess it with the caffe preset (resize to 128x171 bilinear with half-pixel centres, centre
crop 112x112 at rows 8..120 and columns 29..141, BGR, subtract the channel means) and explain it
with every method: DTD of the trained model (Zennit: ZBox on conv1 with the preset's bounds,
ZPlus(zero_params='bias') above, max pooling by gradient), SA (autograd, squared) and DTD-u
(DTD of the re-initialised model). Each explanation gives the frame shares
r_t = sum R[:, t] / sum R and the top-1/top-5 hits of the explained model.

Prints one JSON line: wall time, time in explanations, time decoding, snippets, peak RSS and
the share vectors (for checking that both sides did the same work).
"""
import argparse
import csv
import json
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import Pass, ZBox, ZPlus
from zennit.types import Activation, Convolution

from torch_bench import C3D

MEAN_BGR = torch.tensor([90.25, 97.66, 101.41]).view(1, 3, 1, 1, 1)


def read_frames(path, wanted):
    """The frames at the indices in `wanted` (a set), decoded in one pass, as HxWx3 uint8 RGB
    (an .npy file holds the frames as a uint8 (T, H, W, 3) array)."""
    last = max(wanted)
    if path.endswith(".npy"):
        frames = np.load(path, mmap_mode="r")
        return {i: np.array(frames[i]) for i in wanted}
    frames = {}
    import av  # only mp4 videos need PyAV

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return frames


def preprocess(frames):
    """T frames HxWx3 uint8 RGB -> [1, 3, T, 112, 112] float32, caffe preset."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()  # T,3,H,W
    x = F.interpolate(x, size=(128, 171), mode="bilinear", align_corners=False, antialias=False)
    x = x[:, :, 8:120, 29:141]
    x = x.flip(1)  # RGB -> BGR
    x = x.permute(1, 0, 2, 3).unsqueeze(0).contiguous()  # 1,3,T,H,W
    return x - MEAN_BGR


def top1_seed(out):
    idx = out.argmax(1, keepdim=True)
    return torch.zeros_like(out).scatter_(1, idx, out.gather(1, idx))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--untrained", required=True, help="the DTD-u weights")
    ap.add_argument("--steps", required=True)
    ap.add_argument("--methods", default="dtd,sa,dtd-u")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    start_all = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(a.device)
    steps = [int(s) for s in a.steps.split(",")]
    methods = a.methods.split(",")
    models = {}
    for name, path in (("trained", a.weights), ("untrained", a.untrained)):
        sd = load_file(path)
        m = C3D(sd).eval()
        m.load_state_dict(sd)
        models[name] = m.to(dev)
    base = os.path.dirname(os.path.abspath(a.manifest))
    with open(a.manifest) as f:
        rows = [r for r in csv.reader(f) if r and r[0] != "path"]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def composite(x):
        low = (-MEAN_BGR).expand_as(x).to(dev)
        high = (255 - MEAN_BGR).expand_as(x).to(dev)
        return SpecialFirstLayerMapComposite(
            layer_map=[(Activation, Pass()), (Convolution, ZPlus(zero_params="bias")),
                       (torch.nn.Linear, ZPlus(zero_params="bias"))],
            first_map=[(Convolution, ZBox(low, high))])

    explain_s = decode_s = 0.0
    snippets = 0
    shares = []
    for item, (path, label) in enumerate(rows):
        t0 = time.perf_counter()
        wanted = {a.offset + i * s for s in steps for i in range(a.length)}
        frames = read_frames(os.path.join(base, path), wanted)
        inputs = {s: preprocess([frames[a.offset + i * s] for i in range(a.length)]) for s in steps}
        decode_s += time.perf_counter() - t0
        for method in methods:
            for s in steps:
                sync()
                t0 = time.perf_counter()
                x = inputs[s].to(dev)
                if method == "sa":
                    xg = x.clone().requires_grad_(True)
                    out = models["trained"](xg)
                    seed = torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1.0)
                    (g,) = torch.autograd.grad(out, xg, seed)
                    rel = g ** 2
                else:
                    model = models["trained" if method == "dtd" else "untrained"]
                    with Gradient(model=model, composite=composite(x)) as attributor:
                        out, rel = attributor(x, top1_seed)
                per_frame = rel.detach().sum(dim=(0, 1, 3, 4)).double().cpu()
                logits = out.detach()[0].cpu()
                sync()
                explain_s += time.perf_counter() - t0
                snippets += 1
                top5 = logits.topk(5).indices.tolist()
                shares.append({
                    "condition": f"{method} step={s}", "item": item,
                    "shares": (per_frame / per_frame.sum()).tolist(),
                    "top1": top5[0] == int(label), "top5": int(label) in top5,
                })
    wall = time.perf_counter() - start_all
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall_s": wall, "explain_s": explain_s, "decode_s": decode_s,
                      "snippets": snippets, "peak_rss_mb": rss, "torch": torch.__version__,
                      "shares": shares}))


if __name__ == "__main__":
    main()
