"""The transformers backend: batched ``generate`` with left padding and the KV cache.

The embedded default and the fallback where vLLM is not installed. Prompts are
sorted by length and cut into micro-batches of at most ``max_batch_size`` sequences
(``n`` copies of each prompt count), then put back in request order.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor

from generation.backends.base import (
    Completion,
    Conversation,
    ModelLoadError,
    ModelTooLargeError,
    OptionRequest,
    SamplingConfig,
    Score,
    ScoreRequest,
    check_model_source,
    check_prompt_lengths,
    eos_ids,
    option_token_ids,
    ram_available,
    render_prompt_ids,
    score_token_ids,
)

LOGPROB_BUDGET = 1 << 30  # bytes of log-probs held at once while scoring
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TransformersBackend:
    name = "transformers"
    closed = False

    def __init__(
        self, model: str, *, dtype: str = "auto", device: str = "auto", max_batch_size: int = 256
    ) -> None:
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        on_gpu = self.device.type == "cuda"
        free = torch.cuda.mem_get_info(self.device)[0] if on_gpu else ram_available()
        check_model_source(model, available_bytes=free)
        self.max_batch_size = max_batch_size
        self.model = model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.lm = AutoModelForCausalLM.from_pretrained(
                model, dtype=DTYPES.get(dtype, "auto"), device_map=self.device
            ).eval()
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise ModelTooLargeError(f"model {model} does not fit in memory: {exc}") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load model {model}: {exc}") from exc
        self.max_context = _context_length(self.lm.config, self.tokenizer)
        self.eos = eos_ids(self.tokenizer, self.lm.generation_config)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos[0]

    # --- generation ------------------------------------------------------------------

    def generate(
        self, requests: Sequence[Conversation], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        prompts = [render_prompt_ids(self.tokenizer, r) for r in requests]
        check_prompt_lengths(prompts, self.max_context)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        per_batch = max(1, self.max_batch_size // sampling.n)
        results: list[list[Completion]] = [[] for _ in prompts]
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(order), per_batch):
                chunk = order[start : start + per_batch]
                outputs = self._generate_chunk([prompts[i] for i in chunk], sampling)
                for i, completions in zip(chunk, outputs, strict=True):
                    results[i] = completions
        return results

    @torch.inference_mode()
    def _generate_chunk(
        self, prompts: list[list[int]], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        inputs = self._left_padded(prompts)
        width = inputs["input_ids"].shape[1]
        copies = 1 if sampling.greedy else sampling.n  # greedy samples are all the same
        recorder = _LogprobRecorder()
        config = GenerationConfig(
            do_sample=not sampling.greedy,
            # Sampling knobs explicit: None inherits the model's defaults (e.g. top_k=50).
            **(
                {}
                if sampling.greedy
                else {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
            ),
            repetition_penalty=1.0,
            num_return_sequences=copies,
            max_new_tokens=min(sampling.max_tokens, self.max_context - width),
            eos_token_id=self.eos,
            pad_token_id=self.pad_id,
        )
        sequences = self.lm.generate(
            **inputs, generation_config=config, logits_processor=[recorder]
        )
        new = sequences[:, width:]
        logprobs = recorder.finish(new)
        rows = [self._completion(new[r], logprobs[r]) for r in range(new.shape[0])]
        return [
            rows[i * copies : (i + 1) * copies] * (sampling.n // copies)
            for i in range(len(prompts))
        ]

    def _completion(self, tokens: torch.Tensor, logprobs: torch.Tensor) -> Completion:
        ids = tokens.tolist()
        stop_at = next((k for k, t in enumerate(ids) if t in self.eos), None)
        length = len(ids) if stop_at is None else stop_at + 1
        text_ids = ids[:length] if stop_at is None else ids[:stop_at]
        return Completion(
            text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
            token_ids=tuple(ids[:length]),
            token_count=length,
            cumulative_logprob=float(logprobs[:length].sum()),
            finish_reason="length" if stop_at is None else "stop",
        )

    # --- scoring ---------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        pairs = [score_token_ids(self.tokenizer, r) for r in requests]
        check_prompt_lengths([full for full, _ in pairs], self.max_context, room=0)
        scores: list[Score] = []
        for chunk in self._chunks(pairs, keep=lambda p: len(p[0]) - p[1] + 1):
            keep = max(len(full) - cut for full, cut in chunk) + 1
            logprobs = self._last_logprobs([full for full, _ in chunk], keep)
            for row, (full, cut) in enumerate(chunk):
                targets = torch.tensor(full[cut:], dtype=torch.long, device=logprobs.device)
                # Kept position keep-1 predicts the token after the input, keep-1-k the k-th last.
                rows = logprobs[row, keep - 1 - len(targets) : keep - 1]
                total = float(rows.gather(1, targets[:, None]).sum()) if len(targets) else 0.0
                scores.append(Score(logprob=total, token_count=len(targets)))
        return scores

    def option_logprobs(self, requests: Sequence[OptionRequest]) -> list[dict[str, float]]:
        prompts = [
            render_prompt_ids(self.tokenizer, r.messages, r.assistant_prefix) for r in requests
        ]
        check_prompt_lengths(prompts, self.max_context)
        labels = [option_token_ids(self.tokenizer, r.options) for r in requests]
        items = list(zip(prompts, requests, labels, strict=True))
        out = []
        for chunk in self._chunks(items, keep=lambda _: 1):
            logprobs = self._last_logprobs([prompt for prompt, _, _ in chunk], 1)
            for row, (_, r, ids) in enumerate(chunk):
                out.append(
                    {o: float(logprobs[row, 0, i]) for o, i in zip(r.options, ids, strict=True)}
                )
        return out

    def _chunks(self, items: list, *, keep) -> list[list]:
        """Micro-batches whose [batch, keep, vocab] float32 log-probs stay under LOGPROB_BUDGET."""
        vocab = self.lm.config.get_text_config().vocab_size
        chunks: list[list] = []
        for item in items:
            if chunks:
                rows = len(chunks[-1]) + 1
                width = max(keep(x) for x in [*chunks[-1], item])
                if rows <= self.max_batch_size and rows * width * vocab * 4 <= LOGPROB_BUDGET:
                    chunks[-1].append(item)
                    continue
            chunks.append([item])
        return chunks

    @torch.inference_mode()
    def _last_logprobs(self, prompts: list[list[int]], keep: int) -> torch.Tensor:
        """Float32 log-softmax of the last ``keep`` positions: [batch, keep, vocab]."""
        inputs = self._left_padded(prompts)
        positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        logits = self.lm(**inputs, position_ids=positions, logits_to_keep=keep).logits
        return torch.log_softmax(logits.float(), dim=-1)

    def _left_padded(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    # --- lifecycle ---------------------------------------------------------------------

    def can_reload(self, model: str) -> bool:
        return False  # loading a new model costs the same as reloading its weights here

    def reload_weights(self, model: str) -> None:
        raise NotImplementedError("the transformers backend is rebuilt for a new model")

    def close(self) -> None:
        self.closed = True
        self.lm = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class _LogprobRecorder(LogitsProcessor):
    """Log-probs of the sampled tokens under the raw (untempered) distribution, as vLLM reports.

    ``generate`` calls processors before it samples each token, so the log-softmax of
    step t is kept until step t+1 reveals which token was chosen.
    """

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.previous is not None:
            self.steps.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1).cpu())
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        if self.previous is not None and new_tokens.shape[1] > len(self.steps):
            last = new_tokens[:, len(self.steps) : len(self.steps) + 1]
            self.steps.append(self.previous.gather(1, last).squeeze(1).cpu())
        if not self.steps:
            return torch.zeros((new_tokens.shape[0], 0))
        return torch.stack(self.steps, dim=1)


def _context_length(config, tokenizer) -> int:
    for attribute in (
        "max_position_embeddings",
        "n_positions",
        "max_sequence_length",
        "seq_length",
    ):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return int(tokenizer.model_max_length)
