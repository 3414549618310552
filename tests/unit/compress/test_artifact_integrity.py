"""model.occ carries a checksum: any damage is a clear ModelError, old files still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occamtune.compress.artifact import ARTIFACT_FILE, MAGIC, MAGIC_V1, read_occ, save_artifact
from occamtune.errors import ModelError
from occamtune.models import load_model
from tests.fixtures.tiny_models import tiny_task_model


@pytest.fixture()
def artifact(tokenizer, tmp_path) -> Path:
    save_artifact(tiny_task_model(), tokenizer, tmp_path / "a", codec="zstd")
    return tmp_path / "a"


@pytest.mark.parametrize("where", [0.3, 0.6, 0.99])
def test_one_flipped_byte_is_refused(artifact, where) -> None:
    occ = artifact / ARTIFACT_FILE
    data = bytearray(occ.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    occ.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        load_model(artifact)


@pytest.mark.parametrize("keep", [0, 5, len(MAGIC) + 3, 200, -1])
def test_a_truncated_file_is_refused(artifact, keep) -> None:
    occ = artifact / ARTIFACT_FILE
    data = occ.read_bytes()
    occ.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(ModelError, match=str(occ)):
        load_model(artifact)


def test_a_file_without_checksum_still_loads(artifact) -> None:
    occ = artifact / ARTIFACT_FILE
    before, _, _ = load_model(artifact)
    codec, _, rest = occ.read_bytes()[len(MAGIC):].partition(b"\n")
    _, _, body = rest.partition(b"\n")
    occ.write_bytes(MAGIC_V1 + codec + b"\n" + body)  # the layout of files made before
    after, _, _ = load_model(artifact)
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_garbage_in_an_old_file_is_a_model_error(artifact, tmp_path) -> None:
    occ = tmp_path / "x.occ"
    for data in (MAGIC_V1 + b"zstd\n" + b"\x00" * 40, MAGIC_V1 + b"\xff\xfe\n",
                 MAGIC_V1 + b"none\n" + (10**9).to_bytes(8, "little") + b"{}",
                 MAGIC_V1 + b"none\n" + (2).to_bytes(8, "little") + b"\xff\xff",
                 MAGIC_V1 + b"none\n" + (2).to_bytes(8, "little") + b"[]"):
        occ.write_bytes(data)
        with pytest.raises(ModelError, match="damaged"):
            read_occ(occ)
