"""Model versions served elsewhere: registering an endpoint, and the backend a version runs on.

An endpoint version points at an OpenAI-compatible server (base URL + served model name +
the NAME of the environment variable holding the API key; the key itself is never stored).
Its ``source`` is optional: a local folder or cached hub id of the same model, from which
the remote backend loads the tokenizer (exact prompts, scoring and judge options).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import environ
from django.db import transaction

from annotation.models import Project
from generation import conf, services
from generation.backends import GenerationBackend, get_backend
from generation.models import ModelVersion
from prefloop.exceptions import InvalidInputError

env = environ.Env()
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def endpoint_checked(*, endpoint_url: str, served_name: str, api_key_env: str) -> dict[str, str]:
    """The endpoint fields, validated (400 on a malformed URL, name or variable name)."""
    url = endpoint_url.strip().rstrip("/")
    parsed = urlparse(url)
    errors = {}
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        errors["endpoint_url"] = f"{endpoint_url!r} is not an http(s) URL"
    if url.endswith("/v1"):
        url = url[: -len("/v1")]  # the backend adds /v1/... itself
    if not served_name.strip():
        errors["served_name"] = "an endpoint needs the model's served name"
    if api_key_env and not ENV_NAME.match(api_key_env):
        errors["api_key_env"] = (
            "give the NAME of an environment variable (letters, digits, _), never the key"
        )
    if errors:
        raise InvalidInputError(errors)
    return {"endpoint_url": url, "served_name": served_name.strip(), "api_key_env": api_key_env}


@transaction.atomic
def model_version_register_endpoint(
    *, name: str, endpoint_url: str, served_name: str, api_key_env: str = "",
    tokenizer_source: str = "", parent_name: str = "", round_index: int | None = None,
    notes: str = "", project: Project | None = None,
) -> ModelVersion:
    """Register (idempotently) a model version served at an endpoint."""
    fields = endpoint_checked(
        endpoint_url=endpoint_url, served_name=served_name, api_key_env=api_key_env
    )
    version = services.model_version_register_checked(
        name=name, source=tokenizer_source, parent_name=parent_name, round_index=round_index,
        notes=notes, project=project,
    )
    current = {key: getattr(version, key) for key in fields}
    if current == fields:
        return version
    if version.is_endpoint or version.generation_jobs.exists():
        raise InvalidInputError({"name": f"model name {name!r} is already registered elsewhere"})
    ModelVersion.objects.filter(pk=version.pk).update(**fields)
    version.refresh_from_db()
    return version


def model_version_endpoint_served(
    *, parent: ModelVersion, name: str, served_name: str, adapter_path: str,
    tokenizer_source: str, round_index: int | None = None, notes: str = "",
    metadata: dict | None = None,
) -> ModelVersion:
    """Load a LoRA adapter into the server ``parent`` runs on, and register it as a version
    served there (a child of ``parent``). Idempotent: a loaded adapter is not reloaded."""
    backend = version_backend(parent)
    backend.load_lora_adapter(name=served_name, path=adapter_path)
    version = model_version_register_endpoint(
        name=name, endpoint_url=parent.endpoint_url, served_name=served_name,
        api_key_env=parent.api_key_env, tokenizer_source=tokenizer_source,
        parent_name=parent.name, round_index=round_index, notes=notes, project=parent.project,
    )
    if metadata and any(version.metadata.get(k) != v for k, v in metadata.items()):
        version.metadata = {**version.metadata, **metadata}
        version.save(update_fields=["metadata"])
    return version


def remote_options(version: ModelVersion) -> dict[str, Any]:
    """Constructor options of the remote backend for ``version`` (plain values)."""
    return {
        "base_url": version.endpoint_url,
        "served_name": version.served_name,
        "api_key_env": version.api_key_env,
        "max_in_flight": env.int("GENERATION_REMOTE_MAX_IN_FLIGHT", default=16),
        "timeout": env.float("GENERATION_REMOTE_TIMEOUT", default=120.0),
        "retries": env.int("GENERATION_REMOTE_RETRIES", default=6),
        "backoff": env.float("GENERATION_REMOTE_BACKOFF", default=0.5),
    }


def backend_name_for(version: ModelVersion) -> str:
    return "remote" if version.is_endpoint else conf.backend_name()


def version_backend(version: ModelVersion) -> GenerationBackend:
    """The backend that runs ``version``: its server's, or this worker's engine."""
    if version.is_endpoint:
        return get_backend("remote", version.source, **remote_options(version))
    name = conf.backend_name()
    return get_backend(name, version.source, **conf.backend_options(name))
