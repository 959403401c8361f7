"""The reward-model judge: a sequence-classification model scores each response.

The model (``AutoModelForSequenceClassification`` with one output, as TRL's reward
models are) reads the conversation with the response as the assistant's turn, rendered
with the model's chat template, and returns one number. A pair's label is
Bradley-Terry: ``P(A better) = sigmoid((r_A - r_B) / temperature)``, the model a reward
model is trained under. Scores do not depend on the order the pair is given in.
Imports torch and transformers at the top: loaded only when this judge is chosen.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from generation.backends.base import check_model_source, encode, ram_available
from generation.feedback.judges.base import JudgeError, Pair, PairLabel, label_from_scores

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class RewardModelJudge:
    method = "reward_model"

    def __init__(
        self, model: str, *, dtype: str = "auto", device: str = "auto", batch_size: int = 32,
        temperature: float = 1.0,
    ) -> None:
        if not temperature > 0:
            raise JudgeError("temperature must be positive")
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        on_gpu = self.device.type == "cuda"
        free = torch.cuda.mem_get_info(self.device)[0] if on_gpu else ram_available()
        check_model_source(model, available_bytes=free)
        self.model, self.batch_size, self.temperature = model, batch_size, temperature
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.rm = AutoModelForSequenceClassification.from_pretrained(
                model, dtype=DTYPES.get(dtype, "auto"), device_map=self.device
            ).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise JudgeError(f"cannot load reward model {model}: {exc}") from exc
        if self.rm.config.num_labels != 1:
            raise JudgeError(
                f"reward model {model} has {self.rm.config.num_labels} outputs; one is needed"
            )
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.rm.config.pad_token_id = self.pad_id  # how it finds each row's last token
        self.engine_seconds = 0.0

    def label(self, pairs: Sequence[Pair]) -> list[PairLabel | None]:
        texts = [(pair.messages, reply) for pair in pairs for reply in (pair.a, pair.b)]
        started = time.perf_counter()
        rewards = self.rewards(texts)
        self.engine_seconds += time.perf_counter() - started
        return [
            label_from_scores(rewards[2 * i], rewards[2 * i + 1], self.temperature)
            for i in range(len(pairs))
        ]

    def rewards(self, items: Sequence[tuple[Sequence[dict], str]]) -> list[float]:
        """One scalar reward per (conversation, reply)."""
        ids = [self._ids(messages, reply) for messages, reply in items]
        out: list[float] = []
        for start in range(0, len(ids), self.batch_size):
            out += self._forward(ids[start : start + self.batch_size])
        return out

    def _ids(self, messages: Sequence[dict], reply: str) -> list[int]:
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        turns.append({"role": "assistant", "content": reply})
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(turns, tokenize=False)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in turns)
        return encode(self.tokenizer, text)

    @torch.inference_mode()
    def _forward(self, rows: list[list[int]]) -> list[float]:
        # Right padding: the model scores each row at its last non-pad token.
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        logits = self.rm(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        return [float(x) for x in logits[:, 0].float().cpu()]

    def close(self) -> None:
        self.rm = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
