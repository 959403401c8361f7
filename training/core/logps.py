"""Per-sequence completion log-probabilities without materialising ``(B, T, V)`` logits.

The usual recipe, ``model(input_ids).logits.log_softmax(-1).gather(...)``, allocates a float
tensor of ``B * T * V`` entries (and TRL/OpenRLHF upcast it to float32): at a 150k vocabulary
and 8k tokens that is the largest allocation of a DPO step, usually bigger than the model
(training anchors, section 3.7, item 1). Instead we run the decoder to its last hidden state
``(B, T, H)``, keep only the positions whose *next* token is a completion token, and push those
through the LM head ``chunk_size`` positions at a time. With gradients on, each chunk runs under
activation checkpointing so its ``(chunk, V)`` logits are freed after the forward and recomputed
in the backward: peak extra memory is one chunk of logits, whatever B and T are. This is the
same idea as TRL 1.14+'s fused LM head and Liger's chunked losses.
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
    decoder = model.get_decoder()
    lm_head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    hidden = decoder(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
    ).last_hidden_state

    target_mask = completion_mask[:, 1:].bool()  # (N, T-1): position t predicts token t+1
    rows = target_mask.nonzero(as_tuple=True)[0]  # (n,) row of each scored position
    h = hidden[:, :-1][target_mask]  # (n, H), only positions predicting a completion token
    targets = input_ids[:, 1:][target_mask]  # (n,)

    pieces = []
    for start in range(0, h.size(0), chunk_size):
        args = (
            h[start : start + chunk_size],
            targets[start : start + chunk_size],
            lm_head,
            softcap,
        )
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_token_logps, *args, use_reentrant=False))
        else:
            pieces.append(_token_logps(*args))
    token_logps = torch.cat(pieces) if pieces else h.new_zeros(0, dtype=torch.float32)

    logps = torch.zeros(input_ids.size(0), dtype=torch.float32, device=input_ids.device)
    logps = logps.index_add(0, rows, token_logps)  # (N,)
    lengths = target_mask.sum(dim=1)  # (N,)
    return logps, lengths
