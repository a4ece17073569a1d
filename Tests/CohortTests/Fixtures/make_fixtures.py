"""Generates the PyTorch reference fixtures that CohortTests load (no torch needed to run the tests).

Each case is a small model trained for 12 steps (SGD, Adam, AdamW, RMSprop or Adagrad; optionally
a schedule and gradient clipping; batches of 16, the whole set, or 1) in float64 by PyTorch, from
float32 initial weights, on uint8 "images" scaled by 1/255 in float32 (exactly what Cohort's data
loader computes):

    <case>.yaml                   the Cohort config (shuffle off, init.from the initial weights)
    <case>-images.idx, -labels.idx the data, uncompressed IDX
    <case>-init.safetensors       the initial state dict (float32; num_batches_tracked int64)
    <case>-expected.safetensors   the state dict after training, computed in float64, stored as float64

Run from anywhere:  python3 Tests/CohortTests/Fixtures/make_fixtures.py [CASE ...]   (needs torch, numpy,
safetensors); without names it writes every case. A case's seed is fixed (100 + its position in
CASES, or its own `seed`), so appending a case leaves the others' files byte-identical.
"""
import math, os, struct, sys
import numpy as np
import torch, torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, BATCH, SAMPLES = 12, 16, 48


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 10))

CNN_LAYERS = """    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
    - batchnorm: {}
    - relu: {}
    - maxpool2d: {kernel_size: 2}
    - conv2d: {out_channels: 6, kernel_size: 3, stride: 2, padding: 1, bias: false}
    - batchnorm: {}
    - sigmoid: {}
    - avgpool2d: {kernel_size: 2}
    - flatten: {}
    - dense: {out_features: 16}
    - batchnorm: {}
    - tanh: {}
    - dense: {out_features: 10}"""


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 20), nn.BatchNorm1d(20), nn.Tanh(),
                         nn.Linear(20, 16), nn.Sigmoid(), nn.Linear(16, 10))

MLP_LAYERS = """    - flatten: {}
    - dense: {out_features: 20}
    - batchnorm: {momentum: 0.2, eps: 1.0e-3}
    - tanh: {}
    - dense: {out_features: 16}
    - sigmoid: {}
    - dense: {out_features: 10}"""


# The adaptive optimizers divide by a running root mean square of the gradient, so they turn a
# gradient that is zero in exact arithmetic into a step of up to lr: the bias of a layer followed by
# batch norm has such a gradient (the normalisation removes any shift), ~1e-17 in PyTorch's float64
# and ~1e-9 in Cohort's float32. Their cases therefore use no bias before batch norm, as is usual.

def mlp_nobias():
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 20, bias=False), nn.BatchNorm1d(20), nn.Tanh(),
                         nn.Linear(20, 16), nn.Sigmoid(), nn.Linear(16, 10))

MLP_NOBIAS_LAYERS = MLP_LAYERS.replace("dense: {out_features: 20}", "dense: {out_features: 20, bias: false}")


def cnn_nobias():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6, 16, bias=False), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 10))

CNN_NOBIAS_LAYERS = (CNN_LAYERS.replace("kernel_size: 3, padding: 1}", "kernel_size: 3, padding: 1, bias: false}")
                     .replace("dense: {out_features: 16}", "dense: {out_features: 16, bias: false}"))


def cnn_bn2d():
    """Batch norm over 8x8 feature maps only: PyTorch refuses BatchNorm1d on a batch of one."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10))

CNN_BN2D_LAYERS = """    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
    - batchnorm: {}
    - relu: {}
    - maxpool2d: {kernel_size: 2}
    - flatten: {}
    - dense: {out_features: 10}"""


def recurrent(cls, *args, last=True, **kwargs):
    """nn.LSTM, nn.GRU or nn.RNN (batch_first) returning only its output: every step's [N, T, H], or with
    `last` the last step's [N, H], as Cohort's layer without and with return_sequences. A subclass,
    so that inside nn.Sequential its tensors keep PyTorch's names (`0.weight_ih_l0`, ...)."""
    class Recurrent(cls):
        def forward(self, x):
            out = super().forward(x)[0]
            return out[:, -1] if last else out
    return Recurrent(*args, batch_first=True, **kwargs)


def lstm_head():
    return nn.Sequential(recurrent(nn.LSTM, 5, 8), nn.Linear(8, 10))

LSTM_LAYERS = """    - lstm: {hidden_size: 8}
    - dense: {out_features: 10}"""


def gru_head():
    return nn.Sequential(recurrent(nn.GRU, 4, 8), nn.Linear(8, 10))

GRU_LAYERS = """    - gru: {hidden_size: 8}
    - dense: {out_features: 10}"""


def rnn_head():
    return nn.Sequential(recurrent(nn.RNN, 5, 8), nn.Linear(8, 10))

RNN_LAYERS = """    - rnn: {hidden_size: 8}
    - dense: {out_features: 10}"""


def stacked():
    return nn.Sequential(recurrent(nn.LSTM, 5, 6, bias=False, last=False),
                         recurrent(nn.RNN, 6, 5, nonlinearity="relu"), nn.Linear(5, 10))

STACKED_LAYERS = """    - lstm: {hidden_size: 6, return_sequences: true, bias: false}
    - rnn: {hidden_size: 5, nonlinearity: relu}
    - dense: {out_features: 10}"""


class Residual(nn.Module):
    """y = body(x) + shortcut(x): the same module as `Residual` in shared/reference/ref_torch.py
    (copied so that this script runs without shared/), whose state-dict names the residual layer keeps."""
    def __init__(self, body, shortcut=()):
        super().__init__(); self.body = nn.Sequential(*body); self.shortcut = nn.Sequential(*shortcut)
    def forward(self, x): return self.body(x) + self.shortcut(x)


def resnet_small():
    """An identity block, a stride-2 block with a 1x1 convolution + batch norm shortcut, global average pooling."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        Residual([nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                  nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)]), nn.ReLU(),
        Residual([nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                  nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)],
                 [nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6)]), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10))

RESNET_SMALL_LAYERS = """    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
    - batchnorm: {}
    - relu: {}
    - residual:
        body:
          - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
          - batchnorm: {}
          - relu: {}
          - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
          - batchnorm: {}
    - relu: {}
    - residual:
        body:
          - conv2d: {out_channels: 6, kernel_size: 3, stride: 2, padding: 1, bias: false}
          - batchnorm: {}
          - relu: {}
          - conv2d: {out_channels: 6, kernel_size: 3, padding: 1, bias: false}
          - batchnorm: {}
        shortcut:
          - conv2d: {out_channels: 6, kernel_size: 1, stride: 2, bias: false}
          - batchnorm: {}
    - relu: {}
    - adaptiveavgpool2d: {output_size: 1}
    - flatten: {}
    - dense: {out_features: 10}"""


def resnet_nested():
    """A residual block inside a body, a shortcut of a 1x1 convolution with bias and no batch norm,
    and adaptive average pooling to 3 x 2 over a 5 x 5 map (overlapping windows)."""
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.Tanh(),
        Residual([nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(),
                  Residual([nn.Conv2d(5, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5)]), nn.Sigmoid()],
                 [nn.Conv2d(3, 5, 1, stride=2)]),
        nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(), nn.Linear(30, 10))

RESNET_NESTED_LAYERS = """    - conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}
    - batchnorm: {}
    - tanh: {}
    - residual:
        body:
          - conv2d: {out_channels: 5, kernel_size: 3, stride: 2, padding: 1, bias: false}
          - batchnorm: {}
          - relu: {}
          - residual:
              body:
                - conv2d: {out_channels: 5, kernel_size: 3, padding: 1, bias: false}
                - batchnorm: {}
          - sigmoid: {}
        shortcut:
          - conv2d: {out_channels: 5, kernel_size: 1, stride: 2}
    - adaptiveavgpool2d: {output_size: [3, 2]}
    - flatten: {}
    - dense: {out_features: 10}"""


def lr_factor(schedule, step):
    """Cohort's schedule: linear warm-up, then constant, step or cosine over the remaining steps."""
    warmup = schedule.get("warmup_steps", 0)
    if step < warmup:
        return (step + 1) / warmup
    t = step - warmup
    if schedule["name"] == "cosine":
        span = max(STEPS - warmup, 1)
        return (1 + math.cos(math.pi * min(t, span) / span)) / 2
    if schedule["name"] == "step":
        return schedule["gamma"] ** (t // schedule["step_size"])
    return 1.0


CASES = {
    "cnn_momentum": dict(build=cnn, layers=CNN_LAYERS, input=[1, 8, 8],
                         opt=dict(lr=0.05, momentum=0.9, weight_decay=1e-3), schedule=None),
    "cnn_nesterov": dict(build=cnn, layers=CNN_LAYERS, input=[1, 8, 8],
                         opt=dict(lr=0.05, momentum=0.9, nesterov=True), schedule=None),
    "mlp_nesterov": dict(build=mlp, layers=MLP_LAYERS, input=[1, 6, 6],
                         opt=dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=5e-4), schedule=None,
                         bn=dict(momentum=0.2, eps=1e-3)),
    "mlp_dampening_cosine": dict(build=mlp, layers=MLP_LAYERS, input=[1, 6, 6],
                                 opt=dict(lr=0.2, momentum=0.9, dampening=0.3),
                                 schedule=dict(name="cosine", warmup_steps=3), bn=dict(momentum=0.2, eps=1e-3)),
    "mlp_plain_step": dict(build=mlp, layers=MLP_LAYERS, input=[1, 6, 6],
                           opt=dict(lr=0.3), schedule=dict(name="step", step_size=5, gamma=0.5),
                           bn=dict(momentum=0.2, eps=1e-3)),
    # Added with the other optimizers; the cases above keep their seeds (100 + position).
    "cnn_adam": dict(build=cnn_nobias, layers=CNN_NOBIAS_LAYERS, input=[1, 8, 8], optim="adam",
                     opt=dict(lr=0.01), schedule=None),
    "mlp_adam_amsgrad_decay": dict(build=mlp_nobias, layers=MLP_NOBIAS_LAYERS, input=[1, 6, 6], optim="adam",
                                   opt=dict(lr=0.02, betas=[0.8, 0.99], eps=1e-6, weight_decay=0.01, amsgrad=True),
                                   schedule=None, bn=dict(momentum=0.2, eps=1e-3)),
    "mlp_adamw": dict(build=mlp_nobias, layers=MLP_NOBIAS_LAYERS, input=[1, 6, 6], optim="adamw",
                      opt=dict(lr=0.02), schedule=None, bn=dict(momentum=0.2, eps=1e-3)),
    "mlp_rmsprop": dict(build=mlp_nobias, layers=MLP_NOBIAS_LAYERS, input=[1, 6, 6], optim="rmsprop",
                        opt=dict(lr=0.005), schedule=None, bn=dict(momentum=0.2, eps=1e-3)),
    "cnn_rmsprop_centered_momentum": dict(build=cnn_nobias, layers=CNN_NOBIAS_LAYERS, input=[1, 8, 8], optim="rmsprop",
                                          opt=dict(lr=0.003, alpha=0.9, eps=1e-6, weight_decay=1e-3, momentum=0.8,
                                                   centered=True), schedule=None),
    "mlp_adagrad": dict(build=mlp_nobias, layers=MLP_NOBIAS_LAYERS, input=[1, 6, 6], optim="adagrad",
                        opt=dict(lr=0.05, lr_decay=0.05, weight_decay=1e-3, initial_accumulator_value=0.1),
                        schedule=None, bn=dict(momentum=0.2, eps=1e-3)),
    "cnn_sgd_clip": dict(build=cnn, layers=CNN_LAYERS, input=[1, 8, 8], opt=dict(lr=0.1, momentum=0.9),
                         schedule=None, clip=1.2),
    "mlp_adam_step": dict(build=mlp_nobias, layers=MLP_NOBIAS_LAYERS, input=[1, 6, 6], optim="adam",
                          opt=dict(lr=0.02), schedule=dict(name="step", step_size=4, gamma=0.5, warmup_steps=2),
                          bn=dict(momentum=0.2, eps=1e-3)),
    "mlp_full_batch": dict(build=mlp, layers=MLP_LAYERS, input=[1, 6, 6], opt=dict(lr=0.5, momentum=0.9),
                           schedule=None, bn=dict(momentum=0.2, eps=1e-3), batch="full"),
    "cnn_stochastic": dict(build=cnn_bn2d, layers=CNN_BN2D_LAYERS, input=[1, 8, 8], opt=dict(lr=0.02, momentum=0.5),
                           schedule=None, batch=1),
}

OPTIMIZERS = dict(sgd=torch.optim.SGD, adam=torch.optim.Adam, adamw=torch.optim.AdamW,
                  rmsprop=torch.optim.RMSprop, adagrad=torch.optim.Adagrad)


def batch_size(case):
    batch = case.get("batch", BATCH)
    return SAMPLES if batch == "full" else batch


# Recurrent layers with a dense head, inputs [T, F], each with its own seed.
RECURRENT_CASES = {
    "lstm_momentum": dict(build=lstm_head, layers=LSTM_LAYERS, input=[7, 5], seed=200,
                          opt=dict(lr=0.5, momentum=0.9, weight_decay=1e-3), schedule=None),
    "gru_nesterov": dict(build=gru_head, layers=GRU_LAYERS, input=[6, 4], seed=201,
                         opt=dict(lr=0.5, momentum=0.9, nesterov=True), schedule=None),
    "rnn_dampening_cosine": dict(build=rnn_head, layers=RNN_LAYERS, input=[7, 5], seed=202,
                                 opt=dict(lr=0.2, momentum=0.9, dampening=0.2),
                                 schedule=dict(name="cosine", warmup_steps=2)),
    "lstm_rnn_relu_stacked": dict(build=stacked, layers=STACKED_LAYERS, input=[6, 5], seed=203,
                                  opt=dict(lr=0.3, momentum=0.9), schedule=None),
    "lstm_adam": dict(build=lstm_head, layers=LSTM_LAYERS, input=[7, 5], seed=204, optim="adam",
                      opt=dict(lr=0.01), schedule=None),
    "gru_rmsprop": dict(build=gru_head, layers=GRU_LAYERS, input=[6, 4], seed=205, optim="rmsprop",
                        opt=dict(lr=0.003, momentum=0.5), schedule=None),
    "rnn_adamw_clip": dict(build=rnn_head, layers=RNN_LAYERS, input=[7, 5], seed=206, optim="adamw",
                           opt=dict(lr=0.01, weight_decay=0.05), schedule=None, clip=0.5),
}


# Residual networks, each with its own seed.
RESIDUAL_CASES = {
    "resnet_nesterov": dict(build=resnet_small, layers=RESNET_SMALL_LAYERS, input=[2, 8, 8], seed=300,
                            opt=dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), schedule=None),
    "resnet_adam": dict(build=resnet_small, layers=RESNET_SMALL_LAYERS, input=[2, 8, 8], seed=301, optim="adam",
                        opt=dict(lr=0.01), schedule=None),
    "resnet_nested_cosine": dict(build=resnet_nested, layers=RESNET_NESTED_LAYERS, input=[1, 10, 10], seed=302,
                                 opt=dict(lr=0.2, momentum=0.9), schedule=dict(name="cosine", warmup_steps=2)),
}


def write_idx(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def yaml_value(v):
    """Python's repr, except that YAML 1.1 reads 1e-06 as a string: write 1.0e-06."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    text = str(v)
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else text


def yaml_config(name, case):
    opt = case["opt"]
    keys = "".join(f"\n  {k}: {yaml_value(v)}" for k, v in opt.items())
    schedule = case["schedule"]
    sched = ""
    if schedule:
        sched = "\n  schedule: {" + ", ".join(f"{k}: {v}" for k, v in schedule.items()) + "}"
    clip = f"\n  clip_grad_norm: {case['clip']}" if "clip" in case else ""
    return f"""# PyTorch reference case, generated by make_fixtures.py
seed: 1
data:
  train: {{images: {name}-images.idx, labels: {name}-labels.idx}}
  shuffle: false
model:
  input: {case['input']}
  layers:
{case['layers']}
  init: {{from: {name}-init.safetensors}}
optimizer:
  name: {case.get('optim', 'sgd')}{keys}{sched}
train:
  batch_size: {case.get('batch', BATCH)}
  max_steps: {STEPS}{clip}
checkpoint: {{dir: runs/fixture-{name}}}
"""


def make(name, case, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    shape = case["input"]
    images = rng.integers(0, 256, size=(SAMPLES, *shape[1:]) if shape[0] == 1 else (SAMPLES, *shape)).astype(np.uint8)
    labels = rng.integers(0, 10, size=SAMPLES).astype(np.uint8)
    write_idx(os.path.join(HERE, f"{name}-images.idx"), images)
    write_idx(os.path.join(HERE, f"{name}-labels.idx"), labels)
    x = torch.tensor(images.astype(np.float32) * np.float32(1 / 255)).reshape(SAMPLES, *shape).double()
    y = torch.tensor(labels.astype(np.int64))

    model = case["build"]()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and "bn" in case:
            m.momentum, m.eps = case["bn"]["momentum"], case["bn"]["eps"]
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, f"{name}-init.safetensors"))
    initial = {k: v.double().clone() for k, v in model.state_dict().items()}
    model = model.double().train()
    opt = OPTIMIZERS[case.get("optim", "sgd")](model.parameters(), **case["opt"])
    schedule = case["schedule"] or dict(name="constant")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(schedule, s))
    lossf = nn.CrossEntropyLoss()
    batch = batch_size(case)
    per_epoch = SAMPLES // batch
    clipped = 0
    for step in range(STEPS):
        start = (step % per_epoch) * batch
        opt.zero_grad()
        loss = lossf(model(x[start:start + batch]), y[start:start + batch])
        loss.backward()
        if "clip" in case:
            norm = nn.utils.clip_grad_norm_(model.parameters(), case["clip"])
            clipped += int(norm > case["clip"])
        opt.step()
        sched.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, f"{name}-expected.safetensors"))
    with open(os.path.join(HERE, f"{name}.yaml"), "w") as f:
        f.write(yaml_config(name, case))
    # The test's tolerance is 1e-4 of each tensor's scale: training must move every tensor much further.
    moved = min((v.double() - initial[k]).abs().max().item() / v.double().abs().max().item()
                for k, v in model.state_dict().items() if v.is_floating_point())
    print(f"{name}: final loss {loss.item():.6f}, smallest change of a tensor {moved:.2e} of its scale"
          + (f", clipped {clipped} of {STEPS} steps" if "clip" in case else ""))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float32)
    every = {name: (case, 100 + i) for i, (name, case) in enumerate(CASES.items())}
    every.update({name: (case, case["seed"]) for name, case in RECURRENT_CASES.items()})
    every.update({name: (case, case["seed"]) for name, case in RESIDUAL_CASES.items()})
    for name in sys.argv[1:] or every:
        if name not in every:
            raise SystemExit(f"unknown case {name} (cases: {', '.join(every)})")
        make(name, every[name][0], seed=every[name][1])
