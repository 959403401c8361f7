"""Sessions and the session's user are read with hand-written statements
(prefloop/sessions.py, prefloop/auth.py ``get_user``): same answers as Django's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _who(client) -> int:
    return client.get("/api/projects").status_code


def test_a_live_session_authenticates_and_an_expired_one_does_not(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    assert _who(client) == 200
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert _who(client) in (401, 403)


def test_an_unknown_or_malformed_session_key_is_anonymous(client, make_user):
    make_user("bob")
    for key in ("x" * 32, "short", "'; DROP TABLE django_session; --"):
        client.cookies["sessionid"] = key
        assert _who(client) in (401, 403), key
    assert Session.objects.model._meta.db_table  # the table is still there


def test_an_inactive_or_deleted_user_loses_the_session(client, make_user):
    user = make_user("carol")
    client.force_login(user)
    user.is_active = False
    user.save()
    assert _who(client) in (401, 403)
    user.is_active = True
    user.save()
    client.force_login(user)
    assert _who(client) == 200
    user.delete()
    assert _who(client) in (401, 403)


def test_a_password_change_ends_other_sessions(client, make_user):
    user = make_user("dave")
    client.force_login(user)
    assert _who(client) == 200
    user.set_password("a-new-password-for-tests")
    user.save()  # the session's auth hash no longer matches
    assert _who(client) in (401, 403)
