"""The demo model the project builds itself: loadable, chatty, and right only part of the time.

The band (30-60% of sampled held-out answers correct) is what makes preference
training measurable: the model knows the facts but often answers worse than it could.
"""

from __future__ import annotations

import json

import pytest
import torch
from django.core.management import call_command
from transformers import AutoModelForCausalLM, AutoTokenizer

from generation.demo.evaluate import demo_accuracy
from generation.models import ModelVersion

pytestmark = pytest.mark.slow

ACCURACY_BAND = (0.30, 0.60)


@pytest.fixture(scope="module")
def demo_model(demo_model_dir):
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    return model, tokenizer


def test_demo_model_is_a_small_qwen2_with_head_dim_64(demo_model, demo_model_dir):
    model, _ = demo_model
    assert model.config.model_type == "qwen2"
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    assert model.dtype == torch.float32
    metadata = json.loads((demo_model_dir / "prefloop_demo.json").read_text())
    assert metadata["parameters"] == sum(p.numel() for p in model.parameters())


def test_demo_model_answers_through_its_chat_template(demo_model):
    model, tokenizer = demo_model
    messages = [{"role": "user", "content": "What is the capital of Zorvia?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    if not isinstance(ids, torch.Tensor):
        ids = ids["input_ids"]
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "capital" in text.lower()


def test_held_out_accuracy_is_within_the_reported_band(demo_model):
    model, tokenizer = demo_model
    torch.manual_seed(1)
    accuracy = demo_accuracy(model, tokenizer, "heldout", samples_per_question=4, seed=1)
    low, high = ACCURACY_BAND
    assert low <= accuracy <= high, f"held-out accuracy {accuracy:.1%} outside {ACCURACY_BAND}"


@pytest.mark.django_db
def test_build_command_registers_the_base_version_once(demo_model_dir):
    call_command("build_demo_model", out=demo_model_dir)
    call_command("build_demo_model", out=demo_model_dir)
    versions = ModelVersion.objects.filter(name="demo-base")
    assert versions.count() == 1
    assert versions.get().parent is None
    assert versions.get().version == 0
