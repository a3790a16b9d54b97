#!/usr/bin/env bash
# Rebuilds this folder's Fashion-MNIST subset from the full data set: the first 2,000 training
# and the first 1,000 test images with their labels, as gzipped IDX files named as in the full
# set. `gzip -9 -n` stores no name and no time stamp, so the same input gives the same bytes.
#
# Usage: data/fashion-mnist-subset/make.sh [FULL_SET_DIR]
# FULL_SET_DIR defaults to $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist
# (Debian's package dataset-fashion-mnist: `apt-get install dataset-fashion-mnist`).
set -euo pipefail
src="${1:-${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}}"
out="$(cd "$(dirname "$0")" && pwd)"
train=2000
test=1000

python3 - "$src" "$out" "$train" "$test" <<'PY'
import gzip, os, struct, sys

src, out, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def read(stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                return path, f.read()
    sys.exit(f"make.sh: {stem}[.gz] not found in {src}")

def first(stem, n, expected_magic):
    path, data = read(stem)
    magic, = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        sys.exit(f"make.sh: {path}: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = data[3]
    dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    if dims[0] < n:
        sys.exit(f"make.sh: {path} holds {dims[0]} items, fewer than {n}")
    item = 1
    for d in dims[1:]:
        item *= d
    start = 4 + 4 * ndim
    if len(data) != start + dims[0] * item:
        sys.exit(f"make.sh: {path}: payload of {len(data) - start} bytes, expected {dims[0] * item}")
    dims[0] = n
    raw = data[:4] + struct.pack(">" + "I" * ndim, *dims) + data[start:start + n * item]
    with open(os.path.join(out, stem), "wb") as f:
        f.write(raw)
    return raw[start:]

for prefix, n in (("train", n_train), ("t10k", n_test)):
    first(prefix + "-images-idx3-ubyte", n, 0x803)
    labels = first(prefix + "-labels-idx1-ubyte", n, 0x801)
    counts = [labels.count(c) for c in range(10)]
    print(f"{prefix}: {n} images, per class (labels 0..9): {counts}")
PY

for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -9 -n -f "$out/$stem"
done
cd "$out" && sha256sum ./*.gz && du -cb ./*.gz | tail -n 1
