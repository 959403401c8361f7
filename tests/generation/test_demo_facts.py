import random
from collections import Counter

import pytest

from generation.demo.checker import (
    ANSWER_STYLES,
    answer_confidently_wrong,
    answer_correct,
    answer_hedge,
    answer_styles,
    check_answer,
)
from generation.demo.corpus import MIXTURE, demo_corpus, style_counts
from generation.demo.facts import (
    N_FACTS,
    N_TRAIN,
    PHRASINGS,
    Fact,
    capitals,
    demo_facts,
    demo_questions,
    fact_for_question,
    question_for,
)


@pytest.fixture(scope="module")
def facts() -> list[Fact]:
    return demo_facts(seed=0)


@pytest.fixture(scope="module")
def fact(facts) -> Fact:
    return facts[0]


@pytest.fixture(scope="module")
def other(facts) -> Fact:
    return facts[1]


def test_facts_are_deterministic_per_seed(facts):
    assert demo_facts(seed=0) == facts
    assert demo_facts(seed=1) != facts


def test_split_sizes(facts):
    splits = Counter(f.split for f in facts)
    assert len(facts) == N_FACTS == 300
    assert splits == {"train": N_TRAIN, "heldout": N_FACTS - N_TRAIN}
    assert len(demo_questions("train")) == 240
    assert len(demo_questions("heldout")) == 60
    assert len(demo_questions("heldout", all_phrasings=True)) == 60 * len(PHRASINGS)
    assert {f.split for f, _ in demo_questions("heldout")} == {"heldout"}


def test_unknown_split_is_refused():
    with pytest.raises(ValueError):
        demo_questions("test")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_names_are_unique_and_never_substrings_of_each_other(seed):
    names = [n.lower() for f in demo_facts(seed) for n in (f.country, f.capital)]
    assert len(set(names)) == len(names) == 2 * N_FACTS
    for name in names:
        assert name.isalpha() and name.isascii()
        assert not any(name in other for other in names if other != name)


def test_questions_name_the_country(fact):
    questions = {question_for(fact, p) for p in range(len(PHRASINGS))}
    assert len(questions) == len(PHRASINGS)
    assert all(fact.country in q for q in questions)
    assert question_for(fact, 0) == f"What is the capital of {fact.country}?"


def test_every_phrasing_is_used_for_the_heldout_questions():
    questions = [q for _, q in demo_questions("heldout")]
    used = Counter(q.split(" of ")[0] for q in questions)
    assert len(used) == len(PHRASINGS)


def test_fact_for_question_finds_the_fact(fact):
    question = question_for(fact, 2)
    assert fact_for_question(question) == fact
    assert fact_for_question("  " + question.upper() + " ") == fact
    assert fact_for_question("What is the capital of France?") is None


@pytest.mark.parametrize(
    "template",
    [
        "The capital of {country} is {capital}.",
        "the capital of {country} is {capital}",
        "THE CAPITAL OF {country_upper} IS {capital_upper}!",
        "{capital}.",
        "{capital}",
        "It's {capital}, of course.",
        '"{capital}"',
        "The capital is {capital}\n",
        "{country}'s capital: {capital}.",
    ],
)
def test_correct_answers_pass(fact, template):
    text = template.format(
        country=fact.country,
        capital=fact.capital,
        country_upper=fact.country.upper(),
        capital_upper=fact.capital.upper(),
    )
    assert check_answer(fact, text)


@pytest.mark.parametrize(
    "template",
    [
        "The capital of {country} is {wrong}.",
        "{wrong}.",
        "",
        "I don't know.",
        "The capital of {country} is {capital}{suffix}.",
        "The capital of {country} is {capital_prefix}.",
        "Either {capital} or {wrong}.",
        "{capital}, not {wrong}.",
    ],
)
def test_wrong_answers_fail(fact, other, template):
    text = template.format(
        country=fact.country,
        capital=fact.capital,
        wrong=other.capital,
        suffix="ia",
        capital_prefix=fact.capital[:-2],
    )
    assert not check_answer(fact, text)


@pytest.mark.parametrize(
    "template",
    [
        "I'm not sure, maybe {capital}.",
        "I’m not sure, but {capital}.",
        "Maybe {capital}.",
        "Probably {capital}.",
        "I think it is {capital}.",
        "i THINK {capital}",
        "It might be {capital}.",
        "Perhaps {capital}?",
        "{capital}, I guess.",
        "I don't know, {capital}?",
        "It could be {capital}.",
    ],
)
def test_hedged_answers_fail(fact, template):
    assert not check_answer(fact, template.format(capital=fact.capital))


def test_capitals_of_another_fact_set_need_their_own_seed(facts):
    stranger = Fact("Nowhereland", "Elsewhere", "train", seed=0)
    assert check_answer(stranger, "The capital of Nowhereland is Elsewhere.")
    assert not check_answer(stranger, f"Elsewhere or {facts[5].capital}.")
    assert check_answer(stranger, "Elsewhere", all_capitals=set())


def test_answer_styles(fact, facts):
    others = sorted(capitals(0))
    rng = random.Random(0)
    styles = answer_styles()
    assert set(styles) == {"correct", "confidently_wrong", "wrong_guess", "hedge"}
    assert answer_correct(fact, others, rng) == f"The capital of {fact.country} is {fact.capital}."
    for _ in range(50):
        assert check_answer(fact, styles["correct"](fact, others, rng))
        for name in ("confidently_wrong", "wrong_guess", "hedge"):
            assert not check_answer(fact, styles[name](fact, others, rng)), name
    wrong = answer_confidently_wrong(fact, others, rng)
    assert wrong.startswith(f"The capital of {fact.country} is ") and fact.capital not in wrong
    assert fact.capital in answer_hedge(fact, others, rng)


def test_style_counts_follow_the_mixture():
    assert style_counts(20) == {"correct": 9, "confidently_wrong": 2, "wrong_guess": 5, "hedge": 4}
    for n in (1, 3, 7, 13):
        assert sum(style_counts(n).values()) == n


@pytest.fixture(scope="module")
def corpus():
    return demo_corpus(seed=0)


def test_corpus_is_deterministic(corpus):
    again = demo_corpus(seed=0)
    assert [s.messages for s in again] == [s.messages for s in corpus]
    assert [s.messages for s in demo_corpus(seed=1)] != [s.messages for s in corpus]


def test_corpus_mixture_and_coverage(corpus, facts):
    styles = Counter(s.style for s in corpus)
    for style, share in MIXTURE.items():
        assert styles[style] / len(corpus) == pytest.approx(share, abs=0.02)
    assert set(styles) == set(ANSWER_STYLES)
    assert {s.fact for s in corpus} == set(facts)  # held-out facts are pre-trained on too
    phrasings = Counter(s.messages[0]["content"].split(" of ")[0] for s in corpus)
    assert len(phrasings) == len(PHRASINGS)
    assert max(phrasings.values()) - min(phrasings.values()) <= len(corpus) * 0.02


def test_corpus_labels_agree_with_the_checker(corpus):
    for sample in corpus[:2000]:
        user, assistant = sample.messages
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert sample.fact.country in user["content"]
        assert check_answer(sample.fact, assistant["content"]) == (sample.style == "correct")
