"""Property tests of the model.occ container decoder (`read_occ`): any bytes, and real artifacts
with bytes changed, cut or inserted, give a manifest and payload or a ModelError, never another
exception or a hang. Files without a checksum (OCCAMv1) are used to reach past the checksum."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occamtune.compress.artifact import MAGIC, MAGIC_V1, read_occ, write_occ
from occamtune.errors import ModelError

FAST = settings(max_examples=200, deadline=3000, suppress_health_check=[HealthCheck.too_slow])


def _artifact(codec: str) -> bytes:
    from tests.fixtures.tiny_models import tiny_task_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.occ"
        write_occ(tiny_task_model(layers=1, hidden=16), path, codec=codec)
        return path.read_bytes()


def _as_v1(data: bytes) -> bytes:
    codec, _, rest = data[len(MAGIC):].partition(b"\n")
    return MAGIC_V1 + codec + b"\n" + rest.partition(b"\n")[2]


REAL = {codec: _artifact(codec) for codec in ("none", "zstd", "lzma")}


def _decode(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.occ"
        path.write_bytes(data)
        try:
            manifest, payload = read_occ(path)
        except ModelError as exc:
            assert str(path) in str(exc)
        else:
            assert isinstance(manifest["tensors"], list) and isinstance(payload, bytes)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    _decode(data)


@FAST
@given(st.sampled_from([MAGIC, MAGIC_V1]), st.sampled_from([b"none", b"zstd", b"lzma", b"\xff"]),
       st.binary(max_size=400))
def test_any_body_after_a_valid_header(magic: bytes, codec: bytes, body: bytes) -> None:
    _decode(magic + codec + b"\n" + body)


@FAST
@given(st.sampled_from(sorted(REAL)), st.booleans(), st.data())
def test_real_artifacts_changed_cut_or_grown(codec: str, v1: bool, data: st.DataObject) -> None:
    blob = bytearray(_as_v1(REAL[codec]) if v1 else REAL[codec])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            blob[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del blob[at:at + data.draw(st.integers(1, 64))]
        else:
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not blob:
            break
    _decode(bytes(blob))


def test_an_untouched_artifact_decodes_in_every_layout() -> None:
    for data in (*REAL.values(), *map(_as_v1, REAL.values())):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "m.occ").write_bytes(data)
            manifest, _ = read_occ(Path(folder) / "m.occ")
            assert manifest["tensors"]
