"""training.core.data: chat template, prompt masking, EOS exactly once, truncation, batch layout."""

from __future__ import annotations

import pytest

from training.core import data

from .conftest import build_tokenizer, kto_rows, preference_rows, write_jsonl


def decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False)


def test_conversational_rows_use_the_chat_template(tokenizer):
    snap = data.tokenize_rows(preference_rows(2, conversational=True), tokenizer, max_length=256)
    row = snap.rows[0]
    assert decode(tokenizer, row.chosen.prompt_ids) == (
        "<|im_start|>user\nWhat is alpha 0?<|im_end|>\n<|im_start|>assistant\n"
    )
    # completion = assistant text + end-of-turn; here end-of-turn is EOS, so it appears once
    assert decode(tokenizer, row.chosen.completion_ids) == "The answer is good.<|im_end|>"
    assert decode(tokenizer, row.rejected.completion_ids) == "Wrong bad answer.<|im_end|>"
    assert row.chosen.completion_ids.count(tokenizer.eos_token_id) == 1


def test_plain_strings_are_wrapped_as_a_user_message(tokenizer):
    plain = data.tokenize_rows(preference_rows(3), tokenizer, 256)
    chat = data.tokenize_rows(preference_rows(3, conversational=True), tokenizer, 256)
    assert plain.rows == chat.rows


def test_eos_is_appended_exactly_once_after_the_end_of_turn_token():
    tok = build_tokenizer(eos="<|endoftext|>")  # end-of-turn <|im_end|> differs from EOS
    snap = data.tokenize_rows(preference_rows(1, conversational=True), tok, 256)
    assert (
        decode(tok, snap.rows[0].chosen.completion_ids)
        == "The answer is good.<|im_end|><|endoftext|>"
    )


def test_without_a_chat_template_eos_is_added_once():
    tok = build_tokenizer(chat_template=None, eos="<|endoftext|>")
    rows = [{"prompt": "What is beta?", "chosen": "good", "rejected": "bad<|endoftext|>"}]
    row = data.tokenize_rows(rows, tok, 256).rows[0]
    assert decode(tok, row.chosen.prompt_ids) == "What is beta?"
    assert decode(tok, row.chosen.completion_ids) == "good<|endoftext|>"
    assert (
        decode(tok, row.rejected.completion_ids) == "bad<|endoftext|>"
    )  # already there: not doubled


def test_bad_conversational_completion_is_rejected(tokenizer):
    rows = [
        {
            "prompt": [{"role": "user", "content": "hi"}],
            "chosen": [{"role": "user", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        }
    ]
    with pytest.raises(ValueError, match="one assistant message"):
        data.tokenize_rows(rows, tokenizer, 256)


def test_prompt_is_masked_and_batches_put_chosen_first(tokenizer):
    snap = data.tokenize_rows(preference_rows(3), tokenizer, 256)
    batch = data.make_batch(snap, [2, 0], 256, tokenizer.pad_token_id)
    ids, attn, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    assert ids.shape[0] == 4 and batch["idx"].tolist() == [2, 0]
    expected = [
        snap.rows[2].chosen,
        snap.rows[0].chosen,
        snap.rows[2].rejected,
        snap.rows[0].rejected,
    ]
    for i, seq in enumerate(expected):
        n_prompt, n = len(seq.prompt_ids), len(seq.prompt_ids) + len(seq.completion_ids)
        assert ids[i, :n].tolist() == seq.prompt_ids + seq.completion_ids
        assert comp[i, :n_prompt].sum() == 0 and comp[i, n_prompt:n].all()
        assert attn[i, :n].all() and not attn[i, n:].any() and not comp[i, n:].any()
        assert (ids[i, n:] == tokenizer.pad_token_id).all()  # right padding


def test_truncation_keeps_the_start_and_is_counted(tokenizer, tmp_path):
    rows = preference_rows(4)
    rows[1]["chosen"] = "The answer is good. " * 20  # only this row gets cut
    rows[3]["prompt"] = "What is gamma? " * 40  # prompt alone fills max_length: dropped
    full = data.tokenize_rows(rows, tokenizer, 10_000)
    snap = data.load_snapshot(write_jsonl(tmp_path / "s.jsonl", rows), tokenizer, max_length=64)
    assert (snap.num_truncated, snap.num_dropped, len(snap.rows)) == (1, 1, 3)
    long = snap.rows[1].chosen
    ids, mask = data.join(long, 64)
    assert len(ids) == 64 and ids == (long.prompt_ids + long.completion_ids)[:64]
    assert sum(mask) == 64 - len(long.prompt_ids)
    assert snap.rows[1] == full.rows[1]  # truncation happens at batching time, keep-start
    assert len(snap.sha256) == 64


def test_kto_blocks_and_mismatched_kl_pairs(tokenizer):
    snap = data.tokenize_rows(kto_rows(9), tokenizer, 256)
    blocks = data.kto_blocks(9, 4, seed=0)
    assert sorted(sum(blocks, [])) == list(range(9)) and min(len(b) for b in blocks) > 1  # 4, 5
    kl = data.kl_sequences(snap.rows, blocks)
    for block in blocks:
        for j, i in enumerate(
            block
        ):  # prompt i with the completion of the previous row in the block
            assert kl[i].prompt_ids == snap.rows[i].seq.prompt_ids
            assert kl[i].completion_ids == snap.rows[block[j - 1]].seq.completion_ids
    batch = data.make_batch(snap, blocks[0], 256, tokenizer.pad_token_id, kl)
    assert batch["label"].tolist() == [snap.rows[i].label for i in blocks[0]]
    assert batch["kl_input_ids"].shape[0] == len(blocks[0])


def test_epoch_order_is_a_function_of_seed_and_epoch(tokenizer):
    snap = data.tokenize_rows(preference_rows(10), tokenizer, 256)
    e0 = data.epoch_batches(snap, 3, seed=1, epoch=0)
    assert e0 == data.epoch_batches(snap, 3, seed=1, epoch=0)
    assert e0 != data.epoch_batches(snap, 3, seed=1, epoch=1)
    assert sorted(sum(e0, [])) == list(range(10)) and [len(b) for b in e0] == [3, 3, 3, 1]
    blocks = data.kto_blocks(10, 3, seed=1)
    kto_order = data.epoch_batches(snap, 3, seed=1, epoch=2, blocks=blocks)
    assert sorted(kto_order) == sorted(blocks)


def test_split_and_unpair(tokenizer):
    snap = data.tokenize_rows(preference_rows(10), tokenizer, 256)
    train, held = data.split_eval(snap, 0.2, seed=0)
    assert len(train.rows) == 8 and len(held.rows) == 2
    assert not set(train.meta["rows"]) & set(held.meta["rows"])
    assert data.split_eval(snap, 0.0, seed=0) == (snap, None)
    unpaired = data.unpair(train)
    assert unpaired.kind == "unpaired" and len(unpaired.rows) == 16
    assert [r.label for r in unpaired.rows[:2]] == [True, False]
