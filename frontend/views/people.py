"""People: a project's members with their role and recent activity; owners add an
existing user, change a role, remove someone, and invite (owners and reviewers join
by accepting an invitation: ``annotation.services.invitations``). The profile page:
a person's own API token (see, rotate, revoke) and the invitations waiting for them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.mail import send_mail
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotation import permissions
from annotation.models import Membership
from annotation.services import invitations as invitation_services
from annotation.services import projects as project_services
from frontend import people as people_data
from frontend.project_forms import InviteForm, MemberAddForm, MemberRoleForm
from prefloop.exceptions import ApplicationError

User = get_user_model()


def _owned(request: HttpRequest, slug: str):
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.CONFIGURERS
    )


@require_http_methods(["GET", "POST"])
@login_required
def people(request: HttpRequest, slug: str) -> HttpResponse:
    """Owners and reviewers read; owners POST the add or invite form."""
    project, membership = permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.QUALITY_READERS
    )
    is_owner = membership.role == Membership.Role.OWNER
    add, invite = MemberAddForm(prefix="add"), InviteForm(prefix="invite")
    if request.method == "POST":
        _owned(request, slug)
        if "invite-username" in request.POST:
            invite = InviteForm(request.POST, prefix="invite")
            if _invited(request, project=project, form=invite):
                return redirect("frontend:people", slug=slug)
        else:
            add = MemberAddForm(request.POST, prefix="add")
            if _added(request, project=project, form=add):
                return redirect("frontend:people", slug=slug)
    context = {
        "project": project, "membership": membership, "is_owner": is_owner,
        "rows": people_data.member_rows(project=project), "roles": Membership.Role.choices,
        "add": add, "invite": invite, "recent_days": people_data.RECENT_DAYS,
        "invitations": invitation_services.invitation_list_for_project(project=project)
        if is_owner else [],
        "mail": settings.PREFLOOP_PASSWORD_RESET,
    }
    status = 400 if add.errors or invite.errors else 200
    return render(request, "frontend/owner/people.html", context, status=status)


def _added(request: HttpRequest, *, project, form: MemberAddForm) -> bool:
    if not form.is_valid():
        return False
    try:
        project_services.member_role_set(project=project, by=request.user, **form.cleaned_data)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return False
    messages.success(request, f"{form.cleaned_data['username']} is now "
                              f"{form.cleaned_data['role']} of {project.name}.")
    return True


def _invited(request: HttpRequest, *, project, form: InviteForm) -> bool:
    if not form.is_valid():
        return False
    data = form.cleaned_data
    invitation = invitation_services.invitation_create(
        project=project, inviter=request.user, username=data["username"], role=data["role"]
    )
    link = request.build_absolute_uri(reverse("frontend:profile"))
    said = f"Invitation for {invitation.username} ({invitation.role}) made; they accept it " \
           f"on their profile page ({link})."
    if data["email"] and settings.PREFLOOP_PASSWORD_RESET:
        send_mail(
            subject=f"Invitation to {project.name} on Prefloop",
            message=f"{request.user.get_username()} invites you to {project.name} as "
                    f"{invitation.role}. Sign in as {invitation.username} and accept it "
                    f"here: {link}",
            from_email=None, recipient_list=[data["email"]],
        )
        said += f" A link was sent to {data['email']}."
    messages.success(request, said)
    return True


def _member_user(project, user_id: int):
    membership = Membership.objects.filter(project=project, user_id=user_id)
    found = membership.select_related("user").first()
    if found is None:
        raise Http404("No such member.")
    return found.user


@require_POST
@login_required
def member_role(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    project, _ = _owned(request, slug)
    user = _member_user(project, user_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("frontend:people", slug=slug)
    try:
        project_services.member_role_set(
            project=project, username=user.get_username(), role=form.cleaned_data["role"],
            by=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("frontend:people", slug=slug)


@require_POST
@login_required
def member_remove(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    project, _ = _owned(request, slug)
    user = _member_user(project, user_id)
    try:
        project_services.member_remove(project=project, user=user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.get_username()} removed; their verdicts stay.")
    return redirect("frontend:people", slug=slug)


@require_http_methods(["GET", "POST"])
@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in person's token (rotate / revoke) and pending invitations."""
    new_key = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "rotate":
            new_key = people_data.token_rotate(user=request.user).key
        elif action == "revoke":
            people_data.token_revoke(user=request.user)
            messages.success(request, "Your API token is revoked.")
            return redirect("frontend:profile")
        else:
            return HttpResponse("Unknown action.", status=400)
    context = {"token": people_data.token_get(user=request.user), "new_key": new_key,
               "invitations": invitation_services.invitation_list_for_user(user=request.user),
               "memberships": Membership.objects.filter(user=request.user)
               .select_related("project").order_by("project__name")}
    return render(request, "frontend/profile.html", context)


@require_POST
@login_required
def invitation_answer(request: HttpRequest, token: str, answer: str) -> HttpResponse:
    try:
        if answer == "accept":
            membership = invitation_services.invitation_accept(token=token, user=request.user)
            messages.success(request, f"You joined {membership.project.name} as "
                                      f"{membership.role}.")
        else:
            invitation_services.invitation_decline(token=token, user=request.user)
            messages.success(request, "Invitation declined.")
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    return redirect("frontend:profile")
