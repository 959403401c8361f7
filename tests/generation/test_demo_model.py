import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from generation.demo import build
from generation.demo.build import METADATA_FILE, REQUIRED_FILES, build_demo_model
from generation.demo.evaluate import demo_evaluation
from generation.demo.tokenizer import IM_END, IM_START, PAD_TOKEN, chat_text

STEPS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("demo") / "model"
    lines: list[str] = []
    metadata = build_demo_model(
        out_dir, seed=0, steps=STEPS, log=lines.append, eval_samples_per_question=1
    )
    return out_dir, metadata, lines


@pytest.fixture(scope="module")
def loaded(built):
    out_dir, _, _ = built
    return AutoModelForCausalLM.from_pretrained(out_dir), AutoTokenizer.from_pretrained(out_dir)


def test_build_writes_a_hugging_face_model(built):
    out_dir, metadata, lines = built
    assert {p.name for p in out_dir.iterdir()} >= set(REQUIRED_FILES)
    assert json.loads((out_dir / METADATA_FILE).read_text()) == metadata
    assert metadata["seed"] == 0 and metadata["steps"] == STEPS
    assert 1_300_000 < metadata["parameters"] < 1_600_000
    assert 0.0 <= metadata["heldout_accuracy"] <= 1.0
    assert any(line.startswith(f"step {STEPS}/{STEPS} loss") for line in lines)
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")]


def test_config_is_a_small_float32_qwen2_with_head_dim_64(loaded):
    model, tokenizer = loaded
    config = model.config
    assert config.model_type == "qwen2"
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert config.head_dim == 64
    assert config.hidden_size // config.num_attention_heads == 64
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert config.num_hidden_layers == 2 and config.tie_word_embeddings
    assert config.vocab_size == len(tokenizer) == 1024
    assert model.dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_tokenizer_special_tokens_and_chat_template(loaded):
    model, tokenizer = loaded
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.convert_tokens_to_ids(IM_START) not in (None, tokenizer.unk_token_id)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    messages = [{"role": "user", "content": "What is the capital of Zorvia?"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>user\nWhat is the capital of Zorvia?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text == chat_text(messages, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_model_generates_through_the_chat_template(loaded):
    model, tokenizer = loaded
    messages = [{"role": "user", "content": "What is the capital of Zorvia?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = output[0, inputs["input_ids"].shape[1] :]
    assert 0 < len(new) <= 8
    assert isinstance(tokenizer.decode(new, skip_special_tokens=True), str)


def test_evaluation_reports_each_question(loaded):
    model, tokenizer = loaded
    result = demo_evaluation(model, tokenizer, "heldout", samples_per_question=2, max_new_tokens=4)
    assert len(result.results) == 60
    assert all(len(r.answers) == len(r.correct) == 2 for r in result.results)
    again = demo_evaluation(model, tokenizer, "heldout", samples_per_question=2, max_new_tokens=4)
    assert [r.answers for r in again.results] == [r.answers for r in result.results]


def test_second_build_returns_the_existing_model(built, monkeypatch):
    out_dir, metadata, _ = built
    mtime = os.stat(out_dir / "model.safetensors").st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(build, "_build_into", must_not_run)
    lines: list[str] = []
    assert build_demo_model(out_dir, seed=0, steps=STEPS, log=lines.append) == metadata
    assert os.stat(out_dir / "model.safetensors").st_mtime_ns == mtime
    assert "already built" in lines[0]


def _fake_build(tmp_dir, *, seed, steps, log, eval_samples):
    metadata = {"seed": seed, "steps": steps, "fake": True}
    for name in REQUIRED_FILES:
        (tmp_dir / name).write_text("{}")
    (tmp_dir / METADATA_FILE).write_text(json.dumps(metadata))
    return metadata


def test_another_seed_replaces_an_old_build(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "_build_into", _fake_build)
    out_dir = tmp_path / "model"
    build_demo_model(out_dir, seed=1, steps=2, log=lambda line: None)
    (out_dir / "stale.txt").write_text("from the seed-1 build")
    assert build_demo_model(out_dir, seed=2, steps=2, log=lambda line: None)["seed"] == 2
    assert not (out_dir / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_foreign_directory_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "_build_into", _fake_build)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_demo_model(tmp_path, seed=0, steps=1, log=lambda line: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(build, "demo_accuracy", fail)  # after the model files are written
    with pytest.raises(RuntimeError, match="evaluation failed"):
        build_demo_model(tmp_path / "model", seed=0, steps=1, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []
