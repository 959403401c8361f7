"""Per-sequence completion log-probabilities without materialising ``(B, T, V)`` logits.

The usual recipe, ``model(input_ids).logits.log_softmax(-1).gather(...)``, allocates a float
tensor of ``B * T * V`` entries (and TRL/OpenRLHF upcast it to float32): at a 150k vocabulary
and 8k tokens that is the largest allocation of a DPO step, usually bigger than the model
(training anchors, section 3.7, item 1). Instead we run the decoder to its last hidden state
``(B, T, H)``, keep only the positions whose *next* token is a completion token, and push those
through the LM head ``chunk_size`` positions at a time. With gradients on, when all the scored
positions' float32 logits together would exceed ``CHECKPOINT_LOGITS_BYTES``, each chunk runs
under activation checkpointing, so its ``(chunk, V)`` logits are freed after the forward and
recomputed in the backward: peak extra memory is one chunk of logits, whatever B and T are.
(Below that size the logits are simply kept: recomputing them would cost time for no gain.)
This is the same idea as TRL 1.14+'s fused LM head and Liger's chunked losses.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _token_logps(
    hidden: torch.Tensor, targets: torch.Tensor, lm_head: nn.Module, softcap: float | None
) -> torch.Tensor:
    logits = lm_head(hidden).float()  # (n, V)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return -F.cross_entropy(logits, targets, reduction="none")  # (n,) = log p(target)


# When a batch's scored logits (float32 bytes, all chunks) stay under this they are kept for the
# backward instead of recomputed: at a small vocabulary recomputing the LM head costs more than
# the memory it saves.
CHECKPOINT_LOGITS_BYTES = 256 * 2**20

# The batch keys a log-prob computation reads (data.collate / data.collate_shared_prefix).
INPUT_KEYS = (
    "input_ids",
    "attention_mask",
    "completion_mask",
    "segment_ids",
    "position_ids",
    "score_index",
    "score_target",
    "score_seq",
    "seq_lengths",
)


def sequence_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs ``sum_t log p(x_t | x_<t)`` over completion tokens.

    Works for Hugging Face causal LMs whose head is ``get_output_embeddings()`` applied to the
    decoder's ``last_hidden_state`` (Llama, Qwen, Mistral, Gemma with its final-logit softcap,
    ...). Models that rescale logits in other ways (Cohere ``logit_scale``, Granite
    ``logits_scaling``) are not handled.

    Args:
        model: a ``*ForCausalLM`` model.
        input_ids: ``(N, T)`` token ids, right-padded.
        attention_mask: ``(N, T)``, 1 for real tokens.
        completion_mask: ``(N, T)``, 1 for completion tokens (the ones that are scored).
        chunk_size: completion positions per LM-head call.

    Returns:
        ``(logps, lengths)``: ``(N,)`` float32 summed log-probs, ``(N,)`` completion token counts.
    """
    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
    ).last_hidden_state
    target_mask = completion_mask[:, 1:].bool()  # (N, T-1): position t predicts token t+1
    rows = target_mask.nonzero(as_tuple=True)[0]  # (n,) row of each scored position
    h = hidden[:, :-1][target_mask]  # (n, H), only positions predicting a completion token
    targets = input_ids[:, 1:][target_mask]  # (n,)
    logps = _head_logps(model, h, targets, rows, input_ids.size(0), chunk_size)
    return logps, target_mask.sum(dim=1)


def shared_prefix_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    segment_ids: torch.Tensor,
    position_ids: torch.Tensor,
    score_index: torch.Tensor,
    score_target: torch.Tensor,
    score_seq: torch.Tensor,
    seq_lengths: torch.Tensor,
    *,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Completion log-probs of pairs laid out as ``prompt | chosen | rejected`` in one row.

    The prompt is computed once for both completions (prefix sharing, Wang & Hegde 2024,
    arXiv 2410.20305): a rejected token attends to the prompt and to earlier rejected tokens,
    never to the chosen ones, and its position ids continue from the prompt, so every
    log-prob equals the one of the separate ``prompt + completion`` sequence (up to float
    rounding). ``data.collate_shared_prefix`` builds the inputs.

    Args:
        input_ids, attention_mask, segment_ids, position_ids: ``(B, L)``; segment 0 = prompt,
            1 = chosen, 2 = rejected, 3 = padding.
        score_index: ``(n,)`` flat ``row * L + t`` of the positions whose next token is scored.
        score_target: ``(n,)`` the scored token ids.
        score_seq: ``(n,)`` output sequence of each scored token (chosen i -> i, rejected i -> B+i).
        seq_lengths: ``(2B,)`` scored tokens per output sequence.

    Returns:
        ``(logps (2B,), lengths (2B,))``, chosen rows first, as :func:`sequence_logps` returns
        for the usual ``[chosen; rejected]`` batch.
    """
    mask = shared_prefix_mask(segment_ids, attention_mask, model.config)
    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    h = hidden.flatten(0, 1)[score_index]  # (n, H)
    n_seqs = seq_lengths.size(0)
    return _head_logps(model, h, score_target, score_seq, n_seqs, chunk_size), seq_lengths


def shared_prefix_mask(segment_ids: torch.Tensor, attention_mask: torch.Tensor, config):
    """``(B, 1, L, L)`` attention mask: causal, and completions never see each other."""
    seg_q, seg_k = segment_ids[:, :, None], segment_ids[:, None, :]  # (B, L, 1), (B, 1, L)
    length = segment_ids.size(1)
    idx = torch.arange(length, device=segment_ids.device)
    causal = idx[None, :, None] >= idx[None, None, :]  # (1, L, L)
    allowed = causal & ((seg_k == 0) | (seg_k == seg_q)) & attention_mask[:, None, :].bool()
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=idx.device)  # no empty row
    allowed = allowed[:, None]  # (B, 1, L, L)
    if getattr(config, "_attn_implementation", "sdpa") == "sdpa":
        return allowed
    dtype = getattr(config, "dtype", None)
    dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
    return torch.zeros(allowed.shape, dtype=dtype, device=idx.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def supports_shared_prefix(model: nn.Module) -> bool:
    """Custom 4-D masks reach the attention kernel with ``sdpa`` and ``eager`` only."""
    return getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")


def _head_logps(model, h, targets, seq, n_seqs: int, chunk_size: int) -> torch.Tensor:
    """LM head over the scored positions only, ``chunk_size`` at a time; sums per sequence."""
    lm_head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    big = h.size(0) * lm_head.weight.size(0) * 4 > CHECKPOINT_LOGITS_BYTES
    recompute = big and torch.is_grad_enabled() and h.requires_grad
    pieces = []
    for start in range(0, h.size(0), chunk_size):
        piece = slice(start, start + chunk_size)
        args = (h[piece], targets[piece], lm_head, softcap)
        if recompute:
            pieces.append(checkpoint(_token_logps, *args, use_reentrant=False))
        else:
            pieces.append(_token_logps(*args))
    token_logps = torch.cat(pieces) if pieces else h.new_zeros(0, dtype=torch.float32)
    logps = torch.zeros(n_seqs, dtype=torch.float32, device=h.device)
    return logps.index_add(0, seq, token_logps)  # (n_seqs,)


def batch_logps(model: nn.Module, inputs: dict, chunk_size: int = 1024):
    """Log-probs of a collated batch (either layout), through :class:`LogpsHead` when wrapped."""
    if not hasattr(model, "get_decoder"):  # LogpsHead, or DDP / FSDP around one
        return model(**inputs)
    if "segment_ids" in inputs:
        return shared_prefix_logps(model, **inputs, chunk_size=chunk_size)
    return sequence_logps(
        model,
        inputs["input_ids"],
        inputs["attention_mask"],
        inputs["completion_mask"],
        chunk_size=chunk_size,
    )


class LogpsHead(nn.Module):
    """A causal LM whose ``forward`` returns completion log-probs.

    DDP and FSDP only synchronise what runs inside the wrapped module's ``forward``; calling the
    decoder and the LM head of a wrapped model directly skips DDP's gradient reduction (the bug
    TRL 1.14 fixed for its fused head) and FSDP's parameter gathering. So the trainer wraps this.
    """

    def __init__(self, model: nn.Module, chunk_size: int = 1024) -> None:
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size

    def forward(self, **inputs):
        return batch_logps(self.model, inputs, self.chunk_size)
