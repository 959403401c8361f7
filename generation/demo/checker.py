"""The demo's programmatic judge, and the answer styles the base model is pre-trained on."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Collection, Sequence

from generation.demo.facts import Fact, capitals

# Written in the normalised form `_words` produces: lower case, apostrophes dropped.
HEDGES: tuple[str, ...] = (
    "not sure", "unsure", "not certain", "uncertain", "maybe", "probably", "perhaps",
    "possibly", "i think", "i guess", "i believe", "i suppose", "might", "could be",
    "dont know", "do not know", "no idea", "not confident", "likely", "or so",
)

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> str:
    """Text as ' word word ... ', so phrases match whole words only."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"['\u2018\u2019\u02bc`]", "", text)
    return " " + " ".join(_WORD.findall(text)) + " "


def _mentions(words: str, phrase: str) -> bool:
    return f" {phrase} " in words


def is_hedged(text: str) -> bool:
    words = _words(text)
    return any(_mentions(words, hedge) for hedge in HEDGES)


def named_capitals(text: str, candidates: Collection[str]) -> set[str]:
    words = _words(text)
    return {name for name in candidates if _mentions(words, name.lower())}


def check_answer(fact: Fact, text: str, *, all_capitals: Collection[str] | None = None) -> bool:
    """Correct iff the text names the right capital, no other capital, and does not hedge.

    `all_capitals` defaults to the capitals of the fact's own demo set (its seed).
    """
    if all_capitals is None:
        all_capitals = capitals(fact.seed)
    named = named_capitals(text, set(all_capitals) | {fact.capital})
    return named == {fact.capital} and not is_hedged(text)


# Answer styles. Each takes the fact, other capitals to draw wrong answers from, and an rng.
AnswerStyle = Callable[[Fact, Sequence[str], random.Random], str]

_GUESS_WORDINGS = ("My guess is {w}.", "I would guess {w}.", "{w}, I guess.")


def answer_correct(fact: Fact, others: Sequence[str], rng: random.Random) -> str:
    return f"The capital of {fact.country} is {fact.capital}."


def answer_confidently_wrong(fact: Fact, others: Sequence[str], rng: random.Random) -> str:
    return f"The capital of {fact.country} is {_wrong(fact, others, rng)}."


def answer_wrong_guess(fact: Fact, others: Sequence[str], rng: random.Random) -> str:
    return rng.choice(_GUESS_WORDINGS).format(w=_wrong(fact, others, rng))


def answer_hedge(fact: Fact, others: Sequence[str], rng: random.Random) -> str:
    options = [fact.capital, _wrong(fact, others, rng)]
    rng.shuffle(options)
    return f"I'm not sure, maybe {options[0]} or {options[1]}."


def _wrong(fact: Fact, others: Sequence[str], rng: random.Random) -> str:
    while True:
        choice = rng.choice(others)
        if choice != fact.capital:
            return choice


ANSWER_STYLES: dict[str, AnswerStyle] = {
    "correct": answer_correct,
    "confidently_wrong": answer_confidently_wrong,
    "wrong_guess": answer_wrong_guess,
    "hedge": answer_hedge,
}


def answer_styles() -> dict[str, AnswerStyle]:
    """The four pre-training answer styles by name; only "correct" passes `check_answer`."""
    return dict(ANSWER_STYLES)
