"""The PyTorch C3D of the benchmarks: the port's architecture (pool5 padded (0, 1, 1)) at the
widths of a state dict (full C3D or any C3D-shaped model), ReLU, pooling and dropout as modules
so that Zennit's rules attach to them. Shared by torch_bench.py and torch_train_bench.py.
"""
import torch

CONV = ["conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b"]
# The pool after each convolution that has one: (kernel = stride, padding).
POOL = {"conv1": ((1, 2, 2), (0, 0, 0)), "conv2": ((2, 2, 2), (0, 0, 0)),
        "conv3b": ((2, 2, 2), (0, 0, 0)), "conv4b": ((2, 2, 2), (0, 0, 0)),
        "conv5b": ((2, 2, 2), (0, 1, 1))}


class C3D(torch.nn.Module):
    def __init__(self, sd, dropout=0.5):
        super().__init__()
        layers = []
        for name in CONV:
            w = sd[f"{name}.weight"]
            conv = torch.nn.Conv3d(w.shape[1], w.shape[0], 3, padding=1)
            setattr(self, name, conv)
            layers += [conv, torch.nn.ReLU()]
            if name in POOL:
                k, p = POOL[name]
                layers.append(torch.nn.MaxPool3d(k, k, p))
        # The ReLUs and pools as registered modules (the convolutions are attributes above).
        self.body = torch.nn.ModuleList([l for l in layers if not isinstance(l, torch.nn.Conv3d)])
        self.order = layers
        for name in ["fc6", "fc7", "fc8"]:
            w = sd[f"{name}.weight"]
            setattr(self, name, torch.nn.Linear(w.shape[1], w.shape[0]))
        self.relu6, self.relu7 = torch.nn.ReLU(), torch.nn.ReLU()
        self.drop6, self.drop7 = torch.nn.Dropout(dropout), torch.nn.Dropout(dropout)
        self.load_state_dict(sd)

    def forward(self, x):
        for layer in self.order:
            x = layer(x)
        x = self.drop6(self.relu6(self.fc6(x.flatten(1))))
        x = self.drop7(self.relu7(self.fc7(x)))
        return self.fc8(x)
