"""Authentication with rate limits (``prefloop.ratelimit``): the log-in page, the
backend every password check goes through, and the API's token authentication and
anonymous throttle.

- ``RateLimitedModelBackend`` refuses any password check (the site's log-in page, the
  admin's, anything calling ``authenticate``) while the username or the address is
  locked out, and counts each failure.
- ``LoginView`` answers 429 with a clear message while locked out, without checking
  the password at all.
- ``RateLimitedTokenAuthentication``: after too many unknown tokens from one address,
  429 until the window ends. ``AnonymousThrottle``: anonymous API calls per address.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from prefloop import ratelimit, rawsql

LOCKED_OUT = "Too many failed log-in attempts. Try again in {minutes} minute{s}."
TOKENS_REFUSED = "Too many invalid tokens from this address; try again later."


def _locked_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return LOCKED_OUT.format(minutes=minutes, s="" if minutes == 1 else "s")


class RateLimitedModelBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None,
        password: str | None = None, **kwargs: Any,
    ) -> AbstractBaseUser | None:
        if request is None:  # not a web request (a command, a test's client.login)
            return super().authenticate(request, username, password, **kwargs)
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        who = {"username": username or "", "ip": ratelimit.client_ip(request)}
        if ratelimit.login_wait(**who):
            return None
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            ratelimit.login_failed(**who)
        else:
            ratelimit.login_succeeded(**who)
        return user

    def get_user(self, user_id: Any) -> AbstractBaseUser | None:
        """The session's user, read with one prepared statement (every request)."""
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        with rawsql.cursor() as cursor:
            cursor.execute(_USER_SQL, [pk])
            row = cursor.fetchone()
        user = _USER_READER.read(row)[0] if row else None
        return user if user is not None and self.user_can_authenticate(user) else None


_USER_READER = rawsql.RowReader(get_user_model())
_USER_SQL = (
    f"SELECT {rawsql.columns(get_user_model(), 'u')} "
    f"FROM {get_user_model()._meta.db_table} u WHERE u.{get_user_model()._meta.pk.column} = %s"
)


class LoginView(auth_views.LoginView):
    """Django's log-in page; 429 (with ``Retry-After``) while locked out."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = ratelimit.login_wait(username=username, ip=ratelimit.client_ip(request))
        if not wait:
            return super().post(request, *args, **kwargs)
        context = self.get_context_data(form=self.get_form_class()(request),
                                        locked_out=_locked_message(wait))
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response


class RateLimitedTokenAuthentication(TokenAuthentication):
    def authenticate(self, request: Request) -> tuple | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        ip = ratelimit.client_ip(request)
        wait = ratelimit.token_wait(ip=ip)
        if wait:
            raise Throttled(wait=wait, detail=TOKENS_REFUSED)
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            ratelimit.token_failed(ip=ip)
            raise


class AnonymousThrottle(SimpleRateThrottle):
    """``PREFLOOP_API_ANON_RATE`` (e.g. ``60/minute``) per address for anonymous calls."""

    scope = "anonymous"

    def get_rate(self) -> str | None:
        return settings.PREFLOOP_API_ANON_RATE or None

    def allow_request(self, request: Request, view: Any) -> bool:
        return not ratelimit.enabled() or super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ratelimit.client_ip(request)}


def password_reset_routed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's password-reset pages answer 404 unless ``PREFLOOP_PASSWORD_RESET`` (on by
    default only when a real mail backend is configured): without mail they could only
    fail, after telling the visitor an email was sent."""

    @wraps(view)
    def routed(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PREFLOOP_PASSWORD_RESET:
            raise Http404("Password reset is not available on this site.")
        return view(request, *args, **kwargs)

    return routed

