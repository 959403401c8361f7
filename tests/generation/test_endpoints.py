"""Endpoint model versions in the registry: ``register_model --endpoint``, validation, the
key's variable NAME stored (never a key), and which backend a version runs on."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from generation import endpoints, services
from generation.models import ModelVersion

pytestmark = pytest.mark.django_db


def register(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("register_model", *args, stdout=out)
    return out.getvalue()


def test_register_model_with_an_endpoint_stores_url_served_name_and_the_key_variable_name():
    said = register("judge-70b", "--endpoint", "http://vllm-judge:8000/v1/",
                    "--served-name", "judge", "--api-key-env", "JUDGE_KEY")
    assert "judge at http://vllm-judge:8000" in said
    version = ModelVersion.objects.get(name="judge-70b")
    assert version.is_endpoint and version.source == ""
    assert (version.endpoint_url, version.served_name, version.api_key_env) == (
        "http://vllm-judge:8000", "judge", "JUDGE_KEY",
    )
    assert endpoints.backend_name_for(version) == "remote"
    assert endpoints.remote_options(version)["api_key_env"] == "JUDGE_KEY"
    register("judge-70b", "--endpoint", "http://vllm-judge:8000", "--served-name", "judge",
             "--api-key-env", "JUDGE_KEY")  # idempotent
    assert ModelVersion.objects.filter(name="judge-70b").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "ftp://x", "--served-name", "m"], "is not an http(s) URL"),
        (["--endpoint", "http://x:8000", "--served-name", ""], "needs the model's served name"),
        (["--endpoint", "http://x:8000", "--served-name", "m", "--api-key-env", "sk-abc123!"],
         "NAME of an environment variable"),
        (["--served-name", "m"], "need --endpoint"),
        ([], "give the model's source"),
    ],
)
def test_bad_endpoints_are_refused_with_a_reason(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        register("bad", *args)
    assert not ModelVersion.objects.filter(name="bad").exists()


def test_a_local_version_runs_on_the_workers_engine(settings, tmp_path):
    settings.GENERATION_BACKEND = "fake"
    version = services.model_version_register(name="local", source="some/hub-id")
    assert not version.is_endpoint and endpoints.backend_name_for(version) == "fake"
    assert endpoints.version_backend(version).name == "fake"
