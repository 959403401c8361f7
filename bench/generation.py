"""Generation throughput: the vLLM backend against the transformers backend, same prompts.

    .venv/bin/python bench/generation.py [--prompts 256] [--n 2] [--max-tokens 64] [--model DIR]
    .venv/bin/python bench/generation.py --backend remote [...]

``--backend remote`` compares a model behind ``vllm serve`` (started here, loopback, the same
engine settings) with the same model in-process (the vLLM backend): the server runs first
and is stopped before the in-process engine starts. Its last line is
``remote/in-process throughput ratio: R`` at the job level (a whole GenerationJob each).

Each backend runs in a fresh process (one engine on the machine at a time) and measures,
on the same prompts and sampling (temperature 1, seed 0), output tokens per second of:

* raw engine: the library's own batched call (``LLM.generate`` / ``model.generate``);
* backend: ``GenerationBackend.generate`` (chat template, seeds, log-probs, ordering);
* job: a whole ``GenerationJob`` (selection, generation, responses, samples and pairs
  written to a scratch SQLite database, or to ``--database-url``), as a fraction of raw,
  and the share of the job's time spent outside the engine.

Each level is measured ``--repeats`` times, interleaved, and the best run is kept.

The model defaults to the demo model (built first if missing, a few minutes). The last
line is ``vllm/transformers throughput ratio: R`` (backend level).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")
SERVED = "bench"
ENGINE_ENV = {  # what a CPU worker sets; harmless on GPUs
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "GENERATION_KV_CACHE_GIB": "2",
    "GENERATION_ENFORCE_EAGER": "1",
    "GENERATION_DTYPE": "float32",
}


def machine() -> str:
    from bench.machine import cpu_model

    cpu = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {cores} cores, {gpu}, torch {torch.__version__}"


# --- one backend, in its own process ------------------------------------------------------


def measure(name: str, model: str, args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from generation.backends import SamplingConfig

    call_command("migrate", verbosity=0)
    questions = bench_questions(args.prompts)
    conversations = [[{"role": "user", "content": q}] for q in questions]
    sampling = SamplingConfig(n=args.n, temperature=1.0, max_tokens=args.max_tokens, seed=0)
    started = time.perf_counter()
    backend = make_backend(name, model, args)
    result = {"backend": name, "engine_start_s": round(time.perf_counter() - started, 1)}
    backend.generate(conversations, SamplingConfig(n=args.n, max_tokens=8, seed=1))  # warm-up
    # Interleaved repeats, best of each: the machine may be shared.
    runs: dict[str, list[dict]] = {"raw": [], "backend_level": [], "job": []}
    for _ in range(args.repeats):
        runs["raw"].append(timed(lambda: raw_generate(backend, conversations, sampling)))
        runs["backend_level"].append(
            timed(lambda: backend_tokens(backend, conversations, sampling))
        )
        runs["job"].append(job_throughput(model, questions, sampling, args))
    for level, measured in runs.items():
        result[level] = max(measured, key=lambda r: r["tokens_per_s"])
    for level in ("raw", "backend_level"):
        result[f"job_fraction_of_{level}"] = round(
            result["job"]["tokens_per_s"] / result[level]["tokens_per_s"], 3
        )
    backend.close()
    return result


def make_backend(name: str, model: str, args: argparse.Namespace):
    from generation import conf
    from generation.backends import get_backend

    if name == "remote":
        return get_backend("remote", model, base_url=args.url, served_name=SERVED,
                           max_in_flight=args.max_in_flight)
    return get_backend(name, model, **conf.backend_options(name))


def bench_questions(count: int) -> list[str]:
    from generation.demo.facts import demo_questions

    pool = [
        q for split in ("train", "heldout") for _, q in demo_questions(split, all_phrasings=True)
    ]
    return pool[:count]


def backend_tokens(backend, conversations, sampling) -> int:
    return sum(c.token_count for row in backend.generate(conversations, sampling) for c in row)


def timed(run) -> dict:
    started = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - started
    return {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def raw_generate(backend, conversations, sampling) -> int:
    """The engine's own call on the same token ids, without our bookkeeping."""
    from generation.backends.base import render_prompt_ids, request_seed

    if backend.name == "remote":  # no engine call to reach past HTTP: the backend's own
        return backend_tokens(backend, conversations, sampling)
    prompts = [render_prompt_ids(backend.tokenizer, c) for c in conversations]
    if backend.name == "vllm":
        from vllm import SamplingParams

        params = [
            SamplingParams(n=sampling.n, temperature=sampling.temperature,
                           max_tokens=sampling.max_tokens, seed=request_seed(0, p))
            for p in prompts
        ]
        outputs = backend.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False
        )
        return sum(len(o.token_ids) for out in outputs for o in out.outputs)
    return raw_hf_generate(backend, prompts, sampling)


def raw_hf_generate(backend, prompts, sampling) -> int:
    import torch
    from transformers import GenerationConfig

    per_batch, tokens = max(1, backend.max_batch_size // sampling.n), 0
    config = GenerationConfig(
        do_sample=True, temperature=sampling.temperature, top_k=0, top_p=1.0,
        num_return_sequences=sampling.n, max_new_tokens=sampling.max_tokens,
        eos_token_id=backend.eos, pad_token_id=backend.pad_id,
    )
    torch.manual_seed(0)
    with torch.inference_mode():
        for start in range(0, len(prompts), per_batch):
            inputs = backend._left_padded(prompts[start : start + per_batch])
            new = backend.lm.generate(**inputs, generation_config=config)
            new = new[:, inputs["input_ids"].shape[1] :]
            finished = torch.isin(new, torch.tensor(backend.eos, device=new.device))
            # tokens up to and including the first end-of-sequence token
            lengths = torch.where(
                finished.any(1), finished.int().argmax(1) + 1, torch.tensor(new.shape[1])
            )
            tokens += int(lengths.sum())
    return tokens


def job_throughput(model: str, questions: list[str], sampling, args: argparse.Namespace) -> dict:
    from django.contrib.auth import get_user_model

    from annotation.models import Task
    from annotation.services.content import prompt_get_or_create
    from annotation.services.projects import project_create
    from generation import endpoints, jobs, services

    owner, _ = get_user_model().objects.get_or_create(username=f"bench-{time.time_ns()}")
    project = project_create(slug=f"bench-{time.time_ns()}", owner=owner)
    for q in questions:
        prompt_get_or_create(project=project, messages=q)
    if args.url:  # the remote run: an endpoint version, as an owner would register it
        version = endpoints.model_version_register_endpoint(
            name=f"bench-{time.time_ns()}", endpoint_url=args.url, served_name=SERVED,
            tokenizer_source=model,
        )
    else:
        version = services.model_version_register(name=f"bench-{time.time_ns()}", source=model)
    started = time.perf_counter()
    job = services.generation_job_create(
        project=project, model_version=version, sampling=sampling.to_dict(), enqueue=False,
        batch_size=args.batch_size,
    )
    job = jobs.generation_job_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    assert job.status == "succeeded", job.error
    return {
        "tokens": job.output_tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(job.output_tokens / seconds, 1),
        "engine_seconds": round(job.engine_seconds, 3), "responses": job.responses_created,
        "tasks": Task.objects.filter(project=project).count(),
    }


# --- the parent: run both, print the table ------------------------------------------------


def demo_model() -> str:
    import django

    django.setup()
    from django.conf import settings

    from generation.demo.build import build_demo_model

    build_demo_model(settings.DEMO_MODEL_DIR, seed=0)
    return str(settings.DEMO_MODEL_DIR)


def run_child(
    name: str, model: str, args: argparse.Namespace, scratch: Path, url: str = ""
) -> dict:
    out = scratch / f"{name}.json"
    env = {**os.environ, **ENGINE_ENV, "GENERATION_BACKEND": "vllm" if name == "remote" else name}
    env["GENERATION_REMOTE_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    env.setdefault("DATABASE_URL", f"sqlite:///{scratch / f'{name}.sqlite3'}")
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    cmd = [sys.executable, __file__, "--child", name, "--model", model, "--out", str(out),
           "--prompts", str(args.prompts), "--n", str(args.n), "--max-tokens",
           str(args.max_tokens), "--batch-size", str(args.batch_size),
           "--repeats", str(args.repeats), "--url", url,
           "--max-in-flight", str(args.max_in_flight)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
    return json.loads(out.read_text())


def report(results: dict[str, dict], args: argparse.Namespace, model: str) -> None:
    print(f"machine: {machine()}")
    print(f"model: {model}; {args.prompts} prompts x n={args.n}, temperature 1, "
          f"max_tokens {args.max_tokens}, job batch {args.batch_size} prompts")
    print(f"{'backend':<13}{'start s':>8}{'raw tok/s':>11}{'backend tok/s':>15}"
          f"{'job tok/s':>11}{'job/raw':>9}{'job/backend':>13}")
    for name, r in results.items():
        job_raw, job_backend = r["job_fraction_of_raw"], r["job_fraction_of_backend_level"]
        print(f"{name:<13}{r['engine_start_s']:>8}{r['raw']['tokens_per_s']:>11}"
              f"{r['backend_level']['tokens_per_s']:>15}{r['job']['tokens_per_s']:>11}"
              f"{job_raw:>9.0%}{job_backend:>13.0%}")
    for name, r in results.items():
        job = r["job"]
        share = 1 - job["engine_seconds"] / job["seconds"]
        print(f"{name} job: {job['seconds']} s, engine {job['engine_seconds']} s, everything else "
              f"(selection, DB writes, pairing) {share:.1%}; {job['responses']} responses, "
              f"{job['tasks']} tasks written")
    for name, r in results.items():
        print(f"{name} output tokens/s: {r['backend_level']['tokens_per_s']}")
    if "remote" in results:
        ratio = results["remote"]["job"]["tokens_per_s"] / results["vllm"]["job"]["tokens_per_s"]
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"remote/in-process throughput ratio: {ratio:.2f}")
        return
    ratio = (
        results["vllm"]["backend_level"]["tokens_per_s"]
        / (results["transformers"]["backend_level"]["tokens_per_s"])
    )
    print(f"vllm/transformers throughput ratio: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256, help="Prompts per job batch.")
    parser.add_argument("--repeats", type=int, default=3, help="Best of this many runs.")
    parser.add_argument("--model", default="", help="Model folder (default: the demo model).")
    parser.add_argument("--database-url", default="", help="Job database (default: scratch).")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--backend", choices=("transformers", "remote"), default="transformers",
                        help="What to compare the in-process vLLM backend with.")
    parser.add_argument("--max-in-flight", type=int, default=256,
                        help="remote: requests in flight (one per prompt).")
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.out).write_text(json.dumps(measure(args.child, args.model, args)))
        return
    if args.prompts < 1 or args.prompts > 1200:
        parser.error("--prompts must be 1..1200 (the demo has 1200 distinct questions)")
    model = args.model or demo_model()
    with tempfile.TemporaryDirectory(prefix="prefloop-bench-") as scratch:
        if args.backend == "remote":
            results = {"remote": served_run(model, args, Path(scratch))}
            results["vllm"] = run_child("vllm", model, args, Path(scratch))
        else:
            results = {
                name: run_child(name, model, args, Path(scratch))
                for name in ("vllm", "transformers")
            }
    report(results, args, model)


def served_run(model: str, args: argparse.Namespace, scratch: Path) -> dict:
    """The remote child against a ``vllm serve`` of ``model`` with the in-process settings."""
    from generation.backends.vllm_serve import VLLMServer

    server = VLLMServer(model, served_name=SERVED, kv_cache_gib=float(ENGINE_ENV[
        "GENERATION_KV_CACHE_GIB"]), log_path=scratch / "vllm-serve.log")
    started = time.perf_counter()
    with server.started():
        start_s = round(time.perf_counter() - started, 1)
        result = run_child("remote", model, args, scratch, url=server.url)
    result["engine_start_s"] = start_s  # the server's start, not the client's
    return result


if __name__ == "__main__":
    main()
