"""Writes a full-size C3D (78 M parameters, 487 classes, about 313 MB) in every format vidlrp
reads, for `cargo xtask bench-weights`: original.safetensors, legacy.pickle (torch.save before
1.6), model.pt (zip), mmaction2.pth, caffe-v10.caffemodel (C3D v1.0 field numbers, written by
hand like fixtures/checkpoints/generate.py).

Usage: python benches/full_checkpoints.py DIR
"""

import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures", "checkpoints"))
import generate  # noqa: E402  (the fixture writer: names and the protobuf encoder)


def full_weights():
    rng = np.random.default_rng(0)
    widths = [64, 128, 256, 256, 512, 512, 512, 512]
    sd = OrderedDict()
    cin = 3
    for name, w in zip(generate.CONV, widths):
        sd[f"{name}.weight"] = rng.standard_normal((w, cin, 3, 3, 3), dtype=np.float32) * 0.01
        sd[f"{name}.bias"] = rng.standard_normal(w, dtype=np.float32) * 0.01
        cin = w
    for name, i, o in [("fc6", 8192, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 487)]:
        sd[f"{name}.weight"] = rng.standard_normal((o, i), dtype=np.float32) * 0.01
        sd[f"{name}.bias"] = rng.standard_normal(o, dtype=np.float32) * 0.01
    return sd


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    sd = full_weights()
    p = lambda n: os.path.join(out, n)  # noqa: E731
    save_file(dict(sd), p("original.safetensors"))
    tsd = OrderedDict((k, torch.from_numpy(v)) for k, v in sd.items())
    torch.save(tsd, p("legacy.pickle"), _use_new_zipfile_serialization=False)
    torch.save(tsd, p("model.pt"))
    torch.save({"meta": {"epoch": 45}, "state_dict": generate.mmaction2_names(tsd)}, p("mmaction2.pth"))
    with open(p("caffe-v10.caffemodel"), "wb") as f:
        f.write(generate.caffe_v10(sd))
    print("wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
