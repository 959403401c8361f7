"""The words AI feedback sends to a model: comparison, reasoning, critique and revision.

The comparison prompt follows CAI's feedback format (Bai et al. 2022, §4.1):

    Consider the following conversation between a human and an assistant:
    [CONVERSATION]
    [PRINCIPLE FOR MULTIPLE CHOICE EVALUATION]
    Options:
    (A) [RESPONSE A]
    (B) [RESPONSE B]
    The answer is:

sent as one user turn, with the assistant's reply opened as ``"The answer is: ("`` so
that the next token is the option letter; the judge reads the log-probabilities of
``A`` and ``B`` there. Everything before ``(A)`` is the same for both orders and for
every principle that shares a conversation, so vLLM's prefix cache reuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

from generation.backends.base import Conversation, Message, OptionRequest
from generation.feedback.constitution import PrincipleSpec

OPTIONS = ("A", "B")
ANSWER_PREFIX = "The answer is: ("
REASON_INSTRUCTION = "Think step by step about which answer is better, then stop."
REASON_PREFIX = "Let's think step by step:"
CRITIQUE_PREFIX = "Critique request: "
REVISION_PREFIX = "Revision request: "
ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}


def conversation_text(messages: Conversation) -> str:
    """A transcript: ``Human: ...`` / ``Assistant: ...`` lines (as CAI's prompts are)."""
    return "\n".join(f"{ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in messages)


def comparison_text(
    messages: Conversation, principle: PrincipleSpec, first: str, second: str
) -> str:
    return (
        "Consider the following conversation between a human and an assistant:\n"
        f"{conversation_text(messages)}\n"
        f"{principle.comparison_question}\n"
        f"Options:\n(A) {first}\n(B) {second}"
    )


def comparison_request(
    messages: Conversation, principle: PrincipleSpec, first: str, second: str,
    reasoning: str | None = None,
) -> OptionRequest:
    """The option request for one order; ``reasoning`` (chain of thought) comes first."""
    text = comparison_text(messages, principle, first, second)
    if reasoning is None:
        return OptionRequest(messages=_user(text), options=OPTIONS, assistant_prefix=ANSWER_PREFIX)
    prefix = f"{REASON_PREFIX} {reasoning.strip()}\n{ANSWER_PREFIX}"
    return OptionRequest(
        messages=_user(f"{text}\n{REASON_INSTRUCTION}"), options=OPTIONS, assistant_prefix=prefix
    )


def reasoning_request(
    messages: Conversation, principle: PrincipleSpec, first: str, second: str
) -> list[Message]:
    """The conversation whose (greedy) reply is the judge's chain of thought."""
    return _user(f"{comparison_text(messages, principle, first, second)}\n{REASON_INSTRUCTION}")


def critique_messages(
    messages: Conversation, response: str, principle: PrincipleSpec
) -> list[Message]:
    """CAI's supervised phase, step 1: the answer so far, then the critique request."""
    return [
        *_copy(messages),
        {"role": "assistant", "content": response},
        {"role": "user", "content": CRITIQUE_PREFIX + principle.critique_request},
    ]


def revision_messages(
    messages: Conversation, response: str, principle: PrincipleSpec, critique: str
) -> list[Message]:
    """Step 2: the critique as the assistant's turn, then the revision request."""
    return [
        *critique_messages(messages, response, principle),
        {"role": "assistant", "content": critique.strip()},
        {"role": "user", "content": REVISION_PREFIX + principle.revision_request},
    ]


def _user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def _copy(messages: Sequence[Message]) -> list[Message]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]
