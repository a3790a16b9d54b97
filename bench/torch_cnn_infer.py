"""Inference side of workload W2 (see torch_cnn.py beside this file for the model): forward passes of
single Fashion-MNIST test images (batch 1) through the untrained CNN, model.eval() under torch.no_grad(),
timed after as many warm-up passes. Prints one JSON line, as `bench_cnn --infer N` does.

Usage:  python3 torch_cnn_infer.py --threads 1 --infer 2000 [--data DIR]
"""
import argparse, gzip, json, os, time
import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=1)
p.add_argument("--infer", type=int, default=2000)
p.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
with gzip.open(f"{a.data}/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:100].astype(np.float32) / 255.0
images = [torch.from_numpy(x[i:i + 1].copy()) for i in range(len(x))]
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)).eval()

def run(count):
    checksum = 0.0
    with torch.no_grad():
        for i in range(count):
            checksum += model(images[i % len(images)])[0, 0].item()
    return checksum

run(a.infer)
t = time.perf_counter()
run(a.infer)
dt = time.perf_counter() - t
print(json.dumps({"lib": "torch " + torch.__version__, "threads": a.threads,
                  "infer_batch1_per_s": round(a.infer / dt)}), flush=True)
