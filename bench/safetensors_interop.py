"""Interop check: a tapegrad CNN exported with `export_safetensors` loads into the same
torch.nn.Sequential with strict=True, and gives the same logits.

The model is workload W2's CNN (see torch_cnn.py), NCHW input [N, 1, 28, 28]:
  Conv2d(1, 32, 3, padding=1) -> ReLU -> MaxPool2d(2)
  Conv2d(32, 64, 3, padding=1) -> ReLU -> MaxPool2d(2)
  Flatten -> Linear(3136, 128) -> ReLU -> Linear(128, 10)
tapegrad names its parameters "0.weight", "0.bias", "3.weight", ... in PyTorch's layout,
so the file is a state_dict of this nn.Sequential.

Prints the logits of the inputs, one sample per line (10 numbers each, 9 significant
digits, enough to round-trip an f32). With --expected, also compares them with a file of
logits and exits with status 1 if any differs by more than --tol.

Usage:
  python3 safetensors_interop.py --weights model.safetensors --inputs x.f32 [--expected logits.f32] [--tol 1e-4]
  python3 safetensors_interop.py --weights model.safetensors --count 5      # seeded random inputs
Files of numbers (--inputs, --expected) are raw little-endian float32, row-major:
inputs [N, 1, 28, 28], logits [N, 10]. tests/interop.rs runs this script.
Needs: pip install torch numpy (the `safetensors` package is used if present, else the
file is read directly: 8-byte header length, JSON header, raw tensors).
"""
import argparse, json, struct, sys
import numpy as np
import torch
import torch.nn as nn


def read_safetensors(path):
    """The tensors of a safetensors file, by name."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        values = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(values.copy())
    return tensors


def w2(batchnorm):
    """W2's CNN; with batchnorm, a BatchNorm2d after each convolution."""
    def block(cin, cout):
        norm = [nn.BatchNorm2d(cout)] if batchnorm else []
        return [nn.Conv2d(cin, cout, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64),
                         nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="safetensors file written by export_safetensors")
    p.add_argument("--inputs", help="raw float32 inputs [N, 1, 28, 28]; default: --count seeded random images")
    p.add_argument("--count", type=int, default=4, help="number of random inputs without --inputs")
    p.add_argument("--expected", help="raw float32 logits [N, 10] to compare with")
    p.add_argument("--tol", type=float, default=1e-4, help="largest allowed absolute difference")
    p.add_argument("--batchnorm", action="store_true",
                   help="the model has a BatchNorm2d after each convolution (running statistics in the file)")
    a = p.parse_args()
    torch.set_num_threads(1)

    model = w2(a.batchnorm)
    model.load_state_dict(read_safetensors(a.weights), strict=True)
    model.eval()
    if a.inputs:
        x = torch.from_numpy(np.fromfile(a.inputs, dtype="<f4").reshape(-1, 1, 28, 28).copy())
    else:
        x = torch.rand(a.count, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    for row in logits.tolist():
        print(" ".join(f"{v:.9g}" for v in row))
    if a.expected:
        expected = torch.from_numpy(np.fromfile(a.expected, dtype="<f4").reshape(logits.shape).copy())
        diff = (logits - expected).abs().max().item()
        print(f"max abs difference from {a.expected}: {diff:.3g} (tolerance {a.tol:g})", file=sys.stderr)
        if not diff <= a.tol:
            sys.exit(1)


if __name__ == "__main__":
    main()
