"""Where a convolution's weight gradient is exactly 0 in PyTorch, does one Adam step of Cohort move it?

Conv 1 -> C, ReLU, conv C -> C, ReLU, flatten, dense 3, on S x S maps at batch B, from the same
weights (written by PyTorch), one Adam step at lr 0.01; PyTorch runs the step in float64. For each
case it prints how many of the second convolution's weights have a gradient of exactly 0 in PyTorch
and how many of those Cohort moved. Winograd (3 x 3 stride-1 layers of 16 channels or more) leaves
rounding where every product behind a gradient is 0; `COHORT_CONV_ALGORITHM=im2col` keeps it 0.

    .venv/bin/python Tests/scripts/winograd_zero_gradients.py [COHORT_BINARY]
    COHORT_CONV_ALGORITHM=im2col .venv/bin/python Tests/scripts/winograd_zero_gradients.py

Needs torch, numpy and safetensors; not run by the tests (CI has no torch).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

COHORT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../.build/release/cohort")


def model(side, channels):
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, 3)).double()


def case(root, side, batch, data, channels=16, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    m = model(side, channels)
    initial = {k: v.float().contiguous() for k, v in m.state_dict().items()}
    run = os.path.join(root, f"s{side}-b{batch}-{data}")
    os.makedirs(run)
    save_file(initial, os.path.join(run, "init.safetensors"))
    x = rng.standard_normal((batch, 1, side, side)).astype(np.float32)
    if data == "sparse":
        x[rng.random(x.shape) < 0.7] = 0
    y = rng.integers(0, 3, batch).astype(np.int64)
    np.save(os.path.join(run, "x.npy"), x)
    np.save(os.path.join(run, "y.npy"), y)
    with open(os.path.join(run, "c.yaml"), "w") as f:
        f.write(f"""seed: 1
data:
  train: {{images: x.npy, labels: y.npy}}
  shuffle: false
model:
  input: [1, {side}, {side}]
  layers:
    - conv2d: {{out_channels: {channels}, kernel_size: 3, padding: 1, bias: false}}
    - relu: {{}}
    - conv2d: {{out_channels: {channels}, kernel_size: 3, padding: 1, bias: false}}
    - relu: {{}}
    - flatten: {{}}
    - dense: {{out_features: 3}}
  init: {{from: init.safetensors}}
optimizer: {{name: adam, lr: 0.01}}
train: {{batch_size: {batch}, max_steps: 1}}
checkpoint: {{dir: {run}/run}}
""")
    subprocess.run([COHORT, "train", "c.yaml"], cwd=run, check=True, capture_output=True)
    trained = load_file(os.path.join(run, "run/checkpoints/1/model.safetensors"))
    optimizer = torch.optim.Adam(m.parameters(), lr=0.01)
    nn.functional.cross_entropy(m(torch.tensor(x, dtype=torch.float64)), torch.tensor(y)).backward()
    zero = m[2].weight.grad == 0
    moved = (trained["2.weight"] != initial["2.weight"]) & zero
    largest = (trained["2.weight"] - initial["2.weight"])[zero].abs().max().item() if zero.any() else 0.0
    print(f"{side:2d} x {side:<2d} batch {batch}  {data:6s}  exactly 0 in PyTorch {int(zero.sum()):4d}  "
          f"moved by Cohort {int(moved.sum()):4d}  largest move {largest:.2g}")


with tempfile.TemporaryDirectory() as root:
    for side in (3, 5, 7, 8, 10, 14):
        for batch in (1, 2, 4):
            for data in ("normal", "sparse"):
                case(root, side, batch, data)
