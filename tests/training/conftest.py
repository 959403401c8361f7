"""Fixtures for the training tests: a tiny BPE tokenizer with a ChatML template and a tiny random
Qwen2 model, built here (nothing is downloaded), plus toy JSONL snapshots.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "lambda"]


def build_tokenizer(chat_template: str | None = CHATML, eos: str = "<|im_end|>"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIAL,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [f"What is {w}? The answer is good. Wrong bad answer {w}." for w in WORDS] * 5
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token="<|endoftext|>", chat_template=chat_template
    )


def build_model(vocab_size: int, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    return Qwen2ForCausalLM(config).eval()


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # The models here are tiny: thread hand-off costs more than the matmuls, and on a busy
    # 2-core machine two intra-op threads made the trainer tests ~9x slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer):
    """A saved tiny policy (HF format): the ``--policy-path`` of the trainer tests."""
    path = tmp_path_factory.mktemp("tiny-qwen2")
    build_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def preference_rows(n: int, conversational: bool = False) -> list[dict]:
    """Toy preferences with one rule to learn: 'The answer is good.' beats 'Wrong bad answer.'"""
    rows = []
    for i in range(n):
        prompt = f"What is {WORDS[i % len(WORDS)]} {i}?"
        chosen, rejected = "The answer is good.", "Wrong bad answer."
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def kto_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = f"What is {WORDS[i % len(WORDS)]} {i}?"
        good = i % 2 == 0
        rows.append(
            {
                "prompt": prompt,
                "label": good,
                "completion": "The answer is good." if good else "Wrong bad answer.",
            }
        )
    return rows


def write_jsonl(path, rows: list[dict]) -> str:
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return str(path)
