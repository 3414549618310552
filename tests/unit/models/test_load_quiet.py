"""Loading a pretrained encoder prints nothing a user cannot act on."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers.utils import logging as hf_logging

from occamtune.models import load_encoder


def test_loading_an_encoder_draws_no_bar_and_restores_the_setting(
        tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hf_logging.enable_progress_bar()
    load_encoder(str(tiny_model_dir))
    err = capsys.readouterr().err
    assert "Loading weights" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # the user's own setting is given back
