"""Template filters: sanitised markdown and number formats for the dashboards."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from frontend.markdown import render_markdown

register = template.Library()
MISSING = "—"


@register.filter
def markdown(text: str, allow_remote_images: bool = False) -> SafeString:
    """``{{ text|markdown:project.allow_remote_images }}``: untrusted text to safe HTML."""
    return render_markdown(text or "", allow_remote_images=bool(allow_remote_images))


@register.filter
def pct(value: float | None, digits: int = 0) -> str:
    return MISSING if value is None else f"{value * 100:.{int(digits)}f}%"


@register.filter
def num(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{int(digits)}f}"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@register.filter
def ratio(done: int, total: int) -> int:
    """Whole percent of ``done`` over ``total`` (0 when there is no total)."""
    return min(100, round(100 * done / total)) if total else 0
