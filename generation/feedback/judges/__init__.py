"""AI judges: one interface (``label(pairs) -> soft labels``), three kinds.

- ``constitutional``: a language model answers a constitution's multiple-choice
  question, read from option log-probs, both orders averaged (CAI, RLAIF);
- ``programmatic``: a Python function scores each response (the demo's checker);
- ``reward_model``: a sequence-classification model scores each response.

Judges take plain data and never touch Django. The reward-model judge imports torch,
so it is loaded only when chosen (:func:`reward_model_judge`); one is kept per process.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from generation.feedback.judges.base import (
    JudgeError,
    OrderScore,
    Pair,
    PairJudge,
    PairLabel,
)

__all__ = [
    "JudgeError", "OrderScore", "Pair", "PairJudge", "PairLabel", "close_reward_model",
    "reward_model_judge",
]

_lock = threading.Lock()
_reward_model: dict[str, Any] = {"judge": None, "key": None}


def reward_model_judge(model: str, **options: Any) -> PairJudge:
    """The process's reward-model judge for ``model`` (loaded once, swapped when asked
    for another model)."""
    key = (model, tuple(sorted(options.items())))
    with _lock:
        if _reward_model["key"] == key:
            return _reward_model["judge"]
        _close_locked()
        module = importlib.import_module("generation.feedback.judges.reward_model")
        judge = module.RewardModelJudge(model, **options)
        _reward_model.update(judge=judge, key=key)
        return judge


def close_reward_model() -> None:
    with _lock:
        _close_locked()


def _close_locked() -> None:
    judge = _reward_model["judge"]
    _reward_model.update(judge=None, key=None)
    if judge is not None:
        judge.close()
