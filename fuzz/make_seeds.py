#!/usr/bin/env python3
"""Writes the seed corpora: a few small valid and broken files per target.

Run from anywhere: python3 fuzz/make_seeds.py. Deterministic (gzip
mtime 0), so re-running changes nothing.
"""
import gzip
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


def images(count, rows, cols, pixels):
    return struct.pack(">IIII", 0x803, count, rows, cols) + bytes(pixels)


def labels(count, values):
    return struct.pack(">II", 0x801, count) + bytes(values)


IMAGES = images(3, 2, 3, [i * 15 for i in range(18)])
LABELS = labels(3, [3, 0, 9])

raw = {
    "images": IMAGES,
    "labels": LABELS,
    "empty-images": images(0, 28, 28, []),
    "truncated-header": IMAGES[:10],
    "truncated-data": IMAGES[:-1],
    "trailing-byte": LABELS + b"\x00",
    "bad-magic": b"PK\x03\x04" + IMAGES[4:],
    "zero-rows": images(5, 0, 28, []),
    "liar-count": images(1 << 31, 28, 28, [1, 2, 3]),
    "overflow-dims": images(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, []),
    "bad-label": labels(2, [1, 10]),
    # For from_idx_bytes: the first byte picks the cut (here just after the images).
    "split-set": bytes([int(256 * len(IMAGES) / (len(IMAGES) + len(LABELS))) + 1]) + IMAGES + LABELS,
}
for name, data in raw.items():
    write("idx_raw", name, data)

member = gz(LABELS)
bomb = gz(labels(10, [1] * 10) + bytes(200_000))
bad_crc = bytearray(gz(IMAGES))
bad_crc[-8] ^= 0xFF
gzipped = {
    "images.gz": gz(IMAGES),
    "labels.gz": member,
    "two-members.gz": gz(IMAGES[:7]) + gz(IMAGES[7:]),
    "bad-crc.gz": bytes(bad_crc),
    "cut-trailer.gz": member[:-3],
    "cut-deflate.gz": gz(IMAGES)[:20],
    "junk-after.gz": member + b"junk",
    "bomb.gz": bomb,
    "liar.gz": gz(images(1 << 31, 28, 28, [1, 2, 3])),
    # Not gzip: the target treats it as the content of a gzip file.
    "content-images": IMAGES,
    "content-labels": LABELS,
}
for name, data in gzipped.items():
    write("idx_gzip", name, data)

# The fuzz crate's TINY table: conv(1, 2, 3) -> linear(8, 3).
TINY = [("0.weight", [2, 1, 3, 3]), ("0.bias", [2]), ("3.weight", [3, 8]), ("3.bias", [3])]


def size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def tiny_values():
    out, i = {}, 0
    for key, shape in TINY:
        out[key] = [round((i + j) * 0.25 - 5, 2) for j in range(size(shape))]
        i += size(shape)
    return out


def json_weights(edit=None):
    doc = {k: {"shape": s, "data": tiny_values()[k]} for k, s in TINY}
    if edit:
        edit(doc)
    return json.dumps(doc).encode()


def safetensors(tensors, metadata=None, raw_header=None):
    """tensors: list of (key, dtype, shape, data bytes)."""
    header, offset, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for key, dtype, shape, data in tensors:
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blob += data
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + blob


def f32(values):
    return struct.pack("<%df" % len(values), *values)


ST_TINY = [(k, "F32", s, f32(tiny_values()[k])) for k, s in TINY]
ONE = [("w", "F32", [1], f32([1.5]))]

json_seeds = {
    "tiny.json": json_weights(),
    "one.json": b'{"w": {"shape": [1], "data": [1.5]}}',
    "duplicate-key.json": b'{"w": {"shape": [1], "data": [1.5]}, "w": {"shape": [1], "data": [2]}}',
    "duplicate-field.json": b'{"w": {"shape": [1], "data": [1.5], "data": [2]}}',
    "unknown-field.json": b'{"w": {"shape": [1], "data": [1.5], "dtype": "F32"}}',
    "escaped-key.json": b'{"\\u0077": {"shape": [1], "data": [1e-45]}}',
    "wrong-shape.json": json_weights(lambda d: d["3.weight"].update(shape=[8, 3])),
    "null-value.json": b'{"w": {"shape": [1], "data": [null]}}',
    "too-big.json": b'{"w": {"shape": [1], "data": [1e39]}}',
    "huge-shape.json": b'{"w": {"shape": [4294967296, 4294967296], "data": []}}',
    "truncated.json": json_weights()[:40],
    "not-object.json": b"[1, 2]",
    "nested.json": b'{"w": {"shape": [1], "data": [[[[[[[[1]]]]]]]]}}',
    "safetensors-inside.json": safetensors(ONE),
}
for name, data in json_seeds.items():
    write("weights_json", name, data)

st_seeds = {
    "tiny.safetensors": safetensors(ST_TINY, {"format": "pt"}),
    "one.safetensors": safetensors(ONE),
    "net-name.safetensors": safetensors(ONE, {"format": "pt", "cnn.net": "LeNet"}),
    "f16.safetensors": safetensors([("w", "F16", [1], b"\x00\x3c")]),
    "wrong-shape.safetensors": safetensors([("w", "F32", [1, 1], f32([1.0]))]),
    "nan.safetensors": safetensors([("w", "F32", [1], f32([float("nan")]))]),
    "duplicate-key.safetensors": safetensors(
        [], raw_header='{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        '"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}') + f32([1.0]),
    "duplicate-metadata.safetensors": safetensors(
        [], raw_header='{"__metadata__":{"a":"1","a":"2"},'
        '"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}') + f32([1.0]),
    "header-too-large.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
    "truncated.safetensors": safetensors(ONE)[:-1],
    "bad-offsets.safetensors": safetensors(
        [], raw_header='{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}') + f32([1.0, 2.0]),
    "json-inside.safetensors": b'{"w": {"shape": [1], "data": [1.5]}}',
}
for name, data in st_seeds.items():
    write("weights_safetensors", name, data)
