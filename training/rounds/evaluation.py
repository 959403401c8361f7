"""How much better is the new model? Measured on held-out prompts, stored per round.

Both versions answer every held-out prompt (split ``eval``) ``samples`` times with one
fixed seed and temperature (generation jobs; a version's answers are made once and
re-used by the next round, so every version is measured the same way). Then:

- **win rate vs the previous version**: sample *i* of the new model against sample *i*
  of the previous one, judged by the round's evaluation judge through a feedback job
  (the constitutional judge reads every pair in both orders and averages them; a
  programmatic judge is order-free). Identical answers are ties. Win rate = (wins +
  ties / 2) / pairs, with a Wilson interval and a bootstrap interval that resamples
  prompts (samples of one prompt are not independent). The verdicts are judgments, so
  the Bradley–Terry leaderboard takes them in; its state is stored with the round.
- **KL to the reference**: ``mean log π(y|x) − log π_ref(y|x)`` over the new model's
  samples ``y ~ π`` (an unbiased estimate of KL(π‖π_ref) when sampling at T = 1), both
  log-probs read by the backend's ``score``.
- **length**: tokens and characters of the answers (growing length is the classic tell
  of reward hacking in iterative DPO: Self-Rewarding LMs, iLR-DPO).
- **task accuracy**: the share of answers a demo task's checker accepts: the capitals
  checker for prompts that carry a ``demo_fact``, and the strict (every constraint)
  instruction-following check for prompts that carry ``instruct`` constraints.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from annotation.models import Prompt, Task
from annotation.selectors.leaderboard import leaderboard_get
from generation import services as generation_services
from generation import store
from generation.backends import ScoreRequest
from generation.feedback import conf as feedback_conf
from generation.feedback.judges.programmatic import demo_capital_score
from generation.feedback.models import FeedbackJob, FeedbackLabel
from generation.instruct.checker import constraints_of, prompt_passes
from generation.jobs import generation_job_run
from generation.models import GeneratedSample, GenerationJob, ModelVersion
from prefloop.exceptions import ApplicationError
from training.rounds import labels, records, selectors
from training.rounds.models import Round

Z95 = 1.959964


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (ties count as half a success)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(
    groups: Sequence[Sequence[float]], *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of the mean outcome, resampling whole groups (prompts)."""
    groups = [g for g in groups if len(g)]
    if not groups or resamples < 1:
        return None
    sums = np.array([sum(g) for g in groups], dtype=float)  # (G,)
    counts = np.array([len(g) for g in groups], dtype=float)  # (G,)
    idx = np.random.default_rng(seed).integers(0, len(groups), size=(resamples, len(groups)))
    stats = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)  # (R,)
    low, high = np.percentile(stats, [2.5, 97.5])
    return (float(low), float(high))


def win_rate_summary(
    outcomes: dict[int, list[float]], *, resamples: int = 1000, seed: int = 0
) -> dict:
    """Outcomes per prompt (1 win, 0 loss, 0.5 tie) → win rate with both intervals."""
    flat = [o for row in outcomes.values() for o in row]
    n = len(flat)
    wins, losses = sum(o == 1.0 for o in flat), sum(o == 0.0 for o in flat)
    score = sum(flat)
    ci = bootstrap_interval(list(outcomes.values()), resamples=resamples, seed=seed)
    return {
        "value": score / n if n else None, "pairs": n, "wins": wins, "losses": losses,
        "ties": n - wins - losses, "ci_wilson": list(wilson_interval(score, n)) if n else None,
        "ci_bootstrap": list(ci) if ci else None, "prompts": len(outcomes),
    }


def length_stats(samples: Sequence[GeneratedSample]) -> dict | None:
    if not samples:
        return None
    tokens = np.array([s.token_count for s in samples], dtype=float)
    chars = np.array([len(s.response.text) for s in samples], dtype=float)
    return {
        "mean_tokens": round(float(tokens.mean()), 3),
        "median_tokens": float(np.median(tokens)),
        "p90_tokens": float(np.percentile(tokens, 90)),
        "mean_chars": round(float(chars.mean()), 2),
        "stopped": round(sum(s.finish_reason == "stop" for s in samples) / len(samples), 4),
        "samples": len(samples),
    }


def task_score(sample: GeneratedSample) -> float | None:
    """1/0 by the checker of the prompt's demo task; None for prompts of no such task."""
    metadata = sample.prompt.metadata or {}
    constraints = constraints_of(metadata)
    if constraints is not None:
        return 1.0 if prompt_passes(constraints, sample.response.text) else 0.0
    return demo_capital_score(messages=sample.prompt.messages, response=sample.response.text,
                              metadata=metadata)


def demo_accuracy(samples: Sequence[GeneratedSample]) -> dict | None:
    """Share of answers the task checker accepts (prompts of no demo task skipped)."""
    scores = [task_score(s) for s in samples]
    kept = [x for x in scores if x is not None]
    if not kept:
        return None
    questions = len({s.prompt_id for s, x in zip(samples, scores, strict=True) if x is not None})
    return {"value": sum(kept) / len(kept), "samples": len(kept), "questions": questions}


def kl_to_reference(
    samples: Sequence[GeneratedSample], *, policy: ModelVersion, reference: ModelVersion
) -> dict | None:
    """``mean log π(y|x) − log π_ref(y|x)`` over the policy's samples (see the module doc)."""
    if not samples:
        return None
    counts = Counter((s.prompt_id, s.response.text) for s in samples)
    messages = {s.prompt_id: s.prompt.messages for s in samples}
    keys = list(counts)
    requests = [ScoreRequest(messages=messages[p], continuation=text) for p, text in keys]
    mine = feedback_conf.backend_for(policy.source).score(requests)
    theirs = feedback_conf.backend_for(reference.source).score(requests)
    weights = np.array([counts[k] for k in keys], dtype=float)
    diff = np.array([a.logprob - b.logprob for a, b in zip(mine, theirs, strict=True)])
    tokens = float((weights * np.array([a.token_count for a in mine])).sum())
    total = float((weights * diff).sum())
    return {
        "value": total / weights.sum(), "per_token": total / tokens if tokens else None,
        "reference": reference.name, "samples": int(weights.sum()),
    }


def leaderboard_snapshot(*, project, seed: int = 0) -> list[dict]:
    rows = leaderboard_get(project=project, bootstrap=100, seed=seed)
    return [asdict(row) for row in rows]


# --- the evaluate step ------------------------------------------------------------------


def round_evaluate(rnd: Round) -> str:
    """Measure the round's new version against its policy; returns a one-line summary."""
    cfg = rnd.evaluation
    if not cfg.get("samples"):
        return "evaluation is off (eval_samples 0)"
    tags = rnd.prompt_selection.get("tags") or []
    held_out = Prompt.objects.filter(project=rnd.project, split=Prompt.Split.EVAL)
    if not held_out.exists():
        records.metrics_merge(rnd, {"evaluation": {"skipped": "no held-out prompts"}})
        return "no held-out prompts (split eval): nothing to evaluate"
    new = _samples(rnd, "eval_job", rnd.new_version, cfg, tags)
    old = _samples(rnd, "baseline_job", rnd.policy, cfg, tags)
    metrics = {
        "evaluation": {**cfg, "prompts": len({s.prompt_id for s in new})},
        "accuracy": demo_accuracy(new), "accuracy_before": demo_accuracy(old),
        "length": length_stats(new), "length_before": length_stats(old),
        "kl": kl_to_reference(new, policy=rnd.new_version, reference=rnd.reference),
        "win_rate": win_rate(rnd, new, old) if rnd.eval_judge else None,
        "leaderboard": leaderboard_snapshot(project=rnd.project, seed=cfg.get("seed", 0)),
    }
    records.metrics_merge(rnd, metrics)
    return _summary(metrics)


def _samples(rnd: Round, field: str, version: ModelVersion, cfg: dict, tags: list[str]):
    sampling = {"n": cfg["samples"], "temperature": cfg["temperature"],
                "max_tokens": cfg["max_tokens"], "seed": cfg["seed"]}
    job = records.attach(rnd, field, lambda: generation_services.generation_job_create(
        project=rnd.project, model_version=version, sampling=sampling, pairing_name="none",
        split="eval", tags=tags, enqueue=False,
    ))
    job = generation_job_run(job_id=job.pk)
    if job.status != GenerationJob.Status.SUCCEEDED:
        raise ApplicationError(f"evaluation generation job {job.pk} {job.status}: {job.error}")
    return list(selectors.job_samples(job=job).order_by("prompt_id", "sample_index"))


def win_rate(rnd: Round, new: list[GeneratedSample], old: list[GeneratedSample]) -> dict:
    """Sample i of the new version against sample i of the old one, per held-out prompt."""
    old_by = {(s.prompt_id, s.sample_index): s for s in old}
    pairs = [(s, old_by[(s.prompt_id, s.sample_index)]) for s in new
             if (s.prompt_id, s.sample_index) in old_by]
    differ = [(a, b) for a, b in pairs if a.response.text.strip() != b.response.text.strip()]
    store.tasks_get_or_create(project=rnd.project,
                              pairs=[(a.response, b.response) for a, b in differ])
    keys = {f"{a.response_id}:{b.response_id}" for a, b in differ}
    tasks = {t.pair_key: t for t in Task.objects.filter(kind=Task.Kind.PAIRWISE, pair_key__in=keys)}
    ids = sorted(t.pk for t in tasks.values())
    job = records.attach(rnd, "eval_feedback_job", lambda: labels.judge_job_create(
        project=rnd.project, judge=rnd.eval_judge, task_ids=ids))
    job = labels.judge_job_run(job)
    if job is not None and job.status != FeedbackJob.Status.SUCCEEDED:
        raise ApplicationError(f"evaluation feedback job {job.pk} {job.status}: {job.error}")
    by_task = {x.task_id: x for x in FeedbackLabel.objects.filter(judge=rnd.eval_judge,
                                                                 task_id__in=ids)}
    outcomes: dict[int, list[float]] = defaultdict(list)
    unjudged = flipped = 0
    for a, b in pairs:
        task = tasks.get(f"{a.response_id}:{b.response_id}")
        label = by_task.get(task.pk) if task else None
        if task is not None and label is None:
            unjudged += 1
            continue
        flipped += bool(label and label.flipped)
        outcomes[a.prompt_id].append(0.5 if label is None else _outcome(label, task, a))
    summary = win_rate_summary(outcomes, resamples=rnd.evaluation.get("bootstrap", 1000),
                               seed=rnd.evaluation.get("seed", 0))
    return {**summary, "judge": rnd.eval_judge.name, "unjudged": unjudged,
            "order_flips": flipped, "identical": len(pairs) - len(differ)}


def _outcome(label: FeedbackLabel, task: Task, new: GeneratedSample) -> float:
    p_new = label.soft_label if task.response_a_id == new.response_id else 1 - label.soft_label
    return 1.0 if p_new > 0.5 else 0.0 if p_new < 0.5 else 0.5


def _summary(m: dict) -> str:
    parts = []
    if m["accuracy"]:
        before = m["accuracy_before"]["value"] if m["accuracy_before"] else float("nan")
        parts.append(f"accuracy {m['accuracy']['value']:.1%} (was {before:.1%})")
    if m["win_rate"] and m["win_rate"]["value"] is not None:
        parts.append(f"win rate {m['win_rate']['value']:.1%}")
    if m["kl"]:
        parts.append(f"KL {m['kl']['value']:.3f}")
    if m["length"]:
        parts.append(f"{m['length']['mean_tokens']:.1f} tokens")
    return ", ".join(parts)
