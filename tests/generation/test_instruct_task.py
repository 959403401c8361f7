"""The instruction-following task: constraint checks on hand-written answers, the generator."""

from __future__ import annotations

import pytest

from generation.instruct.checker import instruct_score, prompt_passes
from generation.instruct.constraints import KINDS, check, compatible, instruction
from generation.instruct.tasks import generate, import_rows

CASES = [
    ({"kind": "lowercase"}, "all small here.", True),
    ({"kind": "lowercase"}, "Not all small.", False),
    ({"kind": "lowercase"}, "123 !", False),  # no letters: nothing was written in lowercase
    ({"kind": "uppercase"}, "LOUD AND CLEAR", True),
    ({"kind": "uppercase"}, "LOUD and CLEAR", False),
    ({"kind": "max_words", "n": 3}, "one two three", True),
    ({"kind": "max_words", "n": 3}, "one two three four", False),
    ({"kind": "max_words", "n": 3}, "   ", False),
    ({"kind": "min_words", "n": 2}, "one two", True),
    ({"kind": "min_words", "n": 2}, "one", False),
    ({"kind": "sentences_max", "n": 2}, "One. Two!", True),
    ({"kind": "sentences_max", "n": 2}, "One. Two. Three?", False),
    ({"kind": "bullets", "n": 2}, "* a\n* b", True),
    ({"kind": "bullets", "n": 2}, "Intro\n- a\n- b\nend", True),
    ({"kind": "bullets", "n": 2}, "* a\n* b\n* c", False),
    ({"kind": "bullets", "n": 2}, "*a\n*b", False),  # no space after the star: not a bullet
    ({"kind": "keyword", "word": "water"}, "Water is wet.", True),
    ({"kind": "keyword", "word": "water"}, "Waterfalls are tall.", False),
    ({"kind": "forbidden", "word": "quiet"}, "A loud day.", True),
    ({"kind": "forbidden", "word": "quiet"}, "A QUIET day.", False),
    ({"kind": "no_commas"}, "No commas here.", True),
    ({"kind": "no_commas"}, "Yes, one.", False),
    ({"kind": "json_keys", "keys": ["a", "b"]}, '{"b": 1, "a": 2}', True),
    ({"kind": "json_keys", "keys": ["a", "b"]}, '```json\n{"a": 1, "b": 2}\n```', True),
    ({"kind": "json_keys", "keys": ["a", "b"]}, '{"a": 1}', False),
    ({"kind": "json_keys", "keys": ["a", "b"]}, "[1, 2]", False),
    ({"kind": "json_keys", "keys": ["a", "b"]}, "not json", False),
    ({"kind": "ends_with", "phrase": "That is all."}, "Done. That is all.  ", True),
    ({"kind": "ends_with", "phrase": "That is all."}, "That is all. Done.", False),
    ({"kind": "starts_with", "word": "Today"}, "today we rest.", True),
    ({"kind": "starts_with", "word": "Today"}, "Yesterday.", False),
    ({"kind": "quoted"}, '"All of it."', True),
    ({"kind": "quoted"}, '"Half" of it.', False),
    ({"kind": "title"}, "<<On Owls>>\nThey hoot.", True),
    ({"kind": "title"}, "On Owls\nThey hoot.", False),
]


@pytest.mark.parametrize(("constraint", "text", "expected"), CASES)
def test_each_check_on_hand_written_answers(constraint, text, expected):
    assert check(constraint, text) is expected


def test_every_kind_has_a_case_both_ways():
    kinds = {(c["kind"], expected) for c, _text, expected in CASES}
    assert kinds == {(kind, ok) for kind in KINDS for ok in (True, False)}


def test_score_is_the_share_of_constraints_met_and_passes_needs_all():
    metadata = {"instruct": {"constraints": [{"kind": "no_commas"}, {"kind": "lowercase"}]}}
    assert instruct_score(messages=[], response="fine, thanks", metadata=metadata) == 0.5
    assert instruct_score(messages=[], response="fine thanks", metadata=metadata) == 1.0
    constraints = metadata["instruct"]["constraints"]
    assert prompt_passes(constraints, "fine thanks") and not prompt_passes(constraints, "Fine")
    assert instruct_score(messages=[], response="x", metadata={"demo_fact": {}}) is None


def test_generator_is_seeded_split_and_consistent():
    prompts = generate(300, seed=3)
    assert prompts == generate(300, seed=3)
    assert prompts != generate(300, seed=4)
    assert sum(p.split == "eval" for p in prompts) == 60
    for prompt in prompts:
        kinds = [c["kind"] for c in prompt.constraints]
        assert 1 <= len(kinds) <= 3 and compatible(kinds)
        for constraint in prompt.constraints:
            assert instruction(constraint) in prompt.text


def test_held_out_prompts_are_stable_when_more_are_generated():
    small = {p.index for p in generate(100, seed=0) if p.split == "eval"}
    assert small == {p.index for p in generate(100, seed=0) if p.split == "eval"}
    assert len(small) == 20


def test_import_rows_carry_split_tags_and_constraints():
    prompt = generate(5)[0]
    row = next(import_rows([prompt]))
    assert row["messages"][0] == {"role": "user", "content": prompt.text}
    assert row["split"] == prompt.split and row["tags"] == ["instruct"]
    assert row["metadata"]["instruct"]["constraints"] == prompt.constraints
