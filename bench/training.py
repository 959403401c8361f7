"""Preference-training throughput: Prefloop's trainer against TRL 1.16, same run, same shapes.

Trains, on one randomly initialised Qwen2 model, the same synthetic data with the same batch and
sequence lengths:

- ``prefloop dpo``       our DPO trainer (``training.core.train.main``), defaults: reference
                         log-probs precomputed and cached, chosen and rejected sharing one prompt
- ``prefloop dpo live``  the same with the reference model scored every step
                         (``--no-precompute-ref``)
- ``prefloop dpo unshared`` defaults but chosen and rejected as separate rows
                         (``--no-prefix-sharing``: the prompt computed twice, as TRL does)
- ``trl dpo``            TRL ``DPOTrainer``, defaults (reference model in memory)
- ``trl dpo precompute`` TRL ``DPOTrainer`` with ``precompute_ref_log_probs=True``
- ``prefloop kto``       our KTO trainer, 16 unpaired rows per step
- ``trl kto``            TRL ``KTOTrainer``, defaults, 16 unpaired rows per step

Tokens are counted as in ``BENCHMARKS.md``: pairs x 2 x (prompt + completion) per DPO step,
rows x (prompt + completion) per KTO step (KTO's mismatched KL rows are not counted). Time runs
from the end of the last warm-up step to the end of the last timed step, as seen by each
trainer's own per-step hook, so data loading and logging inside the loop are counted for both;
one-off set-up (tokenising, loading models, precomputing reference log-probs) is not.

Shapes:

- ``--device cpu`` (default): the demo architecture (Qwen2, hidden 256, 4 heads of 64, 2 KV heads,
  2 layers, intermediate 512, vocab 1,024, tied embeddings) in float32, prompt 64 + completion 64
  tokens, 8 pairs per step.
- ``--device cuda``: Qwen2-0.5B shape (24 layers, hidden 896, 14 heads / 2 KV heads, vocab
  151,936), float32 weights with bf16 autocast for both trainers, prompt 256 + completion 256,
  8 pairs per step (the shape of ``BENCHMARKS.md``).

Run from the repository root (nothing is downloaded; TRL is a bench-only dependency)::

    python bench/training.py                  # CPU, tiny model
    python bench/training.py --device cuda    # GPU, 0.5B shape

The last line printed is ``prefloop/trl throughput ratio: R``: ours over TRL's defaults, DPO.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import platform
import random
import statistics
import string
import sys
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("DISABLE_MLFLOW_INTEGRATION", "TRUE")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|pad|>"]
WORDS = ["".join(p) for p in itertools.product(string.ascii_lowercase, repeat=2)]


@dataclass(frozen=True)
class Shape:
    """Model and batch shape of one bench."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    prompt: int
    completion: int
    pairs: int = 8  # DPO pairs per step
    kto_rows: int = 16  # KTO unpaired rows per step


SHAPES = {
    # The demo model of DESIGN.md ("The demo task").
    "tiny": Shape(256, 2, 4, 2, 512, 1024, 64, 64),
    # Qwen2-0.5B (BENCHMARKS.md).
    "qwen2-0.5b": Shape(896, 24, 14, 2, 4864, 151_936, 256, 256),
    # Smallest thing that exercises every path (tests).
    "test": Shape(64, 1, 2, 1, 128, 1024, 8, 8, pairs=2, kto_rows=4),
}


# --------------------------------------------------------------------------- model and data


def build_tokenizer():
    """A byte-level BPE over the 676 two-letter words, each one token after a space.

    Lengths are then exact for both trainers (TRL tokenises ``prompt + completion`` as one string,
    we tokenise them apart). Byte-level BPE because a model directory whose config says ``qwen2``
    is reloaded by ``AutoTokenizer`` as a ``Qwen2Tokenizer``, which needs vocab + merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([" ".join(" " + w for w in WORDS)] * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )


def build_model_dir(path: str, shape: Shape, tokenizer) -> str:
    """A randomly initialised Qwen2 (weights do not change speed), saved in float32."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.hidden // shape.heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _words(rng: random.Random, n: int) -> str:
    return "".join(" " + rng.choice(WORDS) for _ in range(n))


def preference_rows(n: int, shape: Shape, seed: int = 0) -> list[dict]:
    """``prompt`` tokens + ``completion - 1`` tokens + EOS (added by both trainers)."""
    rng = random.Random(seed)
    c = shape.completion - 1
    return [
        {
            "prompt": _words(rng, shape.prompt),
            "chosen": _words(rng, c),
            "rejected": _words(rng, c),
        }
        for _ in range(n)
    ]


def kto_rows(n: int, shape: Shape, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "prompt": _words(rng, shape.prompt),
            "completion": _words(rng, shape.completion - 1),
            "label": i % 2 == 0,
        }
        for i in range(n)
    ]


# --------------------------------------------------------------------------- timing


class StepClock:
    """Timestamps at the start of training and at the end of every optimizer step."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.ends: list[float] = []

    def begin(self) -> None:
        self.start = time.perf_counter()

    def step_end(self, sync: bool) -> None:
        if sync:
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def seconds(self, warmup: int) -> float:
        t0 = self.ends[warmup - 1] if warmup else self.start
        return self.ends[-1] - t0


def time_prefloop(
    model_dir: str,
    rows: list[dict],
    work: str,
    *,
    algorithm: str,
    batch: int,
    steps: int,
    warmup: int,
    device: str,
    **overrides,
) -> float:
    """Seconds for the timed steps of our trainer."""
    from training.core.config import TrainConfig
    from training.core.train import main

    data = os.path.join(work, f"{algorithm}.jsonl")
    with open(data, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    out = tempfile.mkdtemp(prefix=f"prefloop-{algorithm}-", dir=work)
    cfg = TrainConfig(
        train_path=data,
        policy_path=model_dir,
        output_dir=out,
        algorithm=algorithm,
        lr=1e-5,
        epochs=1,
        batch_size=batch,
        eval_fraction=0.0,
        max_length=10_000,
        device=device,
        checkpoint_every=10**9,  # no checkpoint inside the timed steps
        **overrides,
    )
    clock = StepClock()
    sync = device.startswith("cuda")
    tokens = []

    def on_record(record: dict) -> None:
        if record["type"] == "start":
            clock.begin()
        elif record["type"] == "train":
            clock.step_end(sync)
            tokens.append(round(record["tokens_per_s"] * record["step_s"]))

    with contextlib.redirect_stdout(io.StringIO()):
        summary = main(cfg, on_record=on_record)
    assert summary["step"] == warmup + steps, summary
    assert len(set(tokens)) == 1, f"steps of unequal size: {tokens}"  # the same shape every step
    return clock.seconds(warmup)


def _trl_callback(clock: StepClock, sync: bool):
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.begin()

        def on_step_end(self, args, state, control, **kw):
            clock.step_end(sync)

    return Clock()


def time_trl(
    model_dir: str,
    rows: list[dict],
    work: str,
    *,
    algorithm: str,
    batch: int,
    steps: int,
    warmup: int,
    device: str,
    gradient_checkpointing: bool,
    **overrides,
) -> float:
    """Seconds for the timed steps of TRL's ``DPOTrainer`` / ``KTOTrainer``."""
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    import trl

    Config, Trainer = (
        (trl.DPOConfig, trl.DPOTrainer) if algorithm == "dpo" else (trl.KTOConfig, trl.KTOTrainer)
    )
    cuda = device.startswith("cuda")
    args = Config(
        output_dir=tempfile.mkdtemp(prefix=f"trl-{algorithm}-", dir=work),
        per_device_train_batch_size=batch,
        max_steps=warmup + steps,
        learning_rate=1e-5,
        max_length=10_000,
        gradient_checkpointing=gradient_checkpointing,
        bf16=cuda,
        use_cpu=not cuda,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        **overrides,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    clock = StepClock()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        callbacks=[_trl_callback(clock, cuda)],
    )
    _check_lengths(trainer.train_dataset, algorithm, rows)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    assert len(clock.ends) == warmup + steps, len(clock.ends)
    del trainer, model
    if cuda:
        torch.cuda.empty_cache()
    return clock.seconds(warmup)


def _check_lengths(dataset, algorithm: str, rows: list[dict]) -> None:
    """TRL tokenised every row to the lengths we count: one token per word, plus EOS."""
    columns = ("chosen_ids", "rejected_ids") if algorithm == "dpo" else ("completion_ids",)
    first = rows[0]
    expected_prompt = len(first["prompt"].split())
    expected_completion = len(first["chosen" if algorithm == "dpo" else "completion"].split()) + 1
    prompt = {len(ids) for ids in dataset["prompt_ids"]}
    completion = {len(ids) for c in columns for ids in dataset[c]}
    assert prompt == {expected_prompt} and completion == {expected_completion}, (prompt, completion)
    assert len(dataset) == len(rows)


# --------------------------------------------------------------------------- the bench


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"GPU {torch.cuda.get_device_name(0)}"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
            name = names[0] if names else name
    return f"CPU {name}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def versions() -> str:
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = "not installed"
    return f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_version}"


def run_bench(
    *,
    device: str = "cpu",
    shape_name: str | None = None,
    warmup: int = 3,
    steps: int = 10,
    repeats: int = 1,
    kto: bool = True,
    gradient_checkpointing: bool = False,
    work: str | None = None,
) -> dict[str, float]:
    """Tokens/second of every contender (best of ``repeats`` runs each), in one process."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    shape = SHAPES[shape_name or ("qwen2-0.5b" if device.startswith("cuda") else "tiny")]
    own = tempfile.TemporaryDirectory(prefix="prefloop-bench-") if work is None else None
    work = work or own.name
    tokenizer = build_tokenizer()
    model_dir = build_model_dir(os.path.join(work, "model"), shape, tokenizer)
    n_steps = warmup + steps
    seq = shape.prompt + shape.completion
    dpo_rows = preference_rows(n_steps * shape.pairs, shape)
    kto_data = kto_rows(n_steps * shape.kto_rows, shape)
    dpo_tokens = steps * shape.pairs * 2 * seq
    kto_tokens = steps * shape.kto_rows * seq
    common = dict(steps=steps, warmup=warmup, device=device)
    ours = dict(common, gradient_checkpointing=gradient_checkpointing)
    theirs = dict(common, gradient_checkpointing=gradient_checkpointing)
    contenders = {
        "prefloop dpo": (dpo_tokens, time_prefloop, dpo_rows, dict(ours, algorithm="dpo")),
        "prefloop dpo live": (
            dpo_tokens,
            time_prefloop,
            dpo_rows,
            dict(ours, algorithm="dpo", precompute_ref=False),
        ),
        "prefloop dpo unshared": (
            dpo_tokens,
            time_prefloop,
            dpo_rows,
            dict(ours, algorithm="dpo", prefix_sharing=False),
        ),
        "trl dpo": (dpo_tokens, time_trl, dpo_rows, dict(theirs, algorithm="dpo")),
        "trl dpo precompute": (
            dpo_tokens,
            time_trl,
            dpo_rows,
            dict(theirs, algorithm="dpo", precompute_ref_log_probs=True),
        ),
    }
    if kto:
        contenders["prefloop kto"] = (
            kto_tokens,
            time_prefloop,
            kto_data,
            dict(ours, algorithm="kto"),
        )
        contenders["trl kto"] = (kto_tokens, time_trl, kto_data, dict(theirs, algorithm="kto"))
    best: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):  # interleaved, so a load spike on a shared machine hits everyone
        for name, (tokens, fn, rows, kw) in contenders.items():
            batch = shape.kto_rows if kw["algorithm"] == "kto" else shape.pairs
            seconds = fn(model_dir, rows, work, batch=batch, **kw)
            best[name].append(tokens / seconds)
    if own is not None:
        own.cleanup()
    return {name: max(v) for name, v in best.items()} | {
        f"{name} median": statistics.median(v) for name, v in best.items()
    }


def report(
    results: dict[str, float], *, device: str, shape_name: str, settings: str = ""
) -> list[str]:
    """The printed lines; the last one is ``prefloop/trl throughput ratio: R``."""
    lines = [
        f"machine: {machine(device)}",
        f"versions: {versions()}",
        f"shape: {shape_name} {SHAPES[shape_name]}",
    ]
    if settings:
        lines.append(f"settings: {settings}")
    for name, value in results.items():
        if not name.endswith(" median"):
            lines.append(f"{name:<22} {value:>12,.0f} tokens/s")

    def ratio(a: str, b: str) -> float:
        return results[a] / results[b]

    lines.append(
        f"dpo: prefloop / trl precompute   {ratio('prefloop dpo', 'trl dpo precompute'):.2f}"
    )
    lines.append(f"dpo: prefloop live / trl         {ratio('prefloop dpo live', 'trl dpo'):.2f}")
    lines.append(
        f"dpo: prefix sharing speed-up      {ratio('prefloop dpo', 'prefloop dpo unshared'):.2f}"
    )
    if "trl kto" in results:
        lines.append(f"kto: prefloop / trl              {ratio('prefloop kto', 'trl kto'):.2f}")
    lines.append(f"prefloop/trl throughput ratio: {ratio('prefloop dpo', 'trl dpo'):.2f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--shape", choices=sorted(SHAPES), help="default: tiny on cpu, qwen2-0.5b on cuda"
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--repeats", type=int, default=1, help="runs per contender; the best counts")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    p.add_argument("--no-kto", action="store_true", help="skip the KTO pair")
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="activation checkpointing for both trainers (off for both by default)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape_name = args.shape or ("qwen2-0.5b" if args.device.startswith("cuda") else "tiny")
    results = run_bench(
        device=args.device,
        shape_name=shape_name,
        warmup=args.warmup,
        steps=args.steps,
        repeats=args.repeats,
        kto=not args.no_kto,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    settings = (
        f"{args.warmup} warm-up + {args.steps} timed steps, best of {args.repeats}, "
        f"{'bf16 autocast' if args.device.startswith('cuda') else 'float32'}, gradient "
        f"checkpointing {'on' if args.gradient_checkpointing else 'off'} (both trainers)"
    )
    for line in report(results, device=args.device, shape_name=shape_name, settings=settings):
        print(line, flush=True)


if __name__ == "__main__":
    main()
