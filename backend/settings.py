"""Settings, all from the environment; each default works for the demo.

PSYLENS_ENV chooses the profile: `development` (default: DEBUG on, embedded servers when
DATABASE_URL / REDIS_URL are unset), `test`, or `production` (refuses to start with the default
SECRET_KEY or with DEBUG on). The README lists every variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SECRET_KEY = "psylens-development-only-secret-key-change-me"


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def embedded_url(kind: str) -> str:
    """The URL of a running embedded server, for commands started outside `make demo`."""
    from backend.core.local_services import read_state

    url = getattr(read_state(), kind)
    if not url:
        variable = kind.upper()
        raise ImproperlyConfigured(
            f"{variable} is not set and no embedded server is running: set {variable}, or start "
            "the embedded servers with `.venv/bin/python -m backend.core.stack up`"
        )
    return str(url)


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


PSYLENS_ENV = env_str("PSYLENS_ENV", "development")
if PSYLENS_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"PSYLENS_ENV={PSYLENS_ENV!r}: use development, test or production")
PRODUCTION = PSYLENS_ENV == "production"

SECRET_KEY = env_str("SECRET_KEY", DEFAULT_SECRET_KEY)
DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Sites that may show the participant page in a frame (Content-Security-Policy
# frame-ancestors): MTurk's ExternalQuestion shows it in an iframe on its worker and sandbox
# sites. Every other page (the admin above all) refuses to be framed (X-Frame-Options: DENY).
PARTICIPANT_FRAME_ANCESTORS = env_list(
    "PARTICIPANT_FRAME_ANCESTORS", "https://www.mturk.com,https://workersandbox.mturk.com"
)
for _origin in PARTICIPANT_FRAME_ANCESTORS:
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?", _origin):
        raise ImproperlyConfigured(
            f"PARTICIPANT_FRAME_ANCESTORS: {_origin!r} is not an origin (https://host[:port])"
        )
PSYLENS_BASE_URL = env_str("PSYLENS_BASE_URL", "http://127.0.0.1:8000")

if PRODUCTION:
    if SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "Production refuses to start: set SECRET_KEY to a random string of at least 32 "
            "characters (for example: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    if DEBUG:
        raise ImproperlyConfigured("Production refuses to start with DEBUG on: set DEBUG=false")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("Production needs ALLOWED_HOSTS (comma-separated host names)")
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "backend.core.admin_site.PsyLensAdminConfig",  # django.contrib.admin, sections in path order
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "backend.core",
    "backend.stimuli",
    "backend.studies",
    "backend.participation",
    "backend.analysis",
    "backend.atlas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
WSGI_APPLICATION = "backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "backend" / "templates"],
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

DATABASE_URL = os.environ.get("DATABASE_URL") or embedded_url("database_url")
DATABASES: dict[str, Any] = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://…)")
# A health check costs a round trip on every request; without it, the first request on a
# connection broken by a database restart fails (participants' pages retry it).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", False)
# Several test runs may share one server (a developer's and a helper's): each can name its own.
DATABASES["default"]["TEST"] = {"NAME": env_str("PSYLENS_TEST_DB", "test_psylens")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or embedded_url("redis_url")
if PSYLENS_ENV == "test":
    # Tests use their own Redis database so a running demo's queues are never touched.
    REDIS_URL = redis_url_with_db(REDIS_URL, env_int("TEST_REDIS_DB", 15))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files: the built participant page (frontend/dist) is served under /static/ as built.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".local" / "static")))
FRONTEND_DIST = Path(env_str("FRONTEND_DIST", str(BASE_DIR / "frontend" / "dist")))
STATICFILES_DIRS = [FRONTEND_DIST] if FRONTEND_DIST.is_dir() else []
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing

# Media: stimuli under content-hash names. Local disk by default; S3-compatible storage when
# MEDIA_STORAGE=s3 (django-storages must then be installed; see README).
MEDIA_URL = env_str("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / ".local" / "media")))
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "local")
if MEDIA_STORAGE not in {"local", "s3"}:
    raise ImproperlyConfigured(f"MEDIA_STORAGE={MEDIA_STORAGE!r}: use local or s3")
# Where nginx does not serve media (demo, tests), Django does.
SERVE_MEDIA = env_bool("SERVE_MEDIA", not PRODUCTION)
STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET", "psylens-media"),
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "custom_domain": env_str("S3_CUSTOM_DOMAIN", "") or None,
            "file_overwrite": False,
        },
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Strict JSON only (backend/core/strictjson.py): what the schema documents, no form bodies
    # whose every value is a string.
    "DEFAULT_PARSER_CLASSES": ["backend.core.strictjson.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",  # DRF's test client sends JSON, as clients must
    "EXCEPTION_HANDLER": "backend.core.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"session_create": env_str("SESSION_CREATE_RATE", "30/minute")},
    # Proxies in front of gunicorn whose X-Forwarded-For entries are trusted for per-IP limits
    # (0: use the connecting address; 1 behind the compose file's nginx).
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PsyLens API",
    "DESCRIPTION": "Participant and researcher APIs of PsyLens.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "backend.core.schema.add_error_responses",
    ],
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "psylens"),
    }
}

# Celery: JSON only; tasks acknowledged after they finish (a killed worker's task runs again);
# one task prefetched at a time so a long GPU job never hides work from an idle worker.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 6 * 3600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600 + 300)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must exceed CELERY_TASK_SOFT_TIME_LIMIT")
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SEND_TASK_EVENTS = False

# Shards (docs/architecture.md, Jobs): a running shard beats its heartbeat every
# SHARD_HEARTBEAT_SECONDS; one silent for SHARD_STALE_SECONDS has lost its worker, and every
# worker looks for such shards every SHARD_REAP_SECONDS and queues them again, so a lost shard is
# taken up within about a minute (not after the broker's visibility timeout above, which stays
# as the last resort). A shard is tried at most SHARD_MAX_ATTEMPTS times.
SHARD_HEARTBEAT_SECONDS = env_int("SHARD_HEARTBEAT_SECONDS", 10)
SHARD_STALE_SECONDS = env_int("SHARD_STALE_SECONDS", 45)
SHARD_REAP_SECONDS = env_int("SHARD_REAP_SECONDS", 15)
SHARD_MAX_ATTEMPTS = env_int("SHARD_MAX_ATTEMPTS", 3)
if SHARD_STALE_SECONDS < 2 * SHARD_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("SHARD_STALE_SECONDS must be at least twice SHARD_HEARTBEAT_SECONDS")
if min(SHARD_HEARTBEAT_SECONDS, SHARD_REAP_SECONDS, SHARD_MAX_ATTEMPTS) < 1:
    raise ImproperlyConfigured("SHARD_HEARTBEAT_SECONDS, _REAP_SECONDS, _MAX_ATTEMPTS must be ≥ 1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
