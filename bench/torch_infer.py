"""Inference side of workloads W1 and W2 (see torch_mlp.py and torch_cnn.py beside this file for the models):
forward passes of Fashion-MNIST test images in batches of B through the untrained model, model.eval() under
torch.no_grad(), timed after as many warm-up samples. The inputs are whole batches of the first max(100, B) test
images, cycled through; N is rounded up to whole batches. Prints one JSON line with the samples per second, as
`bench_mlp --infer N --infer-batch B` (W1) and `bench_cnn --infer N --infer-batch B` (W2) do.

Usage:  python3 torch_infer.py --model mlp|cnn --threads 1 --infer 2000 --batch 1 [--data DIR]
Needs:  pip install torch numpy ; apt-get install dataset-fashion-mnist
"""
import argparse, gzip, json, os, time
import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", choices=["mlp", "cnn"], required=True, help="mlp: W1, cnn: W2")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--infer", type=int, default=2000, help="samples to time")
p.add_argument("--batch", type=int, default=1, help="samples per forward pass")
p.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
a = p.parse_args()
if a.batch < 1 or a.infer < 1:
    p.error(f"--batch and --infer need at least 1, got --batch {a.batch} --infer {a.infer}")
torch.set_num_threads(a.threads)
torch.manual_seed(0)
shape = (-1, 784) if a.model == "mlp" else (-1, 1, 28, 28)
with gzip.open(f"{a.data}/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(shape).astype(np.float32) / 255.0
count = -(-max(100, a.batch) // a.batch)  # whole batches covering max(100, B) images
if count * a.batch > len(x):
    count = len(x) // a.batch
if count == 0:
    p.error(f"--batch {a.batch} is more than the {len(x)} test images")
inputs = [torch.from_numpy(x[i * a.batch:(i + 1) * a.batch].copy()) for i in range(count)]
if a.model == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
else:
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
model.eval()
passes = -(-a.infer // a.batch)

def run():
    checksum = 0.0
    with torch.no_grad():
        for i in range(passes):
            checksum += model(inputs[i % len(inputs)])[0, 0].item()
    return checksum

run()
t = time.perf_counter()
checksum = run()
dt = time.perf_counter() - t
print(json.dumps({"lib": "torch " + torch.__version__, "threads": a.threads, "infer_batch": a.batch,
                  "infer_per_s": round(passes * a.batch / dt), "checksum": round(checksum, 3)}), flush=True)
