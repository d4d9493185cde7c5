"""The shipped English model is the one that was measured: every file is checked before load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.pii import en_model
from app.pii.engine import DEFAULT_EN_MODEL


def test_the_shipped_model_is_the_default_and_verifies() -> None:
    assert DEFAULT_EN_MODEL == en_model.NAME
    assert en_model.verified_path() == en_model.MODEL_DIR


def test_a_changed_or_missing_file_refuses_to_load(tmp_path: Path) -> None:
    copy = tmp_path / "en_ner"
    shutil.copytree(en_model.MODEL_DIR, copy)
    with (copy / "ner" / "model").open("r+b") as weights:
        weights.seek(1000)
        byte = weights.read(1)
        weights.seek(1000)
        weights.write(bytes([byte[0] ^ 1]))
    with pytest.raises(en_model.ModelMismatch, match="ner/model: sha256"):
        en_model.verified_path(copy)
    (copy / "ner" / "model").unlink()
    with pytest.raises(en_model.ModelMismatch, match="missing"):
        en_model.verified_path(copy)
