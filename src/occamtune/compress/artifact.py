"""The packed artifact: a folder that `occamtune.models.load_model` loads like any run folder.

Files:
    model.occ: `MAGIC`, the codec name and a newline, the hex SHA-256 of the compressed blob
        and a newline (files of `MAGIC_V1` have no checksum), then the compressed blob: an 8-byte
        little-endian manifest length, the JSON manifest and the binary payload. The manifest
        lists the structural changes to replay on a fresh encoder (factorised Linears, pruned
        heads and FFN sizes, shared layers, trimmed vocabulary...) and, per tensor, its name,
        shape, encoding and byte ranges: k-bit codes + fp16 scales for quantized weights (codes
        bit-packed, or for widths not dividing 8 one per byte under zstd/lzma, whose byte-wise
        coding then sees whole codes), a bitmask + nonzero values for sparse tensors, fp16 for
        other float tensors (biases and LayerNorm vectors too: a small but not negligible part
        of a heavily compressed model in fp32; checked by hand on 4-bit CoNLL-2003 artifacts,
        dev and test F1 unchanged), fp32 for the task head, raw integers for integer buffers, an
        alias for shared tensors.
    config.json, tokenizer files: the encoder config and the tokenizer.
    occamtune.json: the run's metadata (`RunMeta`) with format "artifact" and, at the top
        level, the pipeline, the steps' log, the structure records, the codec and the runtime.
    card.json, card.md: the model card.

Loading never unpickles: weights are rebuilt from the manifest and raw bytes.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from occamtune.compress.base import replay_structure
from occamtune.compress.card import write_card
from occamtune.compress.grid import QuantCodes
from occamtune.compress.packing import (
    decode_quant,
    decode_tensor,
    encode_float,
    encode_quant,
    encode_raw,
)
from occamtune.compress.quantize import to_int8_runtime
from occamtune.compress.record import CompressionRecord, record_of, set_record
from occamtune.compress.storage import codes_of, in_half
from occamtune.errors import ConfigError, ModelError
from occamtune.io import atomic_write_bytes, atomic_write_text
from occamtune.models import (
    ModelFormat,
    RunMeta,
    TaskModel,
    encoder_from_config,
    read_meta,
    register_format,
    write_meta,
)

ARTIFACT_FILE = "model.occ"
MAGIC = b"OCCAMv2\n"
MAGIC_V1 = b"OCCAMv1\n"  # before the checksum; still read
CODECS = ("zstd", "lzma", "none")


def compress_bytes(data: bytes, codec: str) -> bytes:
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=19, threads=-1).compress(data)
    if codec == "lzma":
        return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    return data


def decompress_bytes(data: bytes, codec: str) -> bytes:
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if codec == "lzma":
        return lzma.decompress(data)
    if codec == "none":
        return data
    raise ModelError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")


def _encode_one(codes: dict[str, QuantCodes], name: str, tensor: torch.Tensor, half_floats: bool,
                byte_codes: bool) -> tuple[dict, dict]:
    quant = codes_of(codes, name, tensor)
    if quant is not None:
        return encode_quant(quant.codes, quant.scales, quant.bits, quant.group,
                            byte_codes=byte_codes, shape=tuple(tensor.shape))
    if not tensor.is_floating_point():
        return encode_raw(tensor)
    return encode_float(tensor, half=half_floats and in_half(name))


def pack_model(model: TaskModel, half_floats: bool = True,
               byte_codes: bool = False) -> tuple[dict[str, Any], bytes]:
    """The manifest and the payload of a model's weights (shared tensors stored once);
    `byte_codes`: quantized codes one per byte, for an entropy coder (else bit-packed)."""
    entries, chunks, offset = [], [], 0
    first_name: dict[tuple, str] = {}
    record = record_of(model)
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype, tuple(tensor.stride()))
        base = {"name": name, "shape": list(tensor.shape)}
        if key in first_name and tensor.numel() > 0:
            entries.append({**base, "enc": "alias", "of": first_name[key]})
            continue
        first_name[key] = name
        entry, parts = _encode_one(record.codes, name, tensor.cpu(), half_floats, byte_codes)
        entry = {**base, **entry, "parts": {}}
        for part, data in parts.items():
            entry["parts"][part] = [offset, len(data)]
            chunks.append(data)
            offset += len(data)
        entries.append(entry)
    manifest = {"version": 1, "structure": record.structure, "tensors": entries}
    return manifest, b"".join(chunks)


def write_occ(model: TaskModel, path: Path, codec: str = "zstd", half_floats: bool = True) -> int:
    """Write `model.occ`; returns its size in bytes."""
    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    manifest, payload = pack_model(model, half_floats, byte_codes=codec != "none")
    head = json.dumps(manifest, separators=(",", ":")).encode()
    body = compress_bytes(struct.pack("<Q", len(head)) + head + payload, codec)
    digest = hashlib.sha256(body).hexdigest().encode()
    data = MAGIC + codec.encode() + b"\n" + digest + b"\n" + body
    atomic_write_bytes(path, data)
    return len(data)


def read_occ(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest and payload of a `model.occ` file.

    Raises:
        ModelError: the file is missing, unreadable, not an artifact, or damaged (checksum
            mismatch, truncated, or a manifest that does not describe its payload).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    codec, body = _check_container(path, data)
    try:
        blob = decompress_bytes(body, codec)
    except ModelError:
        raise
    except Exception as exc:  # zstd, lzma: each codec has its own error classes
        raise ModelError(f"{path} is damaged: its {codec} data does not decompress ({exc})") from exc
    return _split_blob(path, blob)


def _check_container(path: Path, data: bytes) -> tuple[str, bytes]:
    """The codec and the compressed body, after checking the magic and (v2) the SHA-256."""
    if data.startswith(MAGIC):
        codec, _, rest = data[len(MAGIC):].partition(b"\n")
        digest, _, body = rest.partition(b"\n")
        if hashlib.sha256(body).hexdigest().encode() != digest:
            raise ModelError(f"{path} is damaged: its checksum does not match its content "
                             f"(truncated or altered); write the artifact again")
    elif data.startswith(MAGIC_V1):  # written before the checksum: read as it is
        codec, _, body = data[len(MAGIC_V1):].partition(b"\n")
    else:
        raise ModelError(f"{path} is not an occamtune artifact (bad magic bytes)")
    name = codec.decode("ascii", errors="replace")
    if name not in CODECS:
        raise ModelError(f"{path} is damaged: unknown codec {name!r}; known: {', '.join(CODECS)}")
    return name, body


def _split_blob(path: Path, blob: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON manifest and the payload, with every tensor's byte ranges checked."""
    damaged = f"{path} is damaged"
    if len(blob) < 8:
        raise ModelError(f"{damaged}: {len(blob)} bytes, too short to hold a manifest")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ModelError(f"{damaged}: its manifest ({n} bytes) runs past the end of the file")
    try:
        manifest = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{damaged}: its manifest is not JSON ({exc})") from exc
    payload = blob[8 + n:]
    if not (isinstance(manifest, dict) and isinstance(manifest.get("tensors"), list)
            and all(_ranges_fit(t, len(payload)) for t in manifest["tensors"])):
        raise ModelError(f"{damaged}: its manifest does not describe its payload")
    return manifest, payload


def _ranges_fit(entry: Any, size: int) -> bool:
    """Whether a manifest entry is a record whose byte ranges lie inside the payload."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return False
    parts = entry.get("parts", {})
    return isinstance(parts, dict) and all(
        isinstance(r, list) and len(r) == 2 and all(type(x) is int and x >= 0 for x in r)
        and r[0] + r[1] <= size for r in parts.values())


def save_artifact(model: TaskModel, tokenizer: Any, folder: str | Path, codec: str = "zstd",
                  meta: RunMeta | dict | None = None, half_floats: bool = True) -> dict[str, Any]:
    """Write the packed artifact of a (compressed) model into `folder`.

    Args:
        model: the compressed task model.
        tokenizer: its tokenizer (saved next to the weights).
        folder: output folder (created).
        codec: "zstd" (level 19), "lzma" or "none" for the whole blob.
        meta: the run's metadata (`RunMeta`; its format becomes "artifact"), or a dict of
            entries for it and the card (`fp32_bytes`, `metrics`, `speed`...).
        half_floats: store non-quantized matrices in fp16 (False: fp32, lossless, e.g. to cache
            a trained intermediate model whose architecture safetensors cannot describe).

    Returns:
        sizes: `model_occ` (bytes of model.occ), `folder` (all files), `fp32_bytes` and `ratio`
        when `meta` gives the fp32 size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    occ = write_occ(model, folder / ARTIFACT_FILE, codec, half_floats)
    atomic_write_text(folder / "config.json", model.encoder.config.to_json_string())
    tokenizer.save_pretrained(folder)
    if not isinstance(meta, RunMeta):
        meta = RunMeta.from_dict({"head": asdict(model.head_config), **(meta or {})})
    record = record_of(model)
    meta = RunMeta(**{**vars(meta), "head": model.head_config, "format": "artifact",
                      "format_info": {**meta.format_info, "pipeline": record.pipeline(),
                                      "steps": record.log(), "structure": record.structure,
                                      "codec": codec, "int8_runtime": record.int8_runtime}})
    write_meta(folder, meta)
    sizes: dict[str, Any] = {"model_occ": occ}
    if meta.fp32_bytes:
        sizes["fp32_bytes"] = int(meta.fp32_bytes)
        sizes["ratio"] = sizes["fp32_bytes"] / occ
    write_card(folder, model, meta.to_dict(), sizes)
    sizes["folder"] = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return sizes


def entry_parts(entry: dict, payload: bytes) -> dict[str, bytes]:
    return {k: payload[o:o + n] for k, (o, n) in entry["parts"].items()}


def load_artifact(folder: str | Path, runtime: bool = False) -> TaskModel:
    """Rebuild a task model from an artifact folder (without its tokenizer).

    Args:
        folder: a folder written by `save_artifact`.
        runtime: apply `to_int8_runtime` when the pipeline asked for it (faster on CPU, not
            bit-exact; the default gives exactly the stored weights).
    """
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    meta = read_meta(folder)
    manifest, payload = read_occ(folder / ARTIFACT_FILE)
    model = TaskModel(encoder_from_config(AutoModel, AutoConfig.from_pretrained(folder), meta.head),
                      meta.head)
    replay_structure(model, manifest["structure"])
    state, by_name = {}, {e["name"]: e for e in manifest["tensors"]}
    for entry in manifest["tensors"]:
        source = by_name[entry["of"]] if entry["enc"] == "alias" else entry
        if entry["enc"] == "alias":
            state[entry["name"]] = state[source["name"]]
        else:
            state[entry["name"]] = decode_tensor(entry, entry_parts(entry, payload))
    model.load_state_dict(state, strict=True)
    info = meta.format_info
    record = CompressionRecord.from_saved(info.get("steps", []), manifest["structure"],
                                          bool(info.get("int8_runtime", False)))
    record.codes = _codes(manifest, payload)
    set_record(model, record)
    model.eval()
    return to_int8_runtime(model) if runtime and record.int8_runtime else model


def _codes(manifest: dict, payload: bytes) -> dict[str, QuantCodes]:
    """The codes of the quantized tensors, so that a loaded artifact saves to the same bytes."""
    return {entry["name"]: QuantCodes(*decode_quant(entry, entry_parts(entry, payload)),
                                      entry["bits"], entry["group"])
            for entry in manifest["tensors"] if entry["enc"] == "quant"}


def artifact_bytes(folder: str | Path) -> int:
    """Size on disk of the packed weights (`model.occ`)."""
    return (Path(folder) / ARTIFACT_FILE).stat().st_size


register_format(ModelFormat("artifact", lambda folder, meta, runtime: load_artifact(folder, runtime)))
