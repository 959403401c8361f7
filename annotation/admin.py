"""Admin: read-mostly views for support; verdicts are changed through services, not here."""

from django.contrib import admin

from annotation import models


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "overlap", "max_overlap", "pairwise_enabled", "binary_enabled"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(models.AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "kind"]
    list_filter = ["kind"]
    search_fields = ["user__username"]


@admin.register(models.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "split", "created_at"]
    list_filter = ["project", "split"]
    readonly_fields = ["content_hash"]


@admin.register(models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "source", "model_version", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["prompt", "author", "revision_of"]
    readonly_fields = ["content_hash"]


@admin.register(models.Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "done_count", "overlap_wanted", "is_gold"]
    list_filter = ["project", "kind", "is_gold"]
    raw_id_fields = ["prompt", "response_a", "response_b"]
    readonly_fields = ["done_count", "pair_key"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "left_is_a", "expires_at"]
    list_filter = ["status"]
    raw_id_fields = ["task", "annotator"]
    readonly_fields = ["left_is_a", "leased_at"]


class VerdictAdmin(admin.ModelAdmin):
    """Verdicts are evidence: visible, not editable (a change would bypass done_count)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.Judgment)
class JudgmentAdmin(VerdictAdmin):
    list_display = ["id", "task", "annotator", "choice", "strength", "shown_left", "source"]
    list_filter = ["choice", "source"]
    raw_id_fields = ["task", "annotator"]


@admin.register(models.Feedback)
class FeedbackAdmin(VerdictAdmin):
    list_display = ["id", "response", "annotator", "thumbs_up", "source"]
    list_filter = ["thumbs_up", "source"]
    raw_id_fields = ["response", "task", "annotator"]


@admin.register(models.ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "format", "content_hash", "created_at"]
    list_filter = ["format"]
    readonly_fields = ["content_hash", "rules", "counts"]
