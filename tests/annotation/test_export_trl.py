"""Exported files train for one step with TRL's own DPOTrainer and KTOTrainer (tiny model)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import datasets
import pytest
from django.core.management import call_command

from annotation.services import imports, projects

trl = pytest.importorskip("trl")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tiny_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|endoftext|>", eos_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_model(tokenizer):
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    return transformers.Qwen2ForCausalLM(config)


def common_args(tmp_path: Path, name: str) -> dict:
    return dict(
        output_dir=str(tmp_path / name), max_steps=1, per_device_train_batch_size=2,
        learning_rate=1e-3, report_to="none", save_strategy="no", use_cpu=True,
        max_length=64, logging_steps=1, bf16=False, fp16=False,
    )


@pytest.fixture
def exported(make_user, settings, tmp_path):
    """A project with pairs and thumbs, exported in every TRL format as datasets folders."""
    settings.DATA_DIR = tmp_path / "data"
    project = projects.project_create(slug="trl", owner=make_user("owner"))
    pairs = [{"prompt": f"Capital of land {i}?", "chosen": f"City {i}.",
              "rejected": f"Maybe city {i + 1}."} for i in range(4)]
    kto = [{"prompt": f"Capital of isle {i}?", "completion": f"Town {i}.", "label": i % 2 == 0}
           for i in range(4)]
    for name, rows in (("pairs.jsonl", pairs), ("kto.jsonl", kto)):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert imports.import_file(project=project, path=path).imported
    out = {}
    for fmt in ("trl-dpo", "trl-dpo-conversational", "trl-kto"):
        out[fmt] = tmp_path / fmt
        call_command("export_dataset", "--project", "trl", "--format", fmt, "--out", str(out[fmt]))
    texts = [json.dumps(r) for r in pairs + kto] * 5
    return out, tiny_tokenizer(texts)


def trained_one_step(trainer) -> bool:
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.train()
    after = list(trainer.model.parameters())
    return result.global_step == 1 and any(
        not torch.equal(b, a) for b, a in zip(before, after, strict=True)
    )


@pytest.mark.parametrize("fmt", ["trl-dpo", "trl-dpo-conversational"])
def test_dpo_trainer_takes_a_step_on_an_export(exported, tmp_path, fmt):
    folders, tokenizer = exported
    dataset = datasets.load_from_disk(str(folders[fmt]))
    model = tiny_model(tokenizer)
    trainer = trl.DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),  # a model instance has no hub id to rebuild it from
        args=trl.DPOConfig(**common_args(tmp_path, fmt)),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert trained_one_step(trainer)


def test_kto_trainer_takes_a_step_on_an_export(exported, tmp_path):
    folders, tokenizer = exported
    dataset = datasets.load_from_disk(str(folders["trl-kto"]))
    assert sorted(set(dataset["label"])) == [False, True] and len(dataset) == 12
    model = tiny_model(tokenizer)
    trainer = trl.KTOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=trl.KTOConfig(**common_args(tmp_path, "kto")),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert trained_one_step(trainer)
