"""Preference-training throughput: Prefloop's trainer against TRL 1.16, like for like.

Trains, on one randomly initialised model, the same synthetic variable-length data (prompt and
completion lengths drawn per row, so padding is exercised) with the same batch sizes:

- ``prefloop dpo``          our DPO trainer (``training.core.train.main``), defaults: reference
                            log-probs precomputed and cached, chosen and rejected sharing one prompt
- ``prefloop dpo live``     the same with the reference model scored every step
- ``prefloop dpo unshared`` defaults but chosen and rejected as separate rows (``prefix_sharing``
                            off: the prompt computed twice, as TRL does)
- ``trl dpo``               TRL ``DPOTrainer``, defaults (live reference model in memory)
- ``trl dpo precompute``    TRL ``DPOTrainer`` with ``precompute_ref_log_probs=True``
- ``prefloop kto`` / ``prefloop kto live`` our KTO trainer, precomputed / live reference
- ``trl kto`` / ``trl kto precompute``     TRL ``KTOTrainer``, live (its default) / precomputed

The headline, the last line ``prefloop/trl throughput ratio: R``, is like for like: median
``prefloop dpo`` (precomputed reference) over median ``trl dpo precompute``. The lines above it
give live/live, defaults/defaults (ours precomputes, TRL's default does not: not like for like)
and KTO in both modes.

Tokens credited: every row's prompt + completion tokens, as TRL counts them (DPO: chosen and
rejected each with their prompt; KTO: the rows, not the mismatched KL rows), summed over the timed
steps from each trainer's own batches. Positions computed: the prompt and completion positions a
trainer runs through the model, padding excluded; with prefix sharing the prompt is computed once,
so ``prefloop dpo`` computes fewer positions than it is credited with (the ``pos/tok`` column).
Time runs from the end of the last warm-up step to the end of the last timed step, as seen by each
trainer's per-step hook; one-off set-up (tokenising, loading, precomputing) is not counted.

Every contender runs ``--repeats`` times (at least 3), interleaved, the contender order rotated
each repeat; lines give median, min and max. The load average is printed before and after, with a
flag when it exceeds the cores or when a contender's spread (max - min) / median exceeds 15%.

Before timing, an equivalence gate (``bench/training_gate.py``) compares per-sequence log-probs
and the DPO loss of Prefloop's objective and TRL's on the same batches, with a reference model
different from the policy; above 1e-3 the bench prints FAIL and exits 1.

Shapes (``--shape``): ``tiny`` (CPU default: the demo architecture, Qwen2, hidden 256, 2 layers,
vocab 1,024, float32, prompt <= 64 + completion <= 64, 8 pairs per step); ``smollm2`` (SmolLM2-135M:
Llama, hidden 576, 9 heads x 64, 3 KV heads, intermediate 1536, 30 layers or ``--layers N``,
vocab 49,152, tied embeddings; randomly initialised, nothing downloaded); ``qwen2-0.5b`` (CUDA
default, bf16 autocast); ``test`` (CI). On the CPU, TRL's fused head also scores prompt
positions, so CPU ratios do not carry over to the GPU.

Run from the repository root (TRL is a bench-only dependency)::

    python bench/training.py                           # CPU, tiny model
    python bench/training.py --shape smollm2 --layers 4
    python bench/training.py --device cuda --shape smollm2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import platform
import random
import statistics
import string
import sys
import tempfile
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

from bench.training_runs import time_prefloop, time_trl  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|pad|>"]
WORDS = ["".join(p) for p in itertools.product(string.ascii_lowercase, repeat=2)]
SPREAD_LIMIT = 0.15


@dataclass(frozen=True)
class Shape:
    """Model and batch shape of one bench; ``prompt`` and ``completion`` are maximum lengths
    (each row draws its lengths between half of them and them)."""

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
    arch: str = "qwen2"


SHAPES = {
    # The demo model of DESIGN.md ("The demo task").
    "tiny": Shape(256, 2, 4, 2, 512, 1024, 64, 64),
    # SmolLM2-135M (issue 15): randomly initialised, full depth unless --layers.
    "smollm2": Shape(576, 30, 9, 3, 1536, 49_152, 64, 64, arch="llama"),
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


def build_model_dir(path: str, shape: Shape, tokenizer, *, seed: int = 0) -> str:
    """A randomly initialised Qwen2 or Llama (weights do not change speed), saved in float32."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    Config, Model = (
        (LlamaConfig, LlamaForCausalLM)
        if shape.arch == "llama"
        else (Qwen2Config, Qwen2ForCausalLM)
    )
    torch.manual_seed(seed)
    config = Config(
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
    Model(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _words(rng: random.Random, n: int) -> str:
    return "".join(" " + rng.choice(WORDS) for _ in range(n))


def _length(rng: random.Random, most: int) -> int:
    return rng.randint(max(1, most // 2), most)


def preference_rows(n: int, shape: Shape, seed: int = 0) -> list[dict]:
    """Per row: a prompt of ``prompt/2..prompt`` tokens; chosen and rejected each of
    ``completion/2..completion`` tokens including the EOS both trainers add."""
    rng = random.Random(seed)
    return [
        {
            "prompt": _words(rng, _length(rng, shape.prompt)),
            "chosen": _words(rng, _length(rng, shape.completion) - 1),
            "rejected": _words(rng, _length(rng, shape.completion) - 1),
        }
        for _ in range(n)
    ]


def kto_rows(n: int, shape: Shape, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "prompt": _words(rng, _length(rng, shape.prompt)),
            "completion": _words(rng, _length(rng, shape.completion) - 1),
            "label": i % 2 == 0,
        }
        for i in range(n)
    ]


def position_share(rows: list[dict], *, shared: bool) -> float:
    """Positions computed per token credited (padding excluded): 1 unless prefix sharing, which
    computes each pair's prompt once where it is credited twice."""
    if not shared or "chosen" not in rows[0]:
        return 1.0
    n = [
        (len(r["prompt"].split()), len(r["chosen"].split()) + 1, len(r["rejected"].split()) + 1)
        for r in rows
    ]
    return sum(p + c + r for p, c, r in n) / sum(2 * p + c + r for p, c, r in n)


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


@dataclass
class BenchResult:
    """Tokens/s of every run of every contender, and what qualifies them."""

    rates: dict[str, list[float]]
    tokens: dict[str, int]  # tokens credited per run (the last run)
    share: dict[str, float]  # positions computed per token credited
    load_before: float
    load_after: float
    gate: object  # training_gate.GateResult


def contenders(shape: Shape, dpo: list[dict], kto: list[dict], kw: dict) -> dict[str, tuple]:
    """name -> (timing function, rows, keyword arguments)."""
    d, k = (
        dict(kw, algorithm="dpo", batch=shape.pairs),
        dict(kw, algorithm="kto", batch=shape.kto_rows),
    )
    out = {
        "prefloop dpo": (time_prefloop, dpo, d),
        "prefloop dpo live": (time_prefloop, dpo, dict(d, precompute_ref=False)),
        "prefloop dpo unshared": (time_prefloop, dpo, dict(d, prefix_sharing=False)),
        "trl dpo": (time_trl, dpo, d),
        "trl dpo precompute": (time_trl, dpo, dict(d, precompute_ref_log_probs=True)),
    }
    if kto:
        out |= {
            "prefloop kto": (time_prefloop, kto, k),
            "prefloop kto live": (time_prefloop, kto, dict(k, precompute_ref=False)),
            "trl kto": (time_trl, kto, k),
            "trl kto precompute": (time_trl, kto, dict(k, precompute_ref_log_probs=True)),
        }
    return out


def run_bench(
    *,
    device: str = "cpu",
    shape_name: str | None = None,
    layers: int = 0,
    warmup: int = 3,
    steps: int = 10,
    repeats: int = 3,
    kto: bool = True,
    gradient_checkpointing: bool = False,
    work: str | None = None,
) -> BenchResult:
    """Gate, then every contender ``repeats`` times, interleaved, order rotated per repeat."""
    from transformers.utils import logging as hf_logging

    from bench.training_gate import run_gate

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    shape = resolve_shape(device, shape_name, layers)
    own = tempfile.TemporaryDirectory(prefix="prefloop-bench-") if work is None else None
    work = work or own.name
    tokenizer = build_tokenizer()
    model_dir = build_model_dir(os.path.join(work, "model"), shape, tokenizer)
    ref_dir = build_model_dir(os.path.join(work, "reference"), shape, tokenizer, seed=1)
    gate = run_gate(
        policy_dir=model_dir, ref_dir=ref_dir, rows=preference_rows(4, shape, seed=7), batch=2
    )
    n = warmup + steps
    dpo = preference_rows(n * shape.pairs, shape)
    kto_data = kto_rows(n * shape.kto_rows, shape) if kto else []
    kw = dict(steps=steps, warmup=warmup, device=device)
    table = contenders(
        shape, dpo, kto_data, dict(kw, gradient_checkpointing=gradient_checkpointing)
    )
    names = list(table)
    rates: dict[str, list[float]] = {name: [] for name in names}
    tokens: dict[str, int] = {}
    load_before = os.getloadavg()[0]
    for r in range(repeats):  # interleaved, rotated: a load spike does not hit one contender
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, rows, args = table[name]
            run = fn(model_dir, rows, work, **args)
            rates[name].append(run.tokens / run.seconds)
            tokens[name] = run.tokens
    share = {
        name: position_share(rows, shared=fn is time_prefloop and args.get("prefix_sharing", True))
        for name, (fn, rows, args) in table.items()
    }
    result = BenchResult(rates, tokens, share, load_before, os.getloadavg()[0], gate)
    if own is not None:
        own.cleanup()
    return result


def resolve_shape(device: str, shape_name: str | None, layers: int = 0) -> Shape:
    shape = SHAPES[shape_name or ("qwen2-0.5b" if device.startswith("cuda") else "tiny")]
    return dataclasses.replace(shape, layers=layers) if layers else shape


RATIOS = [  # (label, ours, theirs); the last is the headline
    ("dpo live/live:          prefloop dpo live / trl dpo", "prefloop dpo live", "trl dpo"),
    (
        "dpo defaults/defaults:  prefloop dpo / trl dpo (not like for like)",
        "prefloop dpo",
        "trl dpo",
    ),
    (
        "dpo prefix sharing:     prefloop dpo / prefloop dpo unshared",
        "prefloop dpo",
        "prefloop dpo unshared",
    ),
    (
        "kto precompute/precompute: prefloop kto / trl kto precompute",
        "prefloop kto",
        "trl kto precompute",
    ),
    ("kto live/live:          prefloop kto live / trl kto", "prefloop kto live", "trl kto"),
    (
        "dpo precompute/precompute: prefloop dpo / trl dpo precompute",
        "prefloop dpo",
        "trl dpo precompute",
    ),
]


def flags(res: BenchResult) -> list[str]:
    cores, out = os.cpu_count() or 1, []
    load = max(res.load_before, res.load_after)
    if load > cores:
        out.append(f"FLAG: load average {load:.1f} exceeds the {cores} cores: figures unreliable")
    for name, v in res.rates.items():
        spread = (max(v) - min(v)) / statistics.median(v)
        if spread > SPREAD_LIMIT:
            out.append(f"FLAG: {name} spread (max-min)/median {spread:.0%} > {SPREAD_LIMIT:.0%}")
    return out


def report(res: BenchResult, *, device: str, shape: Shape, settings: str = "") -> list[str]:
    """The printed lines; the last one is ``prefloop/trl throughput ratio: R`` (like for like)."""
    lines = [f"machine: {machine(device)}", f"versions: {versions()}", f"shape: {shape}"]
    lines += [f"settings: {settings}"] if settings else []
    lines.append(f"load average (1 min): before {res.load_before:.2f}, after {res.load_after:.2f}")
    lines.append(res.gate.line())
    lines.append(
        f"{'contender':<22} {'median':>10} {'min':>10} {'max':>10} tokens/s   "
        f"{'tokens':>8} {'positions':>9} pos/tok"
    )
    for name, v in res.rates.items():
        tok, share = res.tokens[name], res.share[name]
        lines.append(
            f"{name:<22} {statistics.median(v):>10,.0f} {min(v):>10,.0f} {max(v):>10,.0f}"
            f"            {tok:>8,} {round(tok * share):>9,} {share:.2f}"
        )
    lines += flags(res)
    med = {name: statistics.median(v) for name, v in res.rates.items()}
    for label, ours, theirs in RATIOS:
        if ours in med and theirs in med:
            lines.append(f"{label}  {med[ours] / med[theirs]:.2f}")
    lines.append(
        f"prefloop/trl throughput ratio: {med['prefloop dpo'] / med['trl dpo precompute']:.2f}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--shape", choices=sorted(SHAPES), help="default: tiny on cpu, qwen2-0.5b on cuda"
    )
    p.add_argument("--layers", type=int, default=0, help="override the shape's depth (0: keep)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per contender (>= 3)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    p.add_argument("--no-kto", action="store_true", help="skip the KTO contenders")
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="activation checkpointing for both trainers (off for both by default)",
    )
    args = p.parse_args(argv)
    if args.repeats < 3:
        p.error("--repeats must be at least 3 (median, min and max of interleaved runs)")
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = resolve_shape(args.device, args.shape, args.layers)
    res = run_bench(
        device=args.device,
        shape_name=args.shape,
        layers=args.layers,
        warmup=args.warmup,
        steps=args.steps,
        repeats=args.repeats,
        kto=not args.no_kto,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    settings = (
        f"{args.warmup} warm-up + {args.steps} timed steps, {args.repeats} interleaved repeats, "
        f"{'bf16 autocast' if args.device.startswith('cuda') else 'float32'}, gradient "
        f"checkpointing {'on' if args.gradient_checkpointing else 'off'} (both trainers)"
    )
    for line in report(res, device=args.device, shape=shape, settings=settings):
        print(line, flush=True)
    return 0 if res.gate.passed else 1


if __name__ == "__main__":
    sys.exit(main())
