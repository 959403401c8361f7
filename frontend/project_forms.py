"""The owner console's project and people forms (validation only; the services write)."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from annotation.models import Membership, Project
from annotation.services.projects import PROJECT_SETTINGS

SETTING_LABELS = {
    "pairwise_enabled": "Pairwise comparisons (A / B)",
    "binary_enabled": "Thumbs up / down on one response",
    "overlap": "Verdicts wanted per task (overlap)",
    "max_overlap": "Most verdicts adaptive overlap may ask for",
    "strength_levels": "Strength levels (1 = no strength question)",
    "allow_tie": "Allow “tie”",
    "allow_both_bad": "Allow “both bad”",
    "lease_seconds": "Lease length (seconds an annotator holds a task)",
    "exclude_own_responses": "Never show annotators responses they wrote themselves",
    "allow_remote_images": "Show remote images in prompts and responses",
    "auto_round_threshold": "Start a round automatically after this many new verdicts",
}
LIMITS = {"overlap": (1, 50), "max_overlap": (1, 50), "strength_levels": (1, 7),
          "lease_seconds": (30, 86_400), "auto_round_threshold": (1, 10_000_000)}


class ProjectSettingsForm(forms.Form):
    """Every project setting the services accept (``PROJECT_SETTINGS``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, field in forms.fields_for_model(Project, fields=PROJECT_SETTINGS).items():
            field.label = SETTING_LABELS.get(name, field.label)
            if name in LIMITS:
                low, high = LIMITS[name]
                field.validators = [MinValueValidator(low), MaxValueValidator(high)]
                field.widget.attrs.update(min=low, max=high)
            if name == "guidelines":
                field.widget = forms.Textarea(attrs={"rows": 10, "data-preview-source": ""})
                field.help_text = "Markdown, shown beside every task."
            self.fields[name] = field

    @classmethod
    def for_project(cls, project: Project, data=None) -> ProjectSettingsForm:
        initial = {name: getattr(project, name) for name in PROJECT_SETTINGS}
        return cls(data, initial=initial)

    def changes(self, project: Project) -> dict:
        """Only the settings whose value differs from the project's."""
        return {k: v for k, v in self.cleaned_data.items() if getattr(project, k) != v}

    def checkbox_names(self) -> set[str]:
        return {n for n, f in self.fields.items() if isinstance(f, forms.BooleanField)}


class ProjectCreateForm(ProjectSettingsForm):
    slug = forms.SlugField(
        max_length=80, label="Short name (in addresses)",
        help_text="Lower-case letters, digits, '-' or '_'; it cannot be changed later.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order_fields(["slug", "name", "guidelines"])
        self.fields["name"].required = False
        self.fields["name"].help_text = "Empty: the short name."


ROLES = [(r.value, r.label) for r in Membership.Role]


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=ROLES, initial=Membership.Role.ANNOTATOR)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLES)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=ROLES, initial=Membership.Role.REVIEWER)
    email = forms.EmailField(required=False, label="Send the link to (email, optional)")
