"""Issue 14, item 9 (accounts): API tokens end with a password change, people manage
their own token, and the password-reset pages are not routed without a mail backend."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

RESET_PAGES = ("/accounts/password_reset/", "/accounts/password_reset/done/",
               "/accounts/reset/MQ/set-password/", "/accounts/reset/done/")


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_password_change_ends_the_api_token(make_user):
    user = make_user("tk-alice", password="first-password-123")
    key = Token.objects.create(user=user).key
    api = Client()
    assert api.get("/api/projects", headers={"Authorization": f"Token {key}"}).status_code == 200
    user.set_password("second-password-456")
    user.save()
    assert not Token.objects.filter(user=user).exists()
    assert api.get("/api/projects", headers={"Authorization": f"Token {key}"}).status_code in (
        401, 403)


def test_the_password_change_page_ends_the_token(make_user):
    user = make_user("tk-bob", password="first-password-123")
    Token.objects.create(user=user)
    client = Client()
    assert client.login(username="tk-bob", password="first-password-123")
    changed = client.post("/accounts/password_change/", {
        "old_password": "first-password-123", "new_password1": "a-new-Passw0rd-xyz",
        "new_password2": "a-new-Passw0rd-xyz"})
    assert changed.status_code == 302
    assert not Token.objects.filter(user=user).exists()


def test_other_saves_keep_the_token(make_user):
    user = make_user("tk-carol")
    user.last_login = None
    user.save(update_fields=["last_login"])
    Token.objects.create(user=user)
    user.first_name = "Carol"
    user.save()
    assert Token.objects.filter(user=user).exists()


def test_people_see_rotate_and_revoke_their_own_token(make_user):
    user = make_user("tk-dave")
    client = _signed_in(user)
    assert client.get("/api/me/token").json() == {"key": None, "created": None}
    first = client.post("/api/me/token/rotate").json()["key"]
    assert client.get("/api/me/token").json()["key"] == first
    second = client.post("/api/me/token/rotate").json()["key"]
    assert second != first and Token.objects.get(user=user).key == second
    token_caller = Client()
    assert token_caller.get("/api/me/token",
                            headers={"Authorization": f"Token {second}"}).json()["key"] == second
    assert client.post("/api/me/token/revoke").json() == {"key": None, "created": None}
    assert not Token.objects.filter(user=user).exists()
    assert Client().get("/api/me/token").status_code == 403


def test_one_user_cannot_touch_anothers_token(make_user):
    owner, other = make_user("tk-erin"), make_user("tk-frank")
    key = Token.objects.create(user=owner).key
    _signed_in(other).post("/api/me/token/revoke")
    assert Token.objects.get(user=owner).key == key


@pytest.mark.parametrize("url", RESET_PAGES)
def test_password_reset_is_not_routed_without_mail(url):
    assert Client().get(url).status_code == 404


def test_password_reset_posts_are_refused_without_mail():
    assert Client().post(RESET_PAGES[0], {"email": "x@example.invalid"}).status_code == 404


def test_password_reset_is_routed_with_mail(settings):
    settings.PREFLOOP_PASSWORD_RESET = True
    assert Client().get(RESET_PAGES[0]).status_code == 200
