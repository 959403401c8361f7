"""Export snapshot (JSONL of TRL rows) -> token ids -> padded batches.

Two row kinds, the TRL dataset formats:

- preference (DPO, IPO, SimPO, ORPO): ``{"prompt", "chosen", "rejected"}``
- unpaired (KTO): ``{"prompt", "completion", "label": bool}``

Values are plain strings or conversational message lists (``[{"role", "content"}, ...]``); in the
conversational form a completion is a list holding one assistant message.

How a row becomes tokens (the places where preference pipelines usually go wrong):

- prompt: rendered with the tokenizer's chat template and ``add_generation_prompt=True``. A plain
  string prompt is wrapped as a single user message when the tokenizer has a template; without
  a template it is tokenised as is (with the tokenizer's BOS if it adds one). The rendered text
  is tokenised with ``add_special_tokens=False``, so BOS appears once.
- completion: the assistant text, then the template's end-of-turn token (``<|im_end|>``,
  ``<|eot_id|>``, ...), then EOS unless the sequence already ends with EOS. So EOS appears
  exactly once at the end, even when end-of-turn and EOS are the same token.
- the prompt tokens are masked out (``completion_mask`` 0); only completion tokens are scored.
- ``prompt + completion`` is cut to ``max_length`` keeping the start (TRL ``keep_start``). Rows
  whose prompt alone fills ``max_length`` would have nothing to score and are dropped. Both are
  counted and reported.

Batches are right-padded. Preference batches put the chosen rows first and the rejected rows
after them, so one forward pass covers both (``logps.chunk(2)`` splits them again).
KTO batches also carry the mismatched (prompt_i, completion_{i-1}) sequences for the KL
reference point; see :func:`kto_blocks`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

import torch

_MARKER = "PREFLOOPASSISTANTMARKER"


@dataclass
class Sequence:
    """One tokenised (prompt, completion); not yet truncated."""

    prompt_ids: list[int]
    completion_ids: list[int]


@dataclass
class PairRow:
    chosen: Sequence
    rejected: Sequence


@dataclass
class UnpairedRow:
    seq: Sequence
    label: bool


@dataclass
class Snapshot:
    """A tokenised export snapshot.

    ``kind`` is ``"pairs"`` (rows are :class:`PairRow`) or ``"unpaired"`` (:class:`UnpairedRow`).
    ``num_truncated`` counts rows with at least one sequence cut at ``max_length``;
    ``num_dropped`` counts rows removed because a prompt filled ``max_length``.
    """

    kind: str
    rows: list
    sha256: str
    max_length: int
    num_truncated: int = 0
    num_dropped: int = 0
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- tokenisation


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template puts right after an assistant message, if any."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - exotic templates: fall back to EOS
        return None
    suffix = text[text.find(_MARKER) + len(_MARKER) :].lstrip() if _MARKER in text else ""
    ids = tokenizer.encode(suffix, add_special_tokens=False) if suffix else []
    special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    return ids[0] if ids and ids[0] in special else None


def encode_prompt(tokenizer, prompt) -> list[int]:
    """Prompt token ids: chat template with a generation prompt when the tokenizer has one."""
    if isinstance(prompt, str) and not getattr(tokenizer, "chat_template", None):
        return tokenizer(prompt)["input_ids"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_completion(tokenizer, completion, eot_id: int | None) -> list[int]:
    """Completion ids: assistant text + end-of-turn token + EOS, EOS exactly once at the end."""
    if isinstance(completion, list):
        if len(completion) != 1 or completion[0].get("role") != "assistant":
            raise ValueError(
                "a conversational completion must be a list with exactly one assistant message, "
                f"got roles {[m.get('role') for m in completion]}"
            )
        completion = completion[0]["content"]
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if eot_id is not None and (not ids or ids[-1] != eot_id):
        ids = ids + [eot_id]
    eos_id = tokenizer.eos_token_id
    if eos_id is not None and (not ids or ids[-1] != eos_id):
        ids = ids + [eos_id]
    return ids


def read_jsonl(path: str) -> tuple[list[dict], str]:
    """Rows of a JSONL file and the sha256 of its bytes (the snapshot identity)."""
    with open(path, "rb") as f:
        raw = f.read()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    return rows, hashlib.sha256(raw).hexdigest()


def tokenize_rows(rows: list[dict], tokenizer, max_length: int, sha256: str = "") -> Snapshot:
    """Tokenise TRL rows (all of one kind) into a :class:`Snapshot`."""
    if not rows:
        raise ValueError("the snapshot has no rows")
    kind = "pairs" if "chosen" in rows[0] else "unpaired"
    eot_id = end_of_turn_id(tokenizer)
    out, truncated, dropped = [], 0, 0
    for i, row in enumerate(rows):
        keys = (
            ("prompt", "chosen", "rejected")
            if kind == "pairs"
            else ("prompt", "completion", "label")
        )
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(
                f"row {i}: missing {missing}; all rows of a snapshot must be {kind} rows"
            )
        prompt_ids = encode_prompt(tokenizer, row["prompt"])
        if kind == "pairs":
            item = PairRow(
                Sequence(prompt_ids, encode_completion(tokenizer, row["chosen"], eot_id)),
                Sequence(prompt_ids, encode_completion(tokenizer, row["rejected"], eot_id)),
            )
            seqs = [item.chosen, item.rejected]
        else:
            item = UnpairedRow(
                Sequence(prompt_ids, encode_completion(tokenizer, row["completion"], eot_id)),
                bool(row["label"]),
            )
            seqs = [item.seq]
        if len(prompt_ids) >= max_length:
            dropped += 1
            continue
        truncated += any(len(s.prompt_ids) + len(s.completion_ids) > max_length for s in seqs)
        out.append(item)
    if not out:
        raise ValueError(
            f"every row was dropped: all prompts are >= max_length={max_length} tokens"
        )
    return Snapshot(kind, out, sha256, max_length, truncated, dropped)


def load_snapshot(path: str, tokenizer, max_length: int) -> Snapshot:
    """Read and tokenise an export snapshot file."""
    rows, sha = read_jsonl(path)
    return tokenize_rows(rows, tokenizer, max_length, sha)


def unpair(snapshot: Snapshot) -> Snapshot:
    """Preference rows -> KTO rows (chosen: label True, rejected: label False), as TRL does."""
    if snapshot.kind == "unpaired":
        return snapshot
    rows = []
    for r in snapshot.rows:
        rows += [UnpairedRow(r.chosen, True), UnpairedRow(r.rejected, False)]
    return Snapshot(
        "unpaired",
        rows,
        snapshot.sha256,
        snapshot.max_length,
        snapshot.num_truncated,
        snapshot.num_dropped,
        {"unpaired_from_pairs": True},
    )


def split_eval(snapshot: Snapshot, fraction: float, seed: int) -> tuple[Snapshot, Snapshot | None]:
    """Hold out ``fraction`` of the rows (seeded shuffle); returns (train, eval or None)."""
    n_eval = int(round(len(snapshot.rows) * fraction))
    if n_eval == 0:
        return snapshot, None
    order = list(range(len(snapshot.rows)))
    random.Random(seed).shuffle(order)
    eval_idx, train_idx = sorted(order[:n_eval]), sorted(order[n_eval:])
    assert train_idx, f"eval_fraction={fraction} leaves no training rows"

    def subset(idx: list[int]) -> Snapshot:
        return Snapshot(
            snapshot.kind,
            [snapshot.rows[i] for i in idx],
            snapshot.sha256,
            snapshot.max_length,
            meta={"rows": idx},
        )

    return subset(train_idx), subset(eval_idx)


# --------------------------------------------------------------------------- batching


def join(seq: Sequence, max_length: int) -> tuple[list[int], list[int]]:
    """Prompt + completion cut to the first ``max_length`` tokens: ``(ids, completion_mask)``."""
    ids = (seq.prompt_ids + seq.completion_ids)[:max_length]
    mask = ([0] * len(seq.prompt_ids) + [1] * len(seq.completion_ids))[:max_length]
    return ids, mask


def collate(seqs: list[Sequence], max_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``completion_mask``, each ``(N, T)``."""
    joined = [join(s, max_length) for s in seqs]
    width = max(len(ids) for ids, _ in joined)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    completion_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, mask) in enumerate(joined):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        completion_mask[i, : len(ids)] = torch.tensor(mask)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
    }


def collate_shared_prefix(
    pairs: list[PairRow], max_length: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """Pairs as one row each, ``prompt | chosen completion | rejected completion`` (B, L).

    The prompt is stored and computed once instead of twice (prefix sharing): at prompt 256 +
    completion 256 a pair costs 768 token positions instead of 1,024. Each completion is cut
    exactly as :func:`join` cuts ``prompt + completion`` at ``max_length``, so the scored tokens
    are those of :func:`collate`. Besides right-padded ``input_ids`` / ``attention_mask`` it
    returns ``segment_ids`` (0 prompt, 1 chosen, 2 rejected, 3 padding), ``position_ids`` (the
    rejected completion continues from the prompt) and the scored positions, targets and output
    sequences that ``logps.shared_prefix_logps`` reads. Pad rows' attention is masked there.
    """
    rows, index, target, seq = [], [], [], []
    n = len(pairs)
    lengths = torch.zeros(2 * n, dtype=torch.long)
    for i, pair in enumerate(pairs):
        if pair.chosen.prompt_ids != pair.rejected.prompt_ids:
            raise ValueError("prefix sharing needs chosen and rejected to share the prompt")
        prompt = pair.chosen.prompt_ids
        p = len(prompt)
        ids, segs, pos = list(prompt), [0] * p, list(range(p))
        for k, s in enumerate((pair.chosen, pair.rejected)):
            completion = join(s, max_length)[0][p:]
            start = len(ids)
            for j, tok in enumerate(completion):
                if p + j == 0:
                    continue  # the very first token of a sequence is never scored
                index.append((i, p - 1 if j == 0 else start + j - 1))
                target.append(tok)
                seq.append(k * n + i)
            lengths[k * n + i] = len(completion) - (p == 0 and len(completion) > 0)
            ids += completion
            segs += [k + 1] * len(completion)
            pos += range(p, p + len(completion))
        rows.append((ids, segs, pos))
    width = max(len(r[0]) for r in rows)
    batch = {
        "input_ids": torch.full((n, width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((n, width), dtype=torch.long),
        "segment_ids": torch.full((n, width), 3, dtype=torch.long),
        "position_ids": torch.zeros((n, width), dtype=torch.long),
    }
    for i, (ids, segs, pos) in enumerate(rows):
        batch["input_ids"][i, : len(ids)] = torch.tensor(ids)
        batch["attention_mask"][i, : len(ids)] = 1
        batch["segment_ids"][i, : len(ids)] = torch.tensor(segs)
        batch["position_ids"][i, : len(ids)] = torch.tensor(pos)
    batch["score_index"] = torch.tensor([r * width + t for r, t in index], dtype=torch.long)
    batch["score_target"] = torch.tensor(target, dtype=torch.long)
    batch["score_seq"] = torch.tensor(seq, dtype=torch.long)
    batch["seq_lengths"] = lengths
    return batch


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of the ``prompt + completion`` sequences a batch stands for (prompts counted twice
    in a shared-prefix batch, as in the separate layout: the unit throughput is measured in)."""
    tokens = int(batch["attention_mask"].sum())
    if "segment_ids" in batch:
        tokens += int((batch["segment_ids"] == 0).sum())
    return tokens


def kto_blocks(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """Fixed micro-batches of row indices for KTO (seeded shuffle, then blocks of ``batch_size``).

    TRL pairs row i's prompt with row i-1's completion inside each block of
    ``per_device_train_batch_size`` rows at preprocessing time and samples sequentially, so the
    KL pairs of a batch come from that batch. We do the same with blocks fixed once per run and
    shuffle only the *order of the blocks* per epoch: the KL term stays "in the batch" and the
    reference log-probs of the KL sequences can be precomputed. A trailing block of one row
    (which would be paired with itself) is merged into the previous block.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    blocks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(blocks) > 1 and len(blocks[-1]) == 1:
        last = blocks.pop()
        blocks[-1].extend(last)
    return blocks


def kl_sequences(rows: list[UnpairedRow], blocks: list[list[int]]) -> list[Sequence]:
    """For every row i: (prompt_i, completion of the previous row in its block), mismatched."""
    out: list[Sequence | None] = [None] * len(rows)
    for block in blocks:
        for j, i in enumerate(block):
            out[i] = Sequence(rows[i].seq.prompt_ids, rows[block[j - 1]].seq.completion_ids)
    return out


def epoch_batches(
    snapshot: Snapshot,
    batch_size: int,
    seed: int,
    epoch: int,
    blocks: list[list[int]] | None = None,
) -> list[list[int]]:
    """The micro-batches (lists of row indices) of one epoch, a pure function of (seed, epoch)."""
    rng = random.Random(seed * 100_003 + epoch)
    if blocks is not None:  # KTO: fixed blocks, shuffled block order
        return [blocks[i] for i in rng.sample(range(len(blocks)), len(blocks))]
    order = rng.sample(range(len(snapshot.rows)), len(snapshot.rows))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def reference_sequences(snapshot: Snapshot, kl: list[Sequence] | None = None) -> list[Sequence]:
    """Every sequence the reference model must score, in cache order.

    pairs: chosen of all rows, then rejected of all rows;
    unpaired: all rows, then their KL sequences.
    """
    if snapshot.kind == "pairs":
        return [r.chosen for r in snapshot.rows] + [r.rejected for r in snapshot.rows]
    return [r.seq for r in snapshot.rows] + list(kl or [])


def make_batch(
    snapshot: Snapshot,
    idx: list[int],
    max_length: int,
    pad_id: int,
    kl: list[Sequence] | None = None,
    shared_prefix: bool = False,
) -> dict[str, torch.Tensor]:
    """Collate the rows ``idx``.

    pairs: ``(2B, T)`` tensors, chosen rows then rejected rows; with ``shared_prefix`` the
    ``(B, L)`` layout of :func:`collate_shared_prefix` instead.
    unpaired: ``(B, T)`` tensors, ``label`` ``(B,)`` bool and, when ``kl`` is given, ``kl_*``
    tensors
    for the mismatched sequences. ``idx`` ``(B,)`` is kept to look up cached reference log-probs.
    """
    rows = [snapshot.rows[i] for i in idx]
    if snapshot.kind == "pairs" and shared_prefix:
        batch = collate_shared_prefix(rows, max_length, pad_id)
    elif snapshot.kind == "pairs":
        batch = collate([r.chosen for r in rows] + [r.rejected for r in rows], max_length, pad_id)
    else:
        batch = collate([r.seq for r in rows], max_length, pad_id)
        batch["label"] = torch.tensor([r.label for r in rows], dtype=torch.bool)
        if kl is not None:
            kl_batch = collate([kl[i] for i in idx], max_length, pad_id)
            batch.update({f"kl_{k}": v for k, v in kl_batch.items()})
    batch["idx"] = torch.tensor(idx, dtype=torch.long)
    return batch
