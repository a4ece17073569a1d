"""Loads a Cohort checkpoint into the same nn.Sequential in PyTorch and evaluates it on data.test.

Usage: python load_checkpoint.py CONFIG.yaml CHECKPOINT_DIR [--resnet20 REF_TORCH.py]
(needs torch, numpy, safetensors, pyyaml)

Builds the model from the config's layer list (a `residual` as the `Residual` module of
shared/reference/ref_torch.py, copied below), or with --resnet20 takes `resnet20(in_channels=C)` from
that file itself; loads model.safetensors with `safetensors.torch.load_file` +
`load_state_dict(strict=True)`, and prints the test loss and accuracy in inference mode: the same
figures `cohort eval CONFIG --checkpoint DIR` prints.
"""
import gzip, importlib.util, os, struct, sys
import numpy as np, torch, torch.nn as nn, yaml
from safetensors.torch import load_file


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def read_array(path):
    """A .npy array (NumPy's own reader) or an IDX file, either of them gzip'd or not."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            f.seek(0)
            return np.load(f)
    return read_idx(path)


def inputs(config, images):
    """The images as Cohort's model sees them: integer pixels times data.scale (float ones as
    stored), then data.normalize per channel (one value for every channel)."""
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x *= np.float32(config["data"].get("scale", 1 / 255))
    x = x.reshape(len(x), *config["model"]["input"])
    normalize = config["data"].get("normalize")
    if normalize:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = np.array(normalize["mean"], np.float32).reshape(shape)
        std = np.array(normalize["std"], np.float32).reshape(shape)
        x = (x - mean) / std
    return torch.tensor(x)


def resolve(path, base):
    beside = os.path.join(base, path)
    return beside if not os.path.isabs(path) and os.path.exists(beside) else path


def recurrent(cls, *args, last=True, **kwargs):
    """nn.LSTM, nn.GRU or nn.RNN (batch_first) returning only its output: the last step's [N, H], or
    every step's [N, T, H] (Cohort's return_sequences). A subclass, so its tensors keep their names."""
    class Recurrent(cls):
        def forward(self, x):
            out = super().forward(x)[0]
            return out[:, -1] if last else out
    return Recurrent(*args, batch_first=True, **kwargs)


class Residual(nn.Module):
    """y = body(x) + shortcut(x), as `Residual` in shared/reference/ref_torch.py."""
    def __init__(self, body, shortcut=()):
        super().__init__(); self.body = nn.Sequential(*body); self.shortcut = nn.Sequential(*shortcut)
    def forward(self, x): return self.body(x) + self.shortcut(x)


def build(config):
    return nn.Sequential(*build_layers(config["model"]["layers"], list(config["model"]["input"])))


def build_layers(entries, shape):
    """The modules of a list of layers whose input is [C, H, W] (or [F], [T, F]) `shape`."""
    input_shape = list(shape)
    layers = []
    for entry in entries:
        (name, opts), = entry.items() if isinstance(entry, dict) else [(entry, {})]
        opts = opts or {}
        if name == "conv2d":
            layers.append(nn.Conv2d(shape[0], opts["out_channels"], opts["kernel_size"], opts.get("stride", 1),
                                    opts.get("padding", 0), bias=opts.get("bias", True)))
        elif name in ("dense", "linear"):
            layers.append(nn.Linear(shape[0], opts["out_features"], bias=opts.get("bias", True)))
        elif name == "batchnorm":
            cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            layers.append(cls(shape[0], eps=opts.get("eps", 1e-5), momentum=opts.get("momentum", 0.1)))
        elif name == "dropout":
            layers.append(nn.Dropout(opts.get("p", 0.5)))
        elif name in ("relu", "sigmoid", "tanh"):
            layers.append({"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[name]())
        elif name in ("maxpool2d", "avgpool2d"):
            cls = nn.MaxPool2d if name == "maxpool2d" else nn.AvgPool2d
            layers.append(cls(opts["kernel_size"], opts.get("stride", opts["kernel_size"]), opts.get("padding", 0)))
        elif name == "flatten":
            layers.append(nn.Flatten())
        elif name == "adaptiveavgpool2d":
            size = opts["output_size"]
            layers.append(nn.AdaptiveAvgPool2d(tuple(size) if isinstance(size, list) else size))
        elif name == "residual":
            layers.append(Residual(build_layers(opts["body"], shape), build_layers(opts.get("shortcut") or [], shape)))
        elif name in ("lstm", "gru", "rnn"):
            cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[name]
            extra = {"nonlinearity": opts.get("nonlinearity", "tanh")} if name == "rnn" else {}
            layers.append(recurrent(cls, shape[-1], opts["hidden_size"], bias=opts.get("bias", True),
                                    last=not opts.get("return_sequences", False), **extra))
        else:
            raise SystemExit(f"layer {name} is not handled by this script")
        with torch.no_grad():
            shape = list(nn.Sequential(*layers).eval()(torch.zeros(2, *input_shape)).shape[1:])
    return layers


def main():
    config_path, checkpoint = sys.argv[1], sys.argv[2]
    config = yaml.safe_load(open(config_path))
    base = os.path.dirname(os.path.abspath(config_path))
    if "--resnet20" in sys.argv:
        spec = importlib.util.spec_from_file_location("ref_torch", sys.argv[sys.argv.index("--resnet20") + 1])
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
        model = reference.resnet20(in_channels=config["model"]["input"][0])
    else:
        model = build(config)
    model.load_state_dict(load_file(os.path.join(checkpoint, "model.safetensors")), strict=True)
    model.eval()
    test = config["data"]["test"]
    x = inputs(config, read_array(resolve(test["images"], base)))
    y = torch.tensor(read_array(resolve(test["labels"], base)).astype(np.int64))
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    print(f"pytorch: test loss {loss:.4f} accuracy {accuracy:.4f} ({len(y)} samples), strict load of {len(model.state_dict())} tensors")


if __name__ == "__main__":
    main()
