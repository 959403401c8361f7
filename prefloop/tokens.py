"""API tokens a person manages themselves, and their end on a password change.

``GET /api/me/token`` shows the caller's token (or that they have none),
``POST /api/me/token/rotate`` replaces it with a new one (made if there was none) and
``POST /api/me/token/revoke`` deletes it. Changing a password by any route (the
password-change page, the admin, ``changepassword``, ``set_password`` + ``save``)
deletes the user's token: whoever had it must ask again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class TokenOutputSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="Send as 'Authorization: Token <key>'.")
    created = serializers.DateTimeField(allow_null=True)


def _out(token: Token | None) -> dict:
    data = {"key": token.key if token else None, "created": token.created if token else None}
    return TokenOutputSerializer(data).data


class MyTokenApi(APIView):
    @extend_schema(responses=TokenOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(_out(Token.objects.filter(user=request.user).first()))


class MyTokenRotateApi(APIView):
    @extend_schema(request=None, responses=TokenOutputSerializer)
    def post(self, request: Request) -> Response:
        with transaction.atomic():
            Token.objects.filter(user=request.user).delete()
            token = Token.objects.create(user=request.user)
        return Response(_out(token))


class MyTokenRevokeApi(APIView):
    @extend_schema(request=None, responses=TokenOutputSerializer)
    def post(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(_out(None))


def _password_watch(sender: Any, instance: Any, update_fields=None, **kwargs: Any) -> None:
    """pre_save: note whether this save changes the stored password hash."""
    instance._prefloop_password_changed = False
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._prefloop_password_changed = stored is not None and stored != instance.password


def _password_changed(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """post_save: a new password ends the user's API token."""
    if getattr(instance, "_prefloop_password_changed", False):
        Token.objects.filter(user=instance).delete()
        instance._prefloop_password_changed = False


def connect() -> None:
    """Called once from ``annotation.apps`` (prefloop itself is no Django app)."""
    user = get_user_model()
    pre_save.connect(_password_watch, sender=user, dispatch_uid="prefloop-password-watch")
    post_save.connect(_password_changed, sender=user, dispatch_uid="prefloop-password-changed")
