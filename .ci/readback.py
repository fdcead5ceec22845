"""Reads back, with numpy and the safetensors package, the files vidlrp wrote in CI.

Usage: python3 .ci/readback.py DIR, where DIR holds w.safetensors and w.npz (the same seeded
model written by `vidlrp init`) and demo/ (written by `vidlrp demo --size small`).
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

d = Path(sys.argv[1])

st = load_file(str(d / "w.safetensors"))
npz = dict(np.load(d / "w.npz"))
assert sorted(st) == sorted(npz), (sorted(st), sorted(npz))
assert "conv1.weight" in st and "fc8.bias" in st, sorted(st)
for name, a in st.items():
    b = npz[name]
    assert a.dtype == np.float32 and b.dtype == np.float32, (name, a.dtype, b.dtype)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    assert np.array_equal(a, b), name
assert st["conv1.weight"].shape[1:] == (3, 3, 3, 3), st["conv1.weight"].shape
print(f"readback: {len(st)} tensors identical in safetensors and npz")

demo = d / "demo"
summary = json.loads((demo / "summary.json").read_text())
clip = np.load(demo / "clip.npy")
assert clip.dtype == np.float32 and clip.shape == (3, 16, 112, 112), (clip.dtype, clip.shape)
for method in ("dtd", "sa"):
    r = np.load(demo / f"{method}.npy")
    assert r.dtype == np.float32 and r.shape == clip.shape, (method, r.dtype, r.shape)
    s = summary["methods"][method]
    total = float(r.astype(np.float64).sum())
    want = s["samples"][0]["relevance_sum"]
    assert abs(total - want) <= 1e-5 * max(abs(want), 1e-12), (method, total, want)
    frames = r.astype(np.float64).sum(axis=(0, 2, 3))
    shares = frames / frames.sum()
    assert np.allclose(shares, s["frame_shares"], rtol=1e-9, atol=1e-12), method
    print(f"readback: {method}.npy sums to {total:.6g} as summary.json says")
print("readback: ok")
