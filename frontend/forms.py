"""Input validation for the pages' POSTs (the templates render the controls by hand,
so every control can carry its keyboard shortcut in its label)."""

from __future__ import annotations

from django import forms

from annotation.io import readers, rules, writers
from annotation.io.rules import ExportRules
from annotation.services.judgments import KEY_MAX, RATIONALE_MAX

SIDES = (("left", "Left better"), ("right", "Right better"), ("tie", "Tie"),
         ("both_bad", "Both bad"))  # fmt: skip


class _Verdict(forms.Form):
    rationale = forms.CharField(required=False, max_length=RATIONALE_MAX, strip=True)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    idempotency_key = forms.CharField(required=False, max_length=KEY_MAX)


class JudgmentForm(_Verdict):
    """Choices as the annotator saw them; the service maps left/right to A/B."""

    choice = forms.ChoiceField(choices=SIDES)
    strength = forms.IntegerField(required=False, min_value=1)


class FeedbackForm(_Verdict):
    thumbs = forms.ChoiceField(choices=(("up", "Thumbs up"), ("down", "Thumbs down")))


class ImportForm(forms.Form):
    file = forms.FileField(label="File (JSONL, CSV, or a zipped save_to_disk folder)")
    format = forms.ChoiceField(choices=[(f, f) for f in readers.FORMATS], initial="auto")
    partial = forms.BooleanField(
        required=False, label="Import the good rows even if some rows are bad"
    )


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(f, f) for f in writers.FORMATS])
    split = forms.ChoiceField(choices=[(s, s) for s in rules.SPLITS], initial="train")
    vote = forms.ChoiceField(choices=[(v, v) for v in rules.VOTES], initial="majority")
    min_judgments = forms.IntegerField(min_value=1, initial=1)
    min_agreement = forms.FloatField(min_value=0, max_value=1, initial=0.0)
    ties = forms.ChoiceField(choices=[(t, t) for t in rules.TIES], initial="drop")
    both_bad = forms.ChoiceField(choices=[(b, b) for b in rules.BOTH_BAD], initial="drop")
    include_ai = forms.BooleanField(required=False, initial=True, label="Count AI-judge verdicts")
    include_imported = forms.BooleanField(
        required=False, initial=True, label="Count imported verdicts"
    )

    def export_rules(self) -> ExportRules:
        data = {k: v for k, v in self.cleaned_data.items() if k != "format"}
        return ExportRules.from_dict(data)
