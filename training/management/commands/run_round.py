"""python manage.py run_round --project SLUG [--rounds N] [--algorithm dpo] [--judge programmatic]
[--reference previous] [--sync]

Starts N chained rounds (each starts from the model the one before made). Without
``--sync`` the rounds run on Celery workers (queues gpu, train, default) and the command
returns at once; with ``--sync`` they run here, step by step, and the command prints the
results table. ``--demo`` first sets the capitals demo project up (see docs/rounds.md).
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from transformers.utils import logging as hf_logging

from annotation.models import Project
from generation.selectors import model_version_get
from prefloop.exceptions import ApplicationError
from training.management.params import key_value_param
from training.rounds import demo, instruct_demo, plot, selectors, services
from training.rounds.config import DEMO_SCORER, RoundSettings
from training.rounds.models import Round

JUDGES = {"programmatic": ("programmatic", f"programmatic:{DEMO_SCORER}"),
          "constitutional": ("ai", "constitutional"), "human": ("human", "")}


class Command(BaseCommand):
    help = "Run iterative rounds: generate, label, train, evaluate, and again from the new model."

    def add_arguments(self, parser) -> None:
        a = parser.add_argument
        a("--project", required=True, help="Project slug.")
        a("--rounds", type=int, default=1, help="Rounds to run, each from the last new model.")
        a("--algorithm", default="dpo", choices=("dpo", "kto", "ipo", "simpo", "orpo"))
        a("--judge", default="programmatic",
          help="programmatic (the demo checker), constitutional, human, or a judge spec "
               "(programmatic:pkg.mod.fn, reward-model:VERSION).")
        a("--labelling", choices=("human", "ai", "programmatic", "mix"),
          help="Who labels (default: from --judge).")
        a("--decider", choices=("votes", "human"), default="votes")
        a("--reference", choices=("initial", "previous"), default="previous")
        a("--policy", default="", help="Model version to start from (default: the last round's).")
        a("--samples", type=int, default=4, help="Candidates per training prompt.")
        a("--temperature", type=float, default=1.0)
        a("--max-tokens", type=int, default=32)
        a("--pairing", default="", help="all | random | best_vs_worst | none (thumbs).")
        a("--eval-samples", type=int, default=8, help="Answers per held-out prompt.")
        a("--seed", type=int, default=0)
        a("--deadline-hours", type=float, help="Stop waiting for humans after this long.")
        a("--partial-policy", choices=("proceed", "fail", "ai_fill"), default="proceed")
        a("--min-coverage", type=float, default=1.0)
        a("--param", action="append", default=[], metavar="KEY=VALUE",
          help="Trainer setting, e.g. lr=1e-4 (python -m training.core.train -h).")
        a("--sync", action="store_true", help="Run here instead of on Celery workers.")
        a("--resume", type=int, metavar="INDEX", help="Continue round INDEX where it stopped.")
        a("--demo", action="store_true", help="Set the demo project of --task up first.")
        a("--task", choices=("capitals", "instruct"), default="capitals",
          help="--demo: capitals (the demo model) or instruct (SmolLM2, `make real-model`).")
        a("--prompts", type=int, default=96, help="--task instruct: training prompts.")
        a("--held-out", type=int, default=40, help="--task instruct: held-out prompts.")
        a("--base-model", default="", help="--demo: the demo model folder.")
        a("--threads", type=int, default=0, help="torch threads here and in the trainer.")
        a("--plot", default="", help="Write the rounds' metrics plot (PNG or SVG) here.")
        a("--poll", type=float, default=10.0, help="--sync: seconds between label checks.")

    def handle(self, *args, **o) -> None:
        hf_logging.disable_progress_bar()  # one "Loading weights" bar per model load
        if o["threads"]:
            import torch  # only the --threads path needs it in this process

            torch.set_num_threads(o["threads"])
        try:
            project, policy = self._project(o)
            rnd = self._start(o, project, policy)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if not o["sync"]:
            self.stdout.write(f"round {rnd.index} of {project.slug} queued (step {rnd.step})")
            return
        started = time.monotonic()
        last = services.round_run_inline(round_id=rnd.pk, poll_seconds=o["poll"],
                                         on_step=self._progress)
        self.stdout.write(f"\n{len(selectors.round_list(project=project))} round(s), "
                          f"{time.monotonic() - started:.0f} s\n")
        self._report(o, project)
        if last.status != Round.Status.SUCCEEDED:
            raise CommandError(f"round {last.index} {last.status}: {last.error}")

    def _project(self, o: dict):
        existing = Project.objects.filter(slug=o["project"]).first()  # its own models, if any
        policy = model_version_get(name=o["policy"], project=existing) if o["policy"] else None
        if o["demo"] and o["task"] == "instruct":
            project = instruct_demo.instruct_project_setup(
                slug=o["project"], train=o["prompts"], held_out=o["held_out"], seed=o["seed"]
            )
            first = not Round.objects.filter(project=project).exists()
            base = instruct_demo.base_version_get_or_register() if first else None
            return project, policy or base
        if o["demo"]:
            base = Path(o["base_model"] or settings.DEMO_MODEL_DIR)
            if not (base / "config.json").is_file():
                raise CommandError(f"no demo model in {base}: python -m generation.demo.build "
                                   f"{base} (about 40 minutes on 2 cores)")
            project, base_version = demo.demo_project_setup(
                slug=o["project"], base_model=base, binary=o["algorithm"] == "kto"
            )
            first = not Round.objects.filter(project=project).exists()
            return project, policy or (base_version if first else None)
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        return project, policy

    def _start(self, o: dict, project: Project, policy) -> Round:
        if o["resume"] is not None:
            rnd = selectors.round_get(project=project, index=o["resume"])
            return services.round_resume(rnd=rnd, inline=o["sync"])
        return services.round_create(project=project, settings=self._settings(o), policy=policy,
                                     inline=o["sync"])

    def _settings(self, o: dict) -> RoundSettings:
        instruct = o["demo"] and o["task"] == "instruct"
        labelling, judge = JUDGES.get(o["judge"], (None, o["judge"]))
        if instruct and o["judge"] == "programmatic":
            judge = f"programmatic:{instruct_demo.INSTRUCT_SCORER}"
        labelling = o["labelling"] or labelling or "ai"
        hyper = {}
        if o["demo"]:
            hyper = dict(instruct_demo.INSTRUCT_HYPERPARAMETERS if instruct
                         else demo.DEMO_HYPERPARAMETERS)
        hyper.update(key_value_param(p) for p in o["param"])
        if o["threads"]:
            hyper.setdefault("threads", o["threads"])
        return RoundSettings.from_dict({
            "algorithm": o["algorithm"], "labelling": labelling, "judge": judge,
            "decider": o["decider"], "reference": o["reference"], "hyperparameters": hyper,
            "samples": o["samples"], "temperature": o["temperature"],
            "max_tokens": o["max_tokens"], "pairing": o["pairing"], "seed": o["seed"],
            "eval_samples": o["eval_samples"], "eval_max_tokens": o["max_tokens"],
            "deadline_hours": o["deadline_hours"], "partial_policy": o["partial_policy"],
            "min_coverage": o["min_coverage"], "rounds": o["rounds"],
        })

    def _progress(self, rnd: Round, step: str) -> None:
        state = rnd.steps.get(step)
        if state == "waiting" and (rnd.timings.get(step) or {}).get("attempts", 0) > 1:
            return  # one line when the wait starts, not one per check
        seconds = (rnd.timings.get(step) or {}).get("seconds")
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        note = next((n for n in reversed(rnd.notes) if n.startswith(f"{step}:")), "")
        self.stdout.write(f"round {rnd.index}: {step} {state}{took}  {note}")
        self.stdout.flush()

    def _report(self, o: dict, project: Project) -> None:
        rows = selectors.round_table(project=project)
        if o["plot"]:
            path = plot.rounds_plot_write(project=project, path=Path(o["plot"]))
            self.stdout.write(f"plot: {path}")
        metric = "held-out constraint accuracy" if o["task"] == "instruct" else "held-out accuracy"
        for line in demo.table_lines(rows, metric=metric):
            self.stdout.write(line)
