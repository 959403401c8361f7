"""Test content for the pages: multi-turn prompts, markdown with code and TeX, and
hostile responses. Built through the annotation services, like real imports."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation.models import Membership, Project, Response, Task
from annotation.services import content, projects

PASSWORD = "pw-for-browser-tests"
GUIDELINES = """\
# How to judge

Prefer the response that is **correct**, then **clear**, then **short**.

- A confident wrong answer is worse than an honest "I am not sure".
- Code must run; check edge cases.
- Maths may be written in TeX, e.g. $a^2 + b^2 = c^2$.
"""

FIB_FAST = """Use iteration, which is $O(n)$ in time and $O(1)$ in memory:

```python
def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
```

For very large $n$, the matrix form
$\\begin{pmatrix}1&1\\\\1&0\\end{pmatrix}^n$ gives $O(\\log n)$."""
FIB_SLOW = """Here is the classic version:

```python
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
```

It is simple but takes exponential time, about $\\varphi^n$ calls."""


def pair_texts(i: int) -> tuple[list[dict], str, str]:
    """A multi-turn conversation and two candidate answers (distinct per ``i``)."""
    messages = [
        {"role": "system", "content": "You are a concise programming tutor."},
        {"role": "user", "content": f"Question {i}: how do I compute Fibonacci numbers?"},
        {"role": "assistant", "content": "In which language, and how large is *n*?"},
        {"role": "user", "content": f"Python, and n up to {10 * (i + 1)}."},
    ]
    return messages, f"{FIB_FAST}\n\n(variant {i})", f"{FIB_SLOW}\n\n(variant {i})"


def thumbs_texts(i: int) -> tuple[list[dict], str]:
    messages = [{"role": "user", "content": f"What is the capital of Freedonia-{i}?"}]
    answer = (f"The capital of Freedonia-{i} is **Port {i}**.\n\n"
              f"| Fact | Value |\n|---|---|\n| founded | {1800 + i} |\n| population | {i * 1000} |")
    return messages, answer


def user_make(username: str, *, password: str = PASSWORD):
    return get_user_model().objects.create_user(username=username, password=password)


def project_make(
    *, slug: str, owner, annotators=(), reviewers=(), pairs: int = 0, thumbs: int = 0, **options
) -> Project:
    options = {"overlap": 2, "binary_enabled": thumbs > 0, "guidelines": GUIDELINES} | options
    project = projects.project_create(slug=slug, name=slug.replace("-", " ").title(),
                                      owner=owner, **options)
    for user in annotators:
        projects.member_set(project=project, user=user, role=Membership.Role.ANNOTATOR)
    for user in reviewers:
        projects.member_set(project=project, user=user, role=Membership.Role.REVIEWER)
    for i in range(pairs):
        messages, a, b = pair_texts(i)
        pair_task_make(project=project, messages=messages, a=a, b=b)
    for i in range(thumbs):
        messages, text = thumbs_texts(i)
        prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
        response, _ = content.response_get_or_create(
            prompt=prompt, text=text, source=Response.Source.IMPORTED
        )
        content.task_get_or_create(project=project, response_a=response)
    return project


def pair_task_make(*, project: Project, messages: list[dict], a: str, b: str, **task) -> Task:
    prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
    first, _ = content.response_get_or_create(
        prompt=prompt, text=a, source=Response.Source.IMPORTED
    )
    second, _ = content.response_get_or_create(
        prompt=prompt, text=b, source=Response.Source.IMPORTED
    )
    return content.task_get_or_create(project=project, response_a=first, response_b=second,
                                      **task)[0]


PAYLOADS = (
    "<script>window.__pwned = 'script'; console.log('PWNED script')</script>",
    '<img src="x" onerror="window.__pwned = \'onerror\'; console.log(\'PWNED img\')">',
    "[click me](javascript:window.__pwned='link';console.log('PWNED link'))",
    '<a href="javascript:window.__pwned=\'a\'">raw link</a>',
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "<iframe srcdoc=\"<script>parent.__pwned=1</script>\">",
    "![remote](https://example.invalid/tracker.png)",
    "[relative](/admin/)",
)


def hostile_project_make(*, owner, annotator) -> Project:
    """One pairwise and one thumbs task whose texts try every trick in ``PAYLOADS``."""
    project = project_make(slug="hostile", owner=owner, annotators=[annotator], overlap=1,
                           binary_enabled=True)
    evil = "\n\n".join(PAYLOADS)
    messages = [{"role": "user", "content": f"Say hello. {PAYLOADS[0]}"}]
    pair_task_make(project=project, messages=messages, a=f"Hello!\n\n{evil}", b=evil)
    prompt, _ = content.prompt_get_or_create(project=project, messages=messages)
    response, _ = content.response_get_or_create(
        prompt=prompt, text=f"Thumbs {evil}", source=Response.Source.IMPORTED
    )
    content.task_get_or_create(project=project, response_a=response)
    return project
