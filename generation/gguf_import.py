"""Convert a GGUF model file into a float32 safetensors folder the workers can load.

transformers reads GGUF files (dequantising the weights), but refuses to save a model
loaded that way. So the model is rebuilt from its config without the GGUF
quantisation entry, given the dequantised state dict, and saved with its tokenizer
and chat template. The folder is named after the file's SHA-256 and carries
``prefloop_gguf.json`` (source hash, quantisation type, dtype, architecture), so a
second import of the same file is a no-op. Django-free: the registry calls it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

METADATA_FILE = "prefloop_gguf.json"
NOT_ARCHITECTURES = {"general", "tokenizer"}


class GGUFImportError(Exception):
    """A GGUF file that cannot be converted; the message says why, in plain words."""


@dataclass(frozen=True)
class Converted:
    folder: str
    sha256: str
    architecture: str
    quantization: str
    dtype: str
    parameters: int
    source_file: str
    reused: bool = False

    def metadata(self) -> dict:
        data = asdict(self)
        data.pop("reused")
        return {"gguf": data}


def file_sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def supported_architectures() -> list[str]:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return sorted(set(GGUF_CONFIG_MAPPING) - NOT_ARCHITECTURES)


def read_header(path: Path) -> tuple[str, str]:
    """(architecture, quantisation type name) from the file's key-value header."""
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise GGUFImportError(f"{path.name} is not a readable GGUF file: {exc}") from exc
    fields = reader.fields

    def value(key: str):
        field = fields.get(key)
        if field is None:
            return None
        return field.contents()

    architecture = str(value("general.architecture") or "")
    file_type = value("general.file_type")
    try:
        quantization = LlamaFileType(int(file_type)).name if file_type is not None else "unknown"
    except ValueError:
        quantization = f"file_type {file_type}"
    return architecture, quantization.removeprefix("MOSTLY_")


def convert_gguf(
    gguf_path: Path, models_dir: Path, *, log: Callable[[str], object] = lambda _m: None
) -> Converted:
    """Convert ``gguf_path`` into ``models_dir/gguf-<sha[:16]>`` unless already there."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise GGUFImportError(f"no such GGUF file: {gguf_path}")
    sha = file_sha256(gguf_path)
    out_dir = Path(models_dir) / f"gguf-{sha[:16]}"
    existing = _existing(out_dir, sha)
    if existing is not None:
        log(f"{gguf_path.name} already converted in {out_dir}")
        return existing
    architecture, quantization = read_header(gguf_path)
    if architecture not in supported_architectures():
        raise GGUFImportError(
            f"cannot convert a {architecture or 'unnamed'!r} model: this transformers reads "
            f"GGUF for {', '.join(supported_architectures())}"
        )
    log(f"loading {gguf_path.name} ({architecture}, {quantization}); this can take minutes")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.converting-", dir=out_dir.parent))
    try:
        parameters = _save_float32(gguf_path, tmp)
        converted = Converted(
            folder=str(out_dir), sha256=sha, architecture=architecture,
            quantization=quantization, dtype="float32", parameters=parameters,
            source_file=gguf_path.name,
        )
        (tmp / METADATA_FILE).write_text(json.dumps(converted.metadata()["gguf"], indent=2))
        tmp.chmod(0o755)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"saved {parameters:,} parameters (float32) to {out_dir}")
    return converted


def _existing(out_dir: Path, sha: str) -> Converted | None:
    try:
        data = json.loads((out_dir / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    if data.get("sha256") != sha:
        return None
    return Converted(**data, reused=True)


def _save_float32(gguf_path: Path, out_dir: Path) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise GGUFImportError(f"weights do not fit the rebuilt model: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    if missing:
        model.tie_weights()
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())
