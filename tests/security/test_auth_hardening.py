"""Log-in rate limits, API token and anonymous throttles, production cookies and HTTPS
settings, and secrets kept out of logs, error pages and settings dumps."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token

from prefloop import ratelimit
from prefloop.logging import REDACTED, redact
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("PREFLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct-horse-battery-7"
WINDOW = 60
START = 1_000_020.0  # a window boundary (16 667 x 60 s)
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "prod-secret-" + "k" * 40,
    "DJANGO_ALLOWED_HOSTS": "prefloop.example.org,testserver",
    "DATABASE_URL": "sqlite:////tmp/prefloop-hardening-unused.sqlite3",
}


class Clock:
    def __init__(self) -> None:
        self.now = START + 5

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limits(settings, monkeypatch) -> Clock:
    """Limits on, small, in a fresh in-memory cache, with a clock the test moves."""
    settings.PREFLOOP_RATELIMIT_ENABLED = True
    settings.PREFLOOP_LOGIN_MAX_PER_USER = 3
    settings.PREFLOOP_LOGIN_MAX_PER_IP = 5
    settings.PREFLOOP_TOKEN_MAX_FAILURES_PER_IP = 3
    settings.PREFLOOP_LOGIN_WINDOW_SECONDS = WINDOW
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"ratelimit-{uuid.uuid4().hex}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clock = Clock()
    monkeypatch.setattr(ratelimit, "_now", clock)
    return clock


def _login(username: str, password: str, ip: str = "10.0.0.1", path: str = "/accounts/login/"):
    client = Client(REMOTE_ADDR=ip)
    return client, client.post(path, {"username": username, "password": password})


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- Log-in rate limits ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_username_is_locked_after_n_failures_until_the_window_passes(limits, make_user):
    make_user("alice", PASSWORD)
    for _ in range(3):
        assert _login("alice", "wrong")[1].status_code == 200
    client, locked = _login("alice", PASSWORD, ip="10.0.0.2")  # right password, other address
    assert locked.status_code == 429 and not _logged_in(client)
    assert "Too many failed log-in attempts. Try again in 1 minute." in locked.content.decode()
    assert 0 < int(locked["Retry-After"]) <= WINDOW
    limits.now += WINDOW
    client, response = _login("alice", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


@pytest.mark.django_db
def test_an_address_is_locked_after_n_failures_across_usernames(limits, make_user):
    make_user("bob", PASSWORD)
    for i in range(5):
        assert _login(f"guess{i}", "wrong", ip="10.0.0.66")[1].status_code == 200
    assert _login("bob", PASSWORD, ip="10.0.0.66")[1].status_code == 429
    client, response = _login("bob", PASSWORD, ip="10.0.0.7")
    assert response.status_code == 302 and _logged_in(client)


@pytest.mark.django_db
def test_a_successful_log_in_resets_the_count(limits, make_user):
    make_user("carol", PASSWORD)
    for _ in range(2):
        _login("carol", "wrong")
    assert _login("carol", PASSWORD)[1].status_code == 302
    for _ in range(2):
        assert _login("carol", "wrong")[1].status_code == 200
    assert _login("carol", PASSWORD)[1].status_code == 302  # 4 failures, but not in a row


@pytest.mark.django_db
def test_the_admin_log_in_is_refused_while_locked_out(limits, make_user):
    make_user("root", PASSWORD, is_staff=True, is_superuser=True)
    for _ in range(3):
        _login("root", "wrong", path="/admin/login/")
    client, response = _login("root", PASSWORD, path="/admin/login/")
    assert response.status_code == 200 and not _logged_in(client)  # refused, form shown again
    limits.now += WINDOW
    client, response = _login("root", PASSWORD, path="/admin/login/")
    assert response.status_code == 302 and _logged_in(client)


@pytest.mark.django_db
def test_limits_are_off_when_disabled(settings, make_user):
    settings.PREFLOOP_RATELIMIT_ENABLED = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    make_user("dave", PASSWORD)
    for _ in range(settings.PREFLOOP_LOGIN_MAX_PER_USER + 2):
        assert _login("dave", "wrong")[1].status_code == 200
    assert _login("dave", PASSWORD)[1].status_code == 302


def test_the_client_address_behind_trusted_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1",
                                   HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    settings.PREFLOOP_TRUSTED_PROXIES = 0
    assert ratelimit.client_ip(request) == "127.0.0.1"
    settings.PREFLOOP_TRUSTED_PROXIES = 1  # the address our proxy saw; 6.6.6.6 is a claim
    assert ratelimit.client_ip(request) == "203.0.113.9"
    settings.PREFLOOP_TRUSTED_PROXIES = 2
    assert ratelimit.client_ip(request) == "6.6.6.6"
    settings.PREFLOOP_TRUSTED_PROXIES = 3  # fewer hops than proxies: nothing to trust
    assert ratelimit.client_ip(request) == "127.0.0.1"


# --- API: bad tokens and anonymous calls --------------------------------------------------


@pytest.mark.django_db
def test_bad_tokens_from_one_address_get_429(limits, make_user):
    token = Token.objects.create(user=make_user("erin")).key
    attacker = Client(REMOTE_ADDR="10.0.0.66")
    for i in range(3):
        bad = attacker.get("/api/projects", headers={"Authorization": f"Token {i:040d}"})
        assert bad.status_code in (401, 403)
    refused = attacker.get("/api/projects", headers={"Authorization": f"Token {token}"})
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= WINDOW
    valid = {"Authorization": f"Token {token}"}
    assert Client(REMOTE_ADDR="10.0.0.8").get("/api/projects", headers=valid).status_code == 200
    limits.now += WINDOW
    assert attacker.get("/api/projects", headers=valid).status_code == 200


@pytest.mark.django_db
def test_anonymous_api_calls_are_throttled(limits, settings, make_user):
    settings.PREFLOOP_API_ANON_RATE = "3/minute"
    anonymous = Client(REMOTE_ADDR="10.0.0.9")
    assert [anonymous.get("/api/docs/").status_code for _ in range(4)] == [200, 200, 200, 429]
    member = Client(REMOTE_ADDR="10.0.0.9")
    member.force_login(make_user("frank"))
    assert [member.get("/api/docs/").status_code for _ in range(4)] == [200] * 4


# --- The cache is shared between processes ------------------------------------------------


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """``args`` in a fresh interpreter whose settings come only from ``env``."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "DATABASE_", "PREFLOOP_", "CELERY_"))}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _wait_elsewhere(var_dir: Path, username: str, cache_url: str = "") -> int:
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'prefloop.settings'; "
            "django.setup(); from prefloop import ratelimit; "
            f"print(ratelimit.login_wait(username={username!r}, ip='10.1.1.1'))")
    env = {"PREFLOOP_VAR_DIR": str(var_dir), "PREFLOOP_RATELIMIT_ENABLED": "true",
           "PREFLOOP_LOGIN_WINDOW_SECONDS": "1000000000", "PREFLOOP_LOGIN_MAX_PER_USER": "2"}
    if cache_url:
        env["PREFLOOP_CACHE_URL"] = cache_url
    return int(_run(["-c", code], env).stdout.split()[-1])


def _failures_here(settings, cache: dict, username: str) -> None:
    settings.CACHES = {"default": cache}
    settings.PREFLOOP_RATELIMIT_ENABLED = True
    settings.PREFLOOP_LOGIN_WINDOW_SECONDS = 1_000_000_000  # one window for decades
    settings.PREFLOOP_LOGIN_MAX_PER_USER = 2
    for _ in range(2):
        ratelimit.login_failed(username=username, ip="10.9.9.9")


def test_another_process_sees_the_failures_through_the_default_file_cache(settings, tmp_path):
    username = f"user-{uuid.uuid4().hex[:8]}"
    assert _wait_elsewhere(tmp_path, username) == 0
    _failures_here(settings, {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                              "LOCATION": str(tmp_path / "cache")}, username)
    assert _wait_elsewhere(tmp_path, username) > 0  # var/cache: the default, no URL given
    assert _wait_elsewhere(tmp_path / "elsewhere", username) == 0


def test_another_process_sees_the_failures_through_redis(settings, tmp_path):
    try:
        up = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        up = False
    require(up, f"needs Redis at {REDIS_URL}")
    username = f"user-{uuid.uuid4().hex[:8]}"
    _failures_here(settings, {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                              "LOCATION": REDIS_URL}, username)
    try:
        assert _wait_elsewhere(tmp_path, username, cache_url=REDIS_URL) > 0
    finally:
        ratelimit.login_succeeded(username=username, ip="10.9.9.9")  # clears the keys


# --- Production settings ------------------------------------------------------------------------

PRODUCTION_PROBE = """
import json, os, django
os.environ['DJANGO_SETTINGS_MODULE'] = 'prefloop.settings'
django.setup()
from django.conf import settings as s
from django.test import Client
from django.test.utils import override_settings
names = ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY',
         'SESSION_COOKIE_SAMESITE', 'CSRF_COOKIE_SAMESITE', 'SECURE_SSL_REDIRECT',
         'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER',
         'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', 'PREFLOOP_TRUSTED_PROXIES',
         'PREFLOOP_RATELIMIT_ENABLED']
out = {n: getattr(s, n, None) for n in names}
# The page's static files need collectstatic's manifest; cookies and redirects do not.
plain_files = {**s.STORAGES, 'staticfiles': {
    'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'}}
with override_settings(STORAGES=plain_files):
    plain = Client().get('/accounts/login/')
    proxied = Client().get('/accounts/login/', headers={'X-Forwarded-Proto': 'https'})
out['http'] = [plain.status_code, plain.get('Location', '')]
out['https'] = [proxied.status_code, proxied.get('Strict-Transport-Security', ''),
                proxied.cookies['csrftoken'].output()]
print(json.dumps(out))
"""


def test_production_cookies_are_secure_and_http_goes_to_https(tmp_path):
    env = {**PRODUCTION, "DJANGO_BEHIND_PROXY": "true", "PREFLOOP_VAR_DIR": str(tmp_path)}
    out = json.loads(_run(["-c", PRODUCTION_PROBE], env).stdout.splitlines()[-1])
    assert out["SESSION_COOKIE_SECURE"] and out["CSRF_COOKIE_SECURE"]
    assert out["SESSION_COOKIE_HTTPONLY"] and out["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert out["SESSION_COOKIE_SAMESITE"] == out["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert out["SECURE_SSL_REDIRECT"] and out["SECURE_HSTS_SECONDS"] >= 31536000
    assert out["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and out["X_FRAME_OPTIONS"] == "DENY"
    assert out["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert out["PREFLOOP_TRUSTED_PROXIES"] == 1 and out["PREFLOOP_RATELIMIT_ENABLED"] is True
    assert out["http"] == [301, "https://testserver/accounts/login/"]
    status, hsts, cookie = out["https"]
    assert status == 200 and "max-age=31536000" in hsts and "includeSubDomains" in hsts
    assert "Secure" in cookie and "SameSite=Lax" in cookie


def test_check_deploy_is_clean_behind_a_proxy_with_a_redis_cache(tmp_path):
    env = {**PRODUCTION, "DJANGO_BEHIND_PROXY": "true", "PREFLOOP_VAR_DIR": str(tmp_path),
           "PREFLOOP_CACHE_URL": "redis://127.0.0.1:6379/3"}
    proc = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert "no issues" in proc.stdout


# --- Secrets stay out of logs and error pages ------------------------------------------------

LEAKY = {"password": "Hunter2-login-pw-731", "token": "feedface" * 5,
         "dsn_password": "Dsn-Pw-4242", "broker_password": "Broker-Pw-7777"}


@pytest.mark.parametrize("line, secret", [
    ("GET /api/projects Authorization: Token 0123abcd0123abcd", "0123abcd0123abcd"),
    ("{'HTTP_AUTHORIZATION': 'Bearer eyJhbGciOi.x.y'}", "eyJhbGciOi.x.y"),
    ("connecting to postgres://prefloop:S3cr3t-pw@db:5432/prefloop", "S3cr3t-pw"),
    ("broker redis://:r3dis-pw@cache:6379/0 is down", "r3dis-pw"),
    ("login failed: password=hunter2hunter2 user=x", "hunter2hunter2"),
    ('{"username": "x", "password": "hunter2hunter2"}', "hunter2hunter2"),
    ("csrfmiddlewaretoken=abcdef123456&username=x", "abcdef123456"),
])
def test_redact_hides_secrets(line, secret):
    out = redact(line)
    assert secret not in out and REDACTED in out


def test_redact_keeps_ordinary_text_and_hides_the_secret_key(settings):
    line = "tokens_per_second=12.5 max_tokens=64 output_tokens: 10 /accounts/password_change/"
    assert redact(line) == line
    assert settings.SECRET_KEY not in redact(f"signing with {settings.SECRET_KEY}")


@pytest.mark.django_db
def test_failed_log_ins_and_bad_tokens_log_no_secret(limits, make_user, caplog):
    caplog.set_level(logging.DEBUG)
    make_user("gina", PASSWORD)
    for _ in range(4):  # the fourth is refused (429)
        _login("gina", LEAKY["password"])
    bad = {"Authorization": f"Token {LEAKY['token']}"}
    Client().get("/api/projects", headers=bad)
    Client().post("/api/projects/create", {"slug": "x"}, headers=bad)
    assert "Too Many Requests: /accounts/login/" in caplog.text  # the logs were captured
    logged = caplog.text + repr([(r.msg, r.args) for r in caplog.records])
    assert LEAKY["password"] not in logged and LEAKY["token"] not in logged


LEAK_PROBE = """
import logging, os, django
os.environ['DJANGO_SETTINGS_MODULE'] = 'prefloop.settings'
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies['sessionid'] = 'a-session-the-database-must-look-up'
token = {'Authorization': 'Token ' + os.environ['LEAK_TOKEN']}
answers = [
    client.post('/accounts/login/', {'username': 'gina', 'password': os.environ['LEAK_PW']},
                secure=True),
    client.get('/api/projects', headers=token, secure=True),
    client.get('/', secure=True),
]
for answer in answers:
    print(answer.status_code, answer.content[:5000])
broker = os.environ['PROBE_BROKER']
logging.getLogger('prefloop.probe').error('cannot publish to %s (Authorization: Token %s)',
                                          broker, os.environ['LEAK_TOKEN'])
try:
    raise ConnectionError('cannot reach ' + broker)
except ConnectionError:
    logging.getLogger('django.request').exception('Internal Server Error: /probe')
"""


def test_errors_with_debug_off_show_and_log_no_secret(tmp_path):
    """The database is down (a dead port): log-in, token and page requests fail, and
    code logs a broker URL, a token and a traceback. Nothing secret comes out."""
    env = {**PRODUCTION, "PREFLOOP_VAR_DIR": str(tmp_path), "LEAK_PW": LEAKY["password"],
           "DATABASE_URL": f"postgres://prefloop:{LEAKY['dsn_password']}@127.0.0.1:1/prefloop",
           "LEAK_TOKEN": LEAKY["token"],
           "PROBE_BROKER": f"redis://:{LEAKY['broker_password']}@127.0.0.1:1/0"}
    proc = _run(["-c", LEAK_PROBE], env)
    statuses = [int(line.split()[0]) for line in proc.stdout.splitlines()[-3:]]
    assert all(status >= 400 for status in statuses), proc.stdout[-2000:]
    output = proc.stdout + proc.stderr
    assert "Internal Server Error: /probe" in proc.stderr and REDACTED in proc.stderr
    for secret in (*LEAKY.values(), PRODUCTION["DJANGO_SECRET_KEY"]):
        assert secret not in output, secret


@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_no_secret(tmp_path):
    from django.db import connection

    from prefloop.tasks import worker_ping
    from tests.support.worker import celery_worker, test_database_url

    secret_key = f"worker-secret-{uuid.uuid4().hex}"
    url = test_database_url()
    if connection.vendor == "postgresql":  # trust auth: the password is sent, never checked
        url = url.replace("://postgres@", f"://postgres:{LEAKY['dsn_password']}@", 1)
    log = tmp_path / "worker.log"
    with celery_worker(env={"DJANGO_SECRET_KEY": secret_key, "DATABASE_URL": url},
                       log_path=log):
        assert worker_ping.apply_async(kwargs={"token": "ping"}).get(timeout=90)["db_ok"]
    text = log.read_text()
    assert "succeeded" in text
    assert secret_key not in text and LEAKY["dsn_password"] not in text
