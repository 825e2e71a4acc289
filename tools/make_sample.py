#!/usr/bin/env python3
"""Cut the small Fashion-MNIST sample in models/data/fashion-mnist-sample/.

Run from the repository root:

    python3 tools/make_sample.py [--src /usr/share/datasets/fashion-mnist]

Reads the full dataset from the Debian package `dataset-fashion-mnist`
(apt-get install dataset-fashion-mnist), takes the FIRST 5000 training and
the FIRST 1000 test examples (images and labels, original order), and writes
them as gzipped IDX files with the original four names, headers carrying the
new counts. It also writes README.md (counts, source, class histograms,
SHA-256 of every file) and LICENSE (Fashion-MNIST's MIT licence) next to
them. gzip headers have mtime 0 and no file name, so a rerun reproduces the
same bytes (given the same zlib). Only rerun it to change the sample size.
"""

import argparse
import gzip
import hashlib
import io
import os
import struct
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "models", "data", "fashion-mnist-sample")
N_TRAIN, N_TEST = 5000, 1000
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

LICENSE = """\
The MIT License (MIT) Copyright © [2017] Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the “Software”), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def read_idx(path):
    """(magic, dims, uint8 array) of a gzipped IDX file of unsigned bytes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: {data.size} data bytes, header says {dims}")
    return dims, data.reshape(dims)


def idx_bytes(arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename "" and mtime 0: no name or timestamp in the header -> reproducible
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def package_version():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "dataset-fashion-mnist"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def histogram(labels):
    return np.bincount(labels, minlength=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)

    files, hists = [], {}
    for split, count in (("train", N_TRAIN), ("t10k", N_TEST)):
        idims, images = read_idx(os.path.join(args.src, f"{split}-images-idx3-ubyte.gz"))
        ldims, labels = read_idx(os.path.join(args.src, f"{split}-labels-idx1-ubyte.gz"))
        assert len(idims) == 3 and idims[1:] == (28, 28) and len(ldims) == 1 and idims[0] == ldims[0]
        assert count <= idims[0]
        assert labels.max() < 10
        images, labels = images[:count], labels[:count]
        hists[split] = histogram(labels)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte.gz"
            data = gzip_bytes(idx_bytes(arr))
            with open(os.path.join(OUT_DIR, name), "wb") as f:
                f.write(data)
            # read back through the same parser
            dims, back = read_idx(os.path.join(OUT_DIR, name))
            assert dims == arr.shape and np.array_equal(back, arr)
            files.append((name, arr.shape, len(data), hashlib.sha256(data).hexdigest()))

    with open(os.path.join(OUT_DIR, "LICENSE"), "w", encoding="utf-8") as f:
        f.write(LICENSE)

    version = package_version()
    hist_rows = "\n".join(
        f"| {c} | {name} | {hists['train'][c]} | {hists['t10k'][c]} |" for c, name in enumerate(CLASSES))
    file_rows = "\n".join(
        f"| `{name}` | {list(shape)} | {size} | `{sha}` |" for name, shape, size, sha in files)
    readme = f"""\
# Fashion-MNIST sample

A small slice of [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)
by Zalando Research, for tests, examples and quick training runs:

- the **first {N_TRAIN}** examples of the training set (items 0..{N_TRAIN - 1} of
  `train-*-ubyte.gz`, original order), and
- the **first {N_TEST}** examples of the test set (items 0..{N_TEST - 1} of
  `t10k-*-ubyte.gz`, original order).

The files keep the original names and format: gzipped IDX (big-endian
header, magic `0x00000803` for images `[count, 28, 28]` and `0x00000801` for
labels `[count]`, unsigned bytes), with the counts above in their headers.
Labels are class indices 0..9; pixels are 0..255, 0 = background.

Source: Debian package `dataset-fashion-mnist` version `{version}`
(upstream snapshot of github.com/zalandoresearch/fashion-mnist), read from
`/usr/share/datasets/fashion-mnist/`. Regenerate with
`python3 tools/make_sample.py` from the repository root (gzip written with
mtime 0 and no file name, so the output is reproducible).

Fashion-MNIST is Copyright © 2017 Zalando SE and is distributed under the MIT
licence; see [LICENSE](LICENSE). Citation: Han Xiao, Kashif Rasul, Roland
Vollgraf, *Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms*, arXiv:1708.07747, 2017.

## Files

| file | shape | bytes | sha256 |
|---|---|---|---|
{file_rows}

## Class histogram

| label | class | train ({N_TRAIN}) | test ({N_TEST}) |
|---|---|---|---|
{hist_rows}
"""
    with open(os.path.join(OUT_DIR, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme)

    print(f"source: dataset-fashion-mnist {version} from {args.src}")
    print(f"{'label':>5}  {'class':<12} {'train':>6} {'test':>5}")
    for c, name in enumerate(CLASSES):
        print(f"{c:>5}  {name:<12} {hists['train'][c]:>6} {hists['t10k'][c]:>5}")
    print(f"{'':>5}  {'total':<12} {hists['train'].sum():>6} {hists['t10k'].sum():>5}")
    for name, shape, size, sha in files:
        print(f"{name:<28} {str(list(shape)):<16} {size:>9} bytes  sha256 {sha[:16]}…")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, n)) for n in os.listdir(OUT_DIR))
    print(f"total {total} bytes in {OUT_DIR}")


if __name__ == "__main__":
    main()
