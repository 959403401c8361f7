"""A verifiable instruction-following task for real instruct models (IFEval style).

Each prompt asks for a short piece of writing under one to three format constraints
that a program can check: all lowercase, at most N words, exactly K bullet points,
include a keyword, no commas, valid JSON with given keys, and so on. The checker is
pure Python (no Django), usable as a programmatic judge
(:func:`generation.instruct.checker.instruct_score`) and as a round's evaluation
(:func:`generation.instruct.checker.prompt_passes`).

- :mod:`constraints`: the constraint kinds, their instruction text and their checks;
- :mod:`tasks`: the seeded generator of prompts with train and held-out splits;
- :mod:`checker`: scoring of a response against a prompt's constraints.
"""
