"""AI feedback: constitutions, self-critique and revision, AI judges, and how far to trust them.

Layout (see docs/ai-feedback.md):

- pure, Django-free: ``constitution`` (principles, the default constitution, sampling),
  ``prompts`` (the texts sent to models), ``critique`` (the critique → revision loop),
  ``judges/`` (constitutional, programmatic, reward-model judges);
- Django: ``models`` (imported by ``generation.models``), ``services/`` (writes),
  ``selectors`` and ``trust`` (reads), ``runner`` + ``store`` (feedback jobs),
  ``training_data`` (labels → DPO / SFT snapshots), ``tasks``, ``apis`` / ``urls``.

This package is imported while Django loads models, so it only registers the demo
checker as a ``best_vs_worst`` scorer for generation jobs here (the Celery app
autodiscovers ``tasks``: ``prefloop.celery``).
"""

from __future__ import annotations

from generation import pairing
from generation.feedback.judges.programmatic import demo_capital_score


def _demo_checker_scorer(*, prompt, responses) -> list[float]:
    scores = [
        demo_capital_score(messages=prompt.messages, response=r.text, metadata=prompt.metadata)
        for r in responses
    ]
    return [0.0 if s is None else s for s in scores]


pairing.scorer_register("demo-checker", _demo_checker_scorer)
