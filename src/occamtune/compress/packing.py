"""Tensor encodings of the packed artifact: k-bit packing, sparse bitmasks, fp16/fp32 values.

Every encoder returns (entry, parts): `entry` is the tensor's JSON description and `parts` the
named byte strings the artifact appends to its payload (offsets are filled in by the caller).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from occamtune.compress.grid import dequantize

_CHUNK = 1 << 20  # values per chunk when (un)packing bits, to bound temporary memory


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integers < 2**bits into ceil(n * bits / 8) bytes (big-endian bit order)."""
    values = np.ascontiguousarray(values, dtype=np.uint8).ravel()
    if bits == 8:
        return values.tobytes()
    out = []
    for i in range(0, len(values), _CHUNK * 8):  # chunks of a multiple of 8 values stay byte-aligned
        chunk = values[i:i + _CHUNK * 8]
        bitmat = np.unpackbits(chunk[:, None], axis=1)[:, 8 - bits:]  # (n, bits), MSB first
        out.append(np.packbits(bitmat.ravel()).tobytes())
    return b"".join(out)


def unpack_bits(data: bytes, bits: int, n: int) -> np.ndarray:
    """Inverse of `pack_bits`: n uint8 values."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw[:n].copy()
    out = []
    step = _CHUNK * 8  # values per chunk; its packed size is step * bits / 8 bytes
    for i in range(0, n, step):
        m = min(step, n - i)
        start = i * bits // 8
        chunk = raw[start:start + -(-m * bits // 8)]
        bitmat = np.unpackbits(chunk)[:m * bits].reshape(m, bits)
        full = np.zeros((m, 8), dtype=np.uint8)
        full[:, 8 - bits:] = bitmat
        out.append(np.packbits(full, axis=1).ravel())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint8)


def pack_mask(mask: np.ndarray) -> bytes:
    """A bool array as bits (8 to a byte)."""
    return np.packbits(mask.ravel()).tobytes()


def unpack_mask(data: bytes, n: int) -> np.ndarray:
    """The first `n` bools of `pack_mask`'s bytes."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n].astype(bool)


def encode_quant(codes: torch.Tensor, scales: torch.Tensor, bits: int, group: int,
                 byte_codes: bool = False, shape: tuple[int, ...] | None = None) -> tuple[dict, dict]:
    """k-bit codes and fp16 scales.

    Codes are bit-packed (dense, or bitmask + nonzero codes when that is smaller). With
    `byte_codes` (an entropy coder follows) and a width that does not divide 8, they are stored
    one per byte instead: packed 3-bit codes straddle bytes, and zstd's Huffman stage, which
    codes bytes, then sees no structure, while the codes of a weight matrix are far from uniform
    (most 3-bit codes are near 0): on the fine-tuned MiniLM the 3-bit artifact came out smaller
    this way than packed. Widths dividing 8 stay packed: each byte then holds whole codes and
    zstd sees their joint statistics (at 4 bits packing came out smaller; both checked by hand;
    docs/benchmarks/compression.md measures where an artifact's bytes go). `shape`: the tensor's
    own shape when the codes are a 2-D view of it.
    """
    shape = tuple(codes.shape) if shape is None else tuple(shape)
    qmax = 2 ** (bits - 1) - 1
    flat = codes.numpy().ravel().astype(np.int16)
    unsigned = (flat + qmax).astype(np.uint8)  # [0, 2 qmax] fits k bits
    entry: dict[str, Any] = {"enc": "quant", "bits": bits, "group": group,
                             "scales_shape": list(scales.shape)}
    if tuple(codes.shape) != shape:  # a 2-D view, e.g. of a codebook's (S, k, d) centroids
        entry["codes_shape"] = list(codes.shape)
    parts = {"scales": scales.to(torch.float16).numpy().tobytes()}
    if byte_codes and 8 % bits:
        entry["layout"] = "bytes"
        parts["codes"] = unsigned.tobytes()
        return entry, parts
    mask = flat != 0
    nnz = int(mask.sum())
    dense_size = -(-flat.size * bits // 8)
    sparse_size = -(-flat.size // 8) + -(-nnz * bits // 8)
    if sparse_size < dense_size:
        entry["nnz"] = nnz
        parts["mask"] = pack_mask(mask)
        parts["codes"] = pack_bits(unsigned[mask], bits)
    else:
        parts["codes"] = pack_bits(unsigned, bits)
    return entry, parts


def decode_quant(entry: dict, parts: dict[str, bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int8, scales float32) of a quantized tensor."""
    shape, bits = entry["shape"], entry["bits"]
    n = int(np.prod(shape))
    qmax = 2 ** (bits - 1) - 1
    if entry.get("layout") == "bytes":
        unsigned = np.frombuffer(parts["codes"], dtype=np.uint8)[:n]
    elif "nnz" in entry:
        mask = unpack_mask(parts["mask"], n)
        unsigned = np.full(n, qmax, dtype=np.uint8)
        unsigned[mask] = unpack_bits(parts["codes"], bits, entry["nnz"])
    else:
        unsigned = unpack_bits(parts["codes"], bits, n)
    codes = torch.from_numpy((unsigned.astype(np.int16) - qmax).astype(np.int8))
    codes = codes.view(entry.get("codes_shape", shape))
    scales = np.frombuffer(parts["scales"], dtype=np.float16).astype(np.float32)
    return codes, torch.from_numpy(scales.copy()).view(entry["scales_shape"])


def encode_float(tensor: torch.Tensor, half: bool) -> tuple[dict, dict]:
    """fp16 or fp32 values, dense or as bitmask + nonzero values when that is smaller."""
    dtype = np.float16 if half else np.float32
    flat = tensor.detach().float().numpy().ravel().astype(dtype)
    mask = flat != 0
    nnz = int(mask.sum())
    width = np.dtype(dtype).itemsize
    entry: dict[str, Any] = {"enc": "float16" if half else "float32"}
    if -(-flat.size // 8) + nnz * width < flat.size * width:
        entry["nnz"] = nnz
        return entry, {"mask": pack_mask(mask), "values": flat[mask].tobytes()}
    return entry, {"values": flat.tobytes()}


def decode_float(entry: dict, parts: dict[str, bytes]) -> torch.Tensor:
    dtype = np.float16 if entry["enc"] == "float16" else np.float32
    n = int(np.prod(entry["shape"]))
    values = np.frombuffer(parts["values"], dtype=dtype).astype(np.float32)
    if "nnz" in entry:
        full = np.zeros(n, dtype=np.float32)
        full[unpack_mask(parts["mask"], n)] = values
        values = full
    return torch.from_numpy(values.copy()).view(entry["shape"])


def encode_raw(tensor: torch.Tensor) -> tuple[dict, dict]:
    """Integer or bool tensors (e.g. the vocabulary remap), stored as they are."""
    array = tensor.detach().numpy()
    return {"enc": "raw", "dtype": str(array.dtype)}, {"values": array.tobytes()}


def decode_raw(entry: dict, parts: dict[str, bytes]) -> torch.Tensor:
    array = np.frombuffer(parts["values"], dtype=np.dtype(entry["dtype"])).copy()
    return torch.from_numpy(array).view(entry["shape"])


def decode_tensor(entry: dict, parts: dict[str, bytes]) -> torch.Tensor:
    """The fp32 (or integer) tensor of a manifest entry."""
    if entry["enc"] == "quant":
        codes, scales = decode_quant(entry, parts)
        return dequantize(codes, scales, entry["group"]).view(entry["shape"])
    if entry["enc"] == "raw":
        return decode_raw(entry, parts)
    return decode_float(entry, parts)
