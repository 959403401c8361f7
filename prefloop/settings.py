"""Prefloop settings: everything comes from environment variables.

Every variable is documented in docs/configuration.md. Defaults are for a laptop
with nothing running (SQLite and a file-system broker under ``var/``); production
selects PostgreSQL, Redis/RabbitMQ and a real secret through the environment.
"""

import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))

# --- Folders -------------------------------------------------------------------
VAR_DIR = Path(env.str("PREFLOOP_VAR_DIR", default=str(BASE_DIR / "var")))
MODELS_DIR = Path(env.str("PREFLOOP_MODELS_DIR", default=str(VAR_DIR / "models")))
DATA_DIR = Path(env.str("PREFLOOP_DATA_DIR", default=str(VAR_DIR / "data")))
for _folder in (VAR_DIR, MODELS_DIR, DATA_DIR):
    _folder.mkdir(parents=True, exist_ok=True)
# Local model folders that owners may register through the API (hub ids are not paths).
PREFLOOP_MODEL_ROOTS = [
    Path(p) for p in env.list("PREFLOOP_MODEL_ROOTS", default=[str(MODELS_DIR), str(VAR_DIR)])
]

# --- Core Django -----------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=True)

_DEV_SECRET_KEY = "prefloop-development-only-secret-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))')."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG is false.")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here: /api/docs/ works offline
    "django_celery_results",
    "annotation",
    "generation",
    "training",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "prefloop.middleware.SecurityHeadersMiddleware",
    # 413 for oversized bodies before anything reads them (so before CsrfViewMiddleware).
    "prefloop.middleware.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "prefloop.exceptions.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "prefloop.urls"
WSGI_APPLICATION = "prefloop.wsgi.application"
ASGI_APPLICATION = "prefloop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two annotators can
    # never both read "one slot left" and both write (SQLite has no row locks).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env.int("PREFLOOP_SQLITE_TIMEOUT", default=30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that worker processes started by tests see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The annotator's hot statements are prepared on the server (prefloop/rawsql.py). Turn
# off behind a connection pooler in transaction mode that cannot keep them.
PREFLOOP_DB_PREPARE = env.bool("PREFLOOP_DB_PREPARE", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
# Django's ModelBackend plus log-in rate limits (prefloop.ratelimit, docs/security.md).
AUTHENTICATION_BACKENDS = ["prefloop.auth.RateLimitedModelBackend"]
# Django's database sessions, read with one prepared statement (prefloop/sessions.py).
SESSION_ENGINE = "prefloop.sessions"
LOGIN_REDIRECT_URL = "/"

# --- Tenancy and accounts (docs/security.md) ----------------------------------------
# Who may create projects: staff, holders of annotation.add_project (the "Project
# creators" group), or everyone signed in when this is on.
PREFLOOP_OPEN_PROJECT_CREATION = env.bool("PREFLOOP_OPEN_PROJECT_CREATION", default=False)
PREFLOOP_INVITATION_DAYS = env.int("PREFLOOP_INVITATION_DAYS", default=14)
# Outgoing mail: unset, Django's console backend (nothing leaves the machine).
_CONSOLE_MAIL = "django.core.mail.backends.console.EmailBackend"
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default=_CONSOLE_MAIL)
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="webmaster@localhost")
# The password-reset pages are routed only when mail can really be sent.
PREFLOOP_PASSWORD_RESET = env.bool(
    "PREFLOOP_PASSWORD_RESET",
    default=EMAIL_BACKEND not in (_CONSOLE_MAIL, "django.core.mail.backends.dummy.EmailBackend",
                                  "django.core.mail.backends.locmem.EmailBackend"),
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Uploads: imports are streamed to disk; the request body cap protects the web workers.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("PREFLOOP_MAX_REQUEST_BYTES", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
PREFLOOP_MAX_IMPORT_BYTES = env.int("PREFLOOP_MAX_IMPORT_BYTES", default=200 * 1024 * 1024)
PREFLOOP_MAX_IMPORT_FIELD_CHARS = env.int("PREFLOOP_MAX_IMPORT_FIELD_CHARS", default=100_000)
PREFLOOP_MAX_IMPORT_ROWS = env.int("PREFLOOP_MAX_IMPORT_ROWS", default=100_000)
# Bounded work (docs/security.md, "Caps and bounded work"). Every two responses of a
# prompt-responses row become a pairwise task, so tasks grow with the square of a row.
PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW = env.int(
    "PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW", default=32
)
PREFLOOP_IMPORT_MAX_TASKS = env.int("PREFLOOP_IMPORT_MAX_TASKS", default=100_000)
PREFLOOP_IMPORT_MAX_ZIP_ENTRIES = env.int("PREFLOOP_IMPORT_MAX_ZIP_ENTRIES", default=10_000)
# Imports that would write more rows + tasks than this run as a background job.
PREFLOOP_IMPORT_SYNC_MAX_WRITES = env.int("PREFLOOP_IMPORT_SYNC_MAX_WRITES", default=2_000)
PREFLOOP_IMPORT_BATCH_SECONDS = env.float("PREFLOOP_IMPORT_BATCH_SECONDS", default=0.25)
# On SQLite a batched import pauses this long after each commit, so writers waiting
# for the lock (they poll it every 100 ms) get their turn.
PREFLOOP_IMPORT_BATCH_PAUSE_SECONDS = env.float("PREFLOOP_IMPORT_BATCH_PAUSE_SECONDS", default=0.12)
PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP = env.int("PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP", default=500)
# Fewer games than this: the leaderboard page shows the model as provisional, unranked.
PREFLOOP_LEADERBOARD_MIN_GAMES = env.int("PREFLOOP_LEADERBOARD_MIN_GAMES", default=10)
PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS = env.int(
    "PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS", default=50
)

# --- Security (production values unless DEBUG) --------------------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Proxies in front that append to X-Forwarded-For: the rate limits count the address
# the outermost one saw (0: REMOTE_ADDR, for a server facing the clients directly).
PREFLOOP_TRUSTED_PROXIES = env.int(
    "PREFLOOP_TRUSTED_PROXIES", default=1 if env.bool("DJANGO_BEHIND_PROXY", default=False) else 0
)
# Error reports (debug page, mails to admins) also hide DSN passwords and tokens.
DEFAULT_EXCEPTION_REPORTER_FILTER = "prefloop.logging.SafeReporter"
X_FRAME_OPTIONS = "DENY"

# --- REST API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "prefloop.auth.RateLimitedTokenAuthentication",  # 429 after many bad tokens
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["prefloop.auth.AnonymousThrottle"],
    # DRF's parsers plus refusals of NUL characters and deeply nested JSON (400, not 500).
    "DEFAULT_PARSER_CLASSES": [
        "prefloop.parsers.JSONParser",
        "prefloop.parsers.FormParser",
        "prefloop.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "prefloop.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Prefloop API",
    "DESCRIPTION": "Collect preference data and turn it into better language models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "prefloop.openapi.error_responses_add",
    ],
    # Several models have a "status" or "split" field with different choices.
    "ENUM_NAME_OVERRIDES": {
        "PromptSplitEnum": "annotation.models.Prompt.Split",
        "AssignmentStatusEnum": "annotation.models.Assignment.Status",
        "JobStatusEnum": "prefloop.jobs.models.JobStatus",  # every job kind's status
    },
}

# --- Celery --------------------------------------------------------------------------
# The embedded broker (a folder) by default; "localhost" only because kombu warns
# ("No hostname was supplied") about a URL without a host, which this transport ignores.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
# Under pytest the embedded broker gets its own folder, so messages published by tests
# never reach the demo's workers.
TESTING = "pytest" in sys.modules
CELERY_BROKER_FOLDER = Path(
    env.str("PREFLOOP_BROKER_DIR", default=str(VAR_DIR / ("test-broker" if TESTING else "broker")))
)
# Hard limit of the longest task (training); the broker must not redeliver before it.
CELERY_TASK_TIME_LIMIT = env.int("PREFLOOP_TASK_TIME_LIMIT", default=6 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = int(0.9 * CELERY_TASK_TIME_LIMIT)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    "visibility_timeout": int(1.1 * CELERY_TASK_TIME_LIMIT)
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (CELERY_BROKER_FOLDER / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=str(CELERY_BROKER_FOLDER / "queue"),
        data_folder_out=str(CELERY_BROKER_FOLDER / "queue"),
        processed_folder=str(CELERY_BROKER_FOLDER / "processed"),
        control_folder=str(CELERY_BROKER_FOLDER / "control"),
        store_processed=False,
    )
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": int(1.1 * CELERY_TASK_TIME_LIMIT)}
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES_NAMES = ("default", "gpu", "train")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing from a web request gives up within a few seconds when the broker is down
# (the request answers 503 and the job is marked failed), instead of hanging.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                                    "interval_max": 1.0}
CELERY_TIMEZONE = TIME_ZONE
# Running jobs (generation, AI feedback, training) touch their heartbeat every
# PREFLOOP_JOB_HEARTBEAT_S; one silent for PREFLOOP_JOB_STALE_S (above the retry
# backoff cap of 300 s), or whose worker process on this host is gone, is requeued by the
# reaper (prefloop.jobs: at worker start and from beat), or failed with the reason once
# it has been started PREFLOOP_JOB_MAX_ATTEMPTS times.
PREFLOOP_JOB_HEARTBEAT_S = env.float("PREFLOOP_JOB_HEARTBEAT_S", default=15.0)
PREFLOOP_JOB_STALE_S = env.float("PREFLOOP_JOB_STALE_S", default=600.0)
PREFLOOP_JOB_MAX_ATTEMPTS = env.int("PREFLOOP_JOB_MAX_ATTEMPTS", default=8)
CELERY_BEAT_SCHEDULE = {
    "jobs-stale-check": {
        "task": "prefloop.tasks.jobs_stale_check",
        "schedule": env.float("PREFLOOP_JOB_REAP_EVERY_S", default=60.0),
        "options": {"queue": "default"},
    },
}

# --- Generation / training ----------------------------------------------------------
GENERATION_BACKEND = env.str("GENERATION_BACKEND", default="transformers")
DEMO_MODEL_DIR = MODELS_DIR / "demo-base"
# host:port where the nodes of a multi-node training run meet (torchrun c10d rendezvous);
# empty: runs with more than one node are refused (docs/training.md).
TRAINING_RDZV_ENDPOINT = env.str("PREFLOOP_TRAINING_RDZV_ENDPOINT", default="")
TRAINING_MAX_PROCESSES = env.int("PREFLOOP_TRAINING_MAX_PROCESSES", default=64)

# --- Cache and rate limits (docs/security.md) ---------------------------------------
# One cache for every web worker: Redis when PREFLOOP_CACHE_URL names it
# (redis://host:6379/2), else files under var/cache (fine on one machine).
CACHES = {"default": env.cache("PREFLOOP_CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
if CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
    CACHES["default"]["OPTIONS"] = {"MAX_ENTRIES": 10_000}
# Off inside pytest (every test request comes from 127.0.0.1, so one test's failed
# log-ins would lock out the next); the tests of the limits turn it on.
PREFLOOP_RATELIMIT_ENABLED = env.bool("PREFLOOP_RATELIMIT_ENABLED", default=not TESTING)
PREFLOOP_LOGIN_MAX_PER_USER = env.int("PREFLOOP_LOGIN_MAX_PER_USER", default=5)
PREFLOOP_LOGIN_MAX_PER_IP = env.int("PREFLOOP_LOGIN_MAX_PER_IP", default=20)
PREFLOOP_LOGIN_WINDOW_SECONDS = env.int("PREFLOOP_LOGIN_WINDOW_SECONDS", default=900)
PREFLOOP_TOKEN_MAX_FAILURES_PER_IP = env.int("PREFLOOP_TOKEN_MAX_FAILURES_PER_IP", default=20)
PREFLOOP_API_ANON_RATE = env.str("PREFLOOP_API_ANON_RATE", default="60/minute")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Passwords, tokens, Authorization headers and DSN passwords never reach the output.
    "filters": {"redact": {"()": "prefloop.logging.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env.str("PREFLOOP_LOG_LEVEL", default="INFO")},
    # Django's loggers log through the root's (redacting) handler only.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}
