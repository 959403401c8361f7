"""Counting failures in fixed time windows, in Django's cache (shared by all web workers).

Log-ins: failures are counted per username and per client address. Once a username
has ``PREFLOOP_LOGIN_MAX_PER_USER`` failures in the current window of
``PREFLOOP_LOGIN_WINDOW_SECONDS``, or an address ``PREFLOOP_LOGIN_MAX_PER_IP``, every
further attempt is refused, even with the right password, until that window ends; a
successful log-in clears both counts. API tokens: an address that sent
``PREFLOOP_TOKEN_MAX_FAILURES_PER_IP`` unknown tokens in a window is refused likewise.

The cache is ``settings.CACHES["default"]``: Redis when ``PREFLOOP_CACHE_URL`` names one
(atomic counts, any number of machines), else files under ``var/cache`` (one machine).
Usernames and addresses are hashed into the keys. ``PREFLOOP_RATELIMIT_ENABLED`` turns
all of it off (it is off inside pytest, where every request comes from 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest

KEY_PREFIX = "prefloop-ratelimit"


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    window: int  # seconds

    def key(self, who: str, now: float) -> str:
        digest = hashlib.sha256(who.casefold().encode()).hexdigest()[:32]
        return f"{KEY_PREFIX}:{self.scope}:{digest}:{int(now // self.window)}"

    def seconds_left(self, now: float) -> int:
        """Until the current window ends (at least 1)."""
        return max(1, math.ceil((int(now // self.window) + 1) * self.window - now))


def _now() -> float:
    return time.time()


def enabled() -> bool:
    return bool(settings.PREFLOOP_RATELIMIT_ENABLED)


def login_limits() -> tuple[Limit, Limit]:
    window = settings.PREFLOOP_LOGIN_WINDOW_SECONDS
    return (
        Limit("login-user", settings.PREFLOOP_LOGIN_MAX_PER_USER, window),
        Limit("login-ip", settings.PREFLOOP_LOGIN_MAX_PER_IP, window),
    )


def token_limit() -> Limit:
    return Limit(
        "token-ip", settings.PREFLOOP_TOKEN_MAX_FAILURES_PER_IP,
        settings.PREFLOOP_LOGIN_WINDOW_SECONDS,
    )


def client_ip(request: HttpRequest) -> str:
    """``REMOTE_ADDR``; behind ``PREFLOOP_TRUSTED_PROXIES`` = n proxies, the address the
    outermost of them saw (the n-th entry of X-Forwarded-For from the right, since
    entries further left are whatever the client sent)."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.PREFLOOP_TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-proxies] if len(hops) >= proxies else remote


def wait_seconds(*checks: tuple[Limit, str]) -> int:
    """0 when every ``(limit, who)`` is under its limit, else the seconds to wait."""
    now = _now()
    cache = caches["default"]
    waits = [limit.seconds_left(now) for limit, who in checks
             if cache.get(limit.key(who, now), 0) >= limit.attempts]
    return max(waits, default=0)


def failures_add(*checks: tuple[Limit, str]) -> None:
    """One more failure for each ``(limit, who)`` in the current window."""
    now = _now()
    cache = caches["default"]
    for limit, who in checks:
        key, ttl = limit.key(who, now), limit.seconds_left(now) + 1
        cache.add(key, 0, timeout=ttl)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=ttl)
        cache.touch(key, timeout=ttl)  # some backends' incr resets the expiry


def failures_clear(*checks: tuple[Limit, str]) -> None:
    now = _now()
    caches["default"].delete_many([limit.key(who, now) for limit, who in checks])


def _login_checks(username: str, ip: str) -> tuple[tuple[Limit, str], ...]:
    by_user, by_ip = login_limits()
    return (by_user, username), (by_ip, ip)


def login_wait(*, username: str, ip: str) -> int:
    return wait_seconds(*_login_checks(username, ip)) if enabled() else 0


def login_failed(*, username: str, ip: str) -> None:
    if enabled():
        failures_add(*_login_checks(username, ip))


def login_succeeded(*, username: str, ip: str) -> None:
    if enabled():
        failures_clear(*_login_checks(username, ip))


def token_wait(*, ip: str) -> int:
    return wait_seconds((token_limit(), ip)) if enabled() else 0


def token_failed(*, ip: str) -> None:
    if enabled():
        failures_add((token_limit(), ip))
