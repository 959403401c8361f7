"""Register a model version: a local Hugging Face folder (as the workers see it), a hub id,
a GGUF file (converted once into a float32 safetensors folder under the models folder),
or a model served by an OpenAI-compatible server (``--endpoint URL --served-name X``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from generation import endpoints, services
from generation.model_import import is_gguf_source, model_version_register_gguf
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Register a model version (idempotent for the same name and source / endpoint)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Slug naming the version, e.g. demo-round-1.")
        parser.add_argument(
            "source", nargs="?", default="",
            help="Local model folder, a .gguf file, or Hugging Face hub id. With --endpoint: "
            "optional, where the tokenizer loads from (needed for scoring and judge options).",
        )
        parser.add_argument("--parent", default="", help="Name of the version it derives from.")
        parser.add_argument("--round", type=int, default=None, dest="round_index")
        parser.add_argument("--notes", default="")
        parser.add_argument("--endpoint", default="", help="Base URL of an OpenAI-compatible "
                            "server, e.g. http://vllm:8000 (the /v1 is added).")
        parser.add_argument("--served-name", default="", help="The model's name on the server.")
        parser.add_argument(
            "--api-key-env", default="",
            help="NAME of the environment variable holding the server's API key (never the key).",
        )

    def handle(self, *args, name: str, source: str, endpoint: str, **options):
        common = {"name": name, "parent_name": options["parent"], "notes": options["notes"],
                  "round_index": options["round_index"]}
        try:
            if endpoint:
                version = endpoints.model_version_register_endpoint(
                    endpoint_url=endpoint, served_name=options["served_name"],
                    api_key_env=options["api_key_env"], tokenizer_source=source, **common,
                )
            elif options["served_name"] or options["api_key_env"]:
                raise CommandError("--served-name and --api-key-env need --endpoint")
            elif not source:
                raise CommandError("give the model's source (a folder or hub id) or --endpoint")
            elif is_gguf_source(source):
                if options["parent"] or options["round_index"] is not None:
                    raise CommandError("a GGUF import registers a base model: no --parent/--round")
                version = model_version_register_gguf(
                    name=name, gguf_path=source, notes=options["notes"],
                    log=lambda msg: self.stdout.write(msg),
                )
            else:
                version = services.model_version_register_checked(source=source, **common)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        where = (f"{version.served_name} at {version.endpoint_url}" if version.is_endpoint
                 else version.source)
        self.stdout.write(self.style.SUCCESS(
            f"model version {version.name} (id {version.pk}, v{version.version}) -> {where}"
        ))
