"""#31 point 3: `vidlrp.Model.explain` from Python on full-width C3D, batch 1, against the
CLI's in-process explanation time (`vidlrp explain`'s `wall_time_s`, the same engine behind
a command line) and against Zennit's DTD in the same Python process (torch_bench.py's
composite: ZBox on conv1 with the caffe bounds, ZPlus with the bias ignored above, Pass on
ReLUs; Zennit's pooling is winner-take-all, so vidlrp is run with pool="wta" here too).

Run (a venv with the vidlrp wheel, torch, zennit, safetensors; a release build of the CLI):
    python benches/python_module_bench.py --vidlrp target/release/vidlrp --threads 2
Prints one JSON object: minimum seconds per side over --rounds rounds and the ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vidlrp", default="target/release/vidlrp", help="the CLI binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import vidlrp
    from safetensors.torch import load_file
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import Pass, ZBox, ZPlus
    from zennit.types import Activation, Convolution
    sys.path.insert(0, HERE)
    from torch_c3d import C3D

    torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp()
    weights = os.path.join(tmp, "c3d.safetensors")
    subprocess.run([a.vidlrp, "init", "--out", weights, "--seed", "1"], check=True,
                   stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(0)
    low = np.array([-90.25, -97.66, -101.41], np.float32)
    clip = (rng.uniform(0, 255, (3, 16, 112, 112)) + low.reshape(3, 1, 1, 1)).astype(np.float32)
    clip_path = os.path.join(tmp, "clip.npy")
    np.save(clip_path, clip)

    model = vidlrp.load(weights)
    model.explain(clip, "dtd", pool="wta", threads=a.threads)  # builds the network once
    # The two sides alternate round by round: this class of machine drifts by 10-20 % within
    # minutes, which back-to-back blocks of rounds would read as a difference between them.
    ours, cli = [], []
    for _ in range(a.rounds):
        t = time.perf_counter()
        e = model.explain(clip, "dtd", pool="wta", threads=a.threads)
        ours.append(time.perf_counter() - t)
        out = subprocess.run(
            [a.vidlrp, "explain", "--weights", weights, "--input", clip_path, "--pool", "wta",
             "--threads", str(a.threads), "--out", os.path.join(tmp, f"r{len(cli)}.npy"),
             "--json"], check=True, capture_output=True, text=True).stdout
        cli.append(json.loads(out)["wall_time_s"])

    net = C3D(load_file(weights)).eval()
    x = torch.from_numpy(clip[None])
    high = low + 255.0
    bound = lambda v: torch.from_numpy(v).view(1, 3, 1, 1, 1).expand_as(x)
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Convolution, ZPlus(zero_params="bias")),
                   (torch.nn.Linear, ZPlus(zero_params="bias"))],
        first_map=[(Convolution, ZBox(bound(low), bound(high)))])
    zennit = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        with Gradient(model=net, composite=composite) as attributor:
            _, rel = attributor(x, lambda o: torch.zeros_like(o).scatter_(
                1, o.argmax(1, keepdim=True), o.gather(1, o.argmax(1, keepdim=True))))
        zennit.append(time.perf_counter() - t)
    rel = rel[0].numpy()
    diff = float(np.abs(rel - e.relevance).max() / np.abs(rel).max())
    result = {
        "python_module_s": min(ours), "cli_in_process_s": min(cli), "zennit_s": min(zennit),
        "python_vs_cli": min(ours) / min(cli), "python_vs_zennit": min(ours) / min(zennit),
        "relevance_difference_vs_zennit": diff, "threads": a.threads, "rounds": a.rounds,
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
