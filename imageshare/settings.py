"""imageshare settings, read from the environment.

Over 400 lines on purpose: it is the one reader of the environment, so every
setting of every room is here, grouped by concern under its heading.

Every value has a default that runs the embedded local stack out of the box.
Production (``IMAGESHARE_ENV=production``) refuses to start with a default
secret. The helpers fail loudly on a value they cannot parse, instead of
silently falling back to a default.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ops.scaling.policy import Settings as PolicySettings

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum {maximum}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Deployment mode and secrets -------------------------------------------------
IMAGESHARE_ENV = envstr("IMAGESHARE_ENV", "local")
if IMAGESHARE_ENV not in ("local", "production"):
    raise ImproperlyConfigured(f"IMAGESHARE_ENV must be 'local' or 'production', not {IMAGESHARE_ENV!r}")
PRODUCTION = IMAGESHARE_ENV == "production"

_DEFAULT_SECRET_KEY = "local-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = envstr("SECRET_KEY", _DEFAULT_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == _DEFAULT_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured("Production needs SECRET_KEY set to a random value of 32+ characters.")

DEBUG = envbool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
# Proxies in front of the web tier whose X-Forwarded-For we believe: 0 locally
# (the header is ignored: anyone can send it), 1 behind the load balancer.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 1 if PRODUCTION else 0, minimum=0)
# Production is HTTPS only: the load balancer redirects HTTP, and so does Django
# for anything that reaches it as plain HTTP; browsers remember it (HSTS).
SECURE_SSL_REDIRECT = PRODUCTION
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the load balancer's health check speaks HTTP to the instance
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = False

# --- Django -----------------------------------------------------------------------
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
    "axes",
    "imageshare.images",
    "imageshare.console",
]

MIDDLEWARE = [
    # First: everything after it sees the real client address.
    "imageshare.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "imageshare.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it locks out repeated failed logins.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "imageshare.urls"
WSGI_APPLICATION = "imageshare.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "imageshare" / "templates"],
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

VAR_DIR = Path(envstr("IMAGESHARE_VAR_DIR", str(BASE_DIR / "var")))
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'imageshare.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web tier and the workers write to the same file: wait for the lock
    # instead of failing, and let readers proceed during writes (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2 first: new and changed passwords are hashed with it; older hashes
# are upgraded on the next login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login rate limit (django-axes): after AXES_FAILURE_LIMIT failures for one
# username from one address, that pair is locked out for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = envint("LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "imageshare.images.views.locked_out"
AXES_VERBOSE = False
# Basic auth and /api/upload send the password with every request: after one
# successful Argon2 verify, the pair is recognised for this long (in process
# memory, under a keyed hash; dropped on password change). 0 turns it off.
# The doors outside the JSON API (imageshare/images/doors.py), per client address:
# credential failures on /api/upload, registrations, password-reset e-mails.
LOGIN_FAILURES_PER_ADDRESS = envstr("LOGIN_FAILURES_PER_ADDRESS", "30/h")
REGISTRATIONS_PER_ADDRESS = envstr("REGISTRATIONS_PER_ADDRESS", "10/h")
PASSWORD_RESETS_PER_ADDRESS = envstr("PASSWORD_RESETS_PER_ADDRESS", "5/h")
# A username guessed at from many addresses is slowed down, never locked: past
# LOGIN_SLOWDOWN_AFTER failures in LOGIN_SLOWDOWN_WINDOW_SECONDS, one password
# check for it per LOGIN_SLOWDOWN_SECONDS (the owner's too: a few seconds' wait).
LOGIN_SLOWDOWN_AFTER = envint("LOGIN_SLOWDOWN_AFTER", 20, minimum=1)
LOGIN_SLOWDOWN_WINDOW_SECONDS = envint("LOGIN_SLOWDOWN_WINDOW_SECONDS", 900, minimum=1)
LOGIN_SLOWDOWN_SECONDS = envint("LOGIN_SLOWDOWN_SECONDS", 5, minimum=1)
CREDENTIAL_CACHE_SECONDS = envint("CREDENTIAL_CACHE_SECONDS", 300, minimum=0)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "imageshare" / "static"]
STORAGES = {
    "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve static files without collectstatic in the local stack

# One cache the web processes share (rate limits): Redis when CACHE_URL is
# given (production), else files under var/ (the local stack's processes
# share the disk).
CACHE_URL = envstr("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "imageshare.images.auth.LockoutAwareBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "imageshare.images.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    # Sized to real use, not below it: a client's load test (a burst of 1,000
    # uploads from one account, then 20/s) and status polling at 50/s pass.
    # Abuse of storage is bounded by quotas; overload by UPLOAD_BACKLOG_LIMIT.
    # The client address is REMOTE_ADDR, already set from trusted proxies only (imageshare.middleware).
    "NUM_PROXIES": 0,
    "DEFAULT_THROTTLE_RATES": {
        "anon": envstr("API_RATE_ANON", "60/min"),
        "user": envstr("API_RATE_USER", "6000/min"),
        "uploads": envstr("API_RATE_UPLOADS", "3000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "imageshare API",
    "DESCRIPTION": "Upload photos; get small, medium and large renditions (and any size on request).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imageshare.images.schema.document_rate_limits",
    ],
}

# --- Deployment kind: private (accounts only) or open sharing ------------------
# private: only accounts an administrator created; each user sees only their
#   own images; image URLs go through the app (permission check, then a
#   short-lived presigned S3 URL).
# open: anyone with the link sees an image; anonymous uploads are allowed;
#   image URLs are public (S3, or CDN_BASE_URL).
IMAGESHARE_MODE = envstr("IMAGESHARE_MODE", "private")
if IMAGESHARE_MODE not in ("private", "open"):
    raise ImproperlyConfigured("IMAGESHARE_MODE must be 'private' or 'open'")
OPEN_REGISTRATION = envbool("OPEN_REGISTRATION", False)  # POST /api/register
# Strip location (GPS) and other personal metadata from stored originals,
# keeping orientation and colour profile: on by default where images are public.
STRIP_ORIGINAL_METADATA = envbool("STRIP_ORIGINAL_METADATA", IMAGESHARE_MODE == "open")
CDN_BASE_URL = envstr("CDN_BASE_URL", "").rstrip("/")

# --- E-mail (password reset) ---------------------------------------------------
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "imageshare <noreply@localhost>")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)

# --- Remote-URL uploads ----------------------------------------------------------
REMOTE_FETCH_TIMEOUT = envint("REMOTE_FETCH_TIMEOUT_SECONDS", 10, minimum=1)  # each connect / read
REMOTE_FETCH_DEADLINE = envint("REMOTE_FETCH_DEADLINE_SECONDS", 30, minimum=1)  # the whole fetch
REMOTE_FETCH_MAX_REDIRECTS = envint("REMOTE_FETCH_MAX_REDIRECTS", 3, minimum=0)
# Tests serve images from loopback; production never sets this.
REMOTE_FETCH_ALLOW_LOOPBACK = envbool("REMOTE_FETCH_ALLOW_LOOPBACK", False)
if PRODUCTION and REMOTE_FETCH_ALLOW_LOOPBACK:
    raise ImproperlyConfigured("REMOTE_FETCH_ALLOW_LOOPBACK must be off in production")
# Test stacks: refuse every host but loopback before any DNS lookup, so that a
# fuzzer's made-up URLs never send traffic off this machine.
REMOTE_FETCH_LOOPBACK_ONLY = envbool("REMOTE_FETCH_LOOPBACK_ONLY", False)
if PRODUCTION and REMOTE_FETCH_LOOPBACK_ONLY:
    raise ImproperlyConfigured("REMOTE_FETCH_LOOPBACK_ONLY must be off in production")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# --- AWS: S3 and SQS --------------------------------------------------------------
# AWS_ENDPOINT_URL set: every AWS client talks to it (moto in the local stack).
# Unset: real AWS, with credentials from the usual chain (instance role).
AWS_ENDPOINT_URL = envstr("AWS_ENDPOINT_URL", "") or None
AWS_REGION = envstr("AWS_REGION", "us-east-1")
S3_BUCKET = envstr("S3_BUCKET", "imageshare-media")
SQS_QUEUE_NAME = envstr("SQS_QUEUE_NAME", "imageshare-thumbnails")
SQS_DEAD_LETTER_QUEUE_NAME = envstr("SQS_DEAD_LETTER_QUEUE_NAME", f"{SQS_QUEUE_NAME}-dlq")
SQS_MAX_RECEIVE_COUNT = envint("SQS_MAX_RECEIVE_COUNT", 5, minimum=1)
# Set by the local stack and by provisioning; when unset the URLs are looked up by name.
SQS_QUEUE_URL = envstr("SQS_QUEUE_URL", "") or None
# Extra sizes asked for after upload have a queue of their own, which workers
# consume beside the main one: one account's flood of extra sizes never waits
# in front of anyone's new upload (fair processing).
SQS_EXTRAS_QUEUE_NAME = envstr("SQS_EXTRAS_QUEUE_NAME", f"{SQS_QUEUE_NAME}-extras")
SQS_EXTRAS_QUEUE_URL = envstr("SQS_EXTRAS_QUEUE_URL", "") or None
# Image analysis (faces, masks: thumbnails/analysis.py) has a queue and a
# worker of its own, so a slow model never holds back anyone's thumbnails.
SQS_ANALYSIS_QUEUE_NAME = envstr("SQS_ANALYSIS_QUEUE_NAME", f"{SQS_QUEUE_NAME}-analysis")
SQS_ANALYSIS_QUEUE_URL = envstr("SQS_ANALYSIS_QUEUE_URL", "") or None
# With predefined queues kombu knows only the queues it is given: without the
# analysis queue's URL every analysis would fail to queue (and only be logged).
if PRODUCTION and SQS_QUEUE_URL and not SQS_ANALYSIS_QUEUE_URL:
    raise ImproperlyConfigured(
        "SQS_ANALYSIS_QUEUE_URL must be set beside SQS_QUEUE_URL (python -m ops.deploy sets both)."
    )
# POST /api/upload answers with the face counts: it waits up to this long for
# the analysis worker's result (0: never waits), then answers with nulls.
# At most 25 s: under gunicorn's and the load balancer's timeouts.
ANALYSIS_WAIT_SECONDS = envint("ANALYSIS_WAIT_SECONDS", 10, minimum=0, maximum=25)
# At most this many of a web process's threads wait so at once (gunicorn
# gthread: 4 per process); an upload past it answers at once, counts null.
ANALYSIS_WAITERS_PER_PROCESS = envint("ANALYSIS_WAITERS_PER_PROCESS", 2, minimum=0)
SQS_DEAD_LETTER_QUEUE_URL = envstr("SQS_DEAD_LETTER_QUEUE_URL", "") or None

# The longest a resize task may run (Celery's hard time limit).
TASK_TIME_LIMIT = envint("TASK_TIME_LIMIT", 120, minimum=5)
# How long SQS hides a message once a worker has received it. Short, so the
# messages of a worker that dies outright (kill -9, a lost instance) go to
# another worker within this time. A live worker's heartbeat
# (ops/worker/heartbeat.py) extends every message it holds, every
# SQS_VISIBILITY_HEARTBEAT_SECONDS, back to this full timeout: a task may run
# far longer (up to TASK_TIME_LIMIT) without SQS handing it out twice. Three
# beats per timeout, so two beats in a row may fail before a message shows.
SQS_VISIBILITY_TIMEOUT = envint("SQS_VISIBILITY_TIMEOUT", 45, minimum=1)
SQS_VISIBILITY_HEARTBEAT_SECONDS = envint("SQS_VISIBILITY_HEARTBEAT_SECONDS", 15, minimum=1)
if SQS_VISIBILITY_TIMEOUT < 3 * SQS_VISIBILITY_HEARTBEAT_SECONDS or SQS_VISIBILITY_TIMEOUT > 43200:
    raise ImproperlyConfigured(
        f"SQS_VISIBILITY_TIMEOUT ({SQS_VISIBILITY_TIMEOUT}s) must be at least 3 x SQS_VISIBILITY_HEARTBEAT_SECONDS "
        f"({SQS_VISIBILITY_HEARTBEAT_SECONDS}s) and at most 43200 (the SQS maximum)"
    )

# django-storages, S3 backend (see imageshare/images/storage.py).
AWS_STORAGE_BUCKET_NAME = S3_BUCKET
AWS_S3_REGION_NAME = AWS_REGION
AWS_S3_ENDPOINT_URL = AWS_ENDPOINT_URL
AWS_S3_ADDRESSING_STYLE = "path" if AWS_ENDPOINT_URL else None
AWS_S3_SIGNATURE_VERSION = "s3v4"
AWS_DEFAULT_ACL = None
AWS_S3_FILE_OVERWRITE = True  # fixed keys per image and size: a re-run overwrites, never duplicates
AWS_QUERYSTRING_AUTH = True  # private bucket: URLs are short-lived presigned links
AWS_QUERYSTRING_EXPIRE = envint("PRESIGNED_URL_TTL", 3600, minimum=60)
# Private mode: the app checks permission on each request, then redirects to
# a URL signed for this long only.
PRESIGNED_REDIRECT_TTL = envint("PRESIGNED_REDIRECT_TTL", 300, minimum=10)
AWS_S3_OBJECT_PARAMETERS = {"CacheControl": "private, max-age=86400"}
if AWS_ENDPOINT_URL:
    # moto accepts any credentials; real AWS never gets here.
    AWS_S3_ACCESS_KEY_ID = envstr("AWS_ACCESS_KEY_ID", "testing")
    AWS_S3_SECRET_ACCESS_KEY = envstr("AWS_SECRET_ACCESS_KEY", "testing")

# --- Images ----------------------------------------------------------------------
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 25 * 1024 * 1024, minimum=1024)
MAX_IMAGE_PIXELS = envint("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
JPEG_QUALITY = envint("JPEG_QUALITY", 85, minimum=1)
if JPEG_QUALITY > 100:
    raise ImproperlyConfigured("JPEG_QUALITY must be 1..100")
EXTRA_FORMATS = tuple(f.upper() for f in envlist("IMAGE_EXTRA_FORMATS", ""))
for _fmt in EXTRA_FORMATS:
    if _fmt not in ("WEBP", "AVIF"):
        raise ImproperlyConfigured(f"IMAGE_EXTRA_FORMATS may list webp and avif, not {_fmt!r}")
# What one account may take. Storage: originals plus renditions, 0 for no quota
# (sized for real use: 1,000 phone photos with their sizes fit many times over).
USER_STORAGE_QUOTA_BYTES = envint("USER_STORAGE_QUOTA_BYTES", 20 * 1024**3, minimum=0)
# Extra sizes on request: at most this many per image (stored or queued), at
# most this many of one account's queued at once, and, when set, only the
# listed sizes ("400x400,1024x768").
MAX_CUSTOM_SIZES_PER_IMAGE = envint("MAX_CUSTOM_SIZES_PER_IMAGE", 20, minimum=0)
MAX_CUSTOM_SIZES_IN_FLIGHT = envint("MAX_CUSTOM_SIZES_IN_FLIGHT", 10, minimum=1)
CUSTOM_SIZES_ALLOWED = frozenset(envlist("CUSTOM_SIZES_ALLOWED", ""))
# Overload protection that follows what the workers can drain: past this many
# messages waiting in the work queue, uploads answer 503 with Retry-After
# (nothing stored). Sized so a 1,000-upload burst on top of a busy queue passes.
UPLOAD_BACKLOG_LIMIT = envint("UPLOAD_BACKLOG_LIMIT", 5000, minimum=1)
UPLOAD_BACKLOG_RETRY_AFTER = envint("UPLOAD_BACKLOG_RETRY_AFTER_SECONDS", 30, minimum=1)
# Direct uploads (imageshare/images/direct.py): how long a presigned S3 POST stays valid.
# Short: the client POSTs the file straight away, then finalizes. At most an
# hour: a presigned POST signed with an instance role's temporary credentials
# dies with them anyway, and a long-lived one can be replayed for longer.
DIRECT_UPLOAD_EXPIRES_SECONDS = envint("DIRECT_UPLOAD_EXPIRES_SECONDS", 600, minimum=30, maximum=3600)
# Django's own in-memory limit follows ours, so larger bodies go to a temp file.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# --- Scaling hook -----------------------------------------------------------------
# The defaults live in one place, ops.scaling.policy.Settings; these variables
# only override them. They are the starting values of the policy row: the
# database holds the live settings, editable on the console, and these apply
# only when the row is first created.
_POLICY = PolicySettings()
_STABLE = int(_POLICY.scale_in_stable_seconds)
SCALING_DEFAULTS = {
    "min_workers": envint("SCALING_MIN_WORKERS", _POLICY.min_workers, minimum=0),
    "max_workers": envint("SCALING_MAX_WORKERS", _POLICY.max_workers, minimum=1),
    "worker_concurrency": envint("WORKER_CONCURRENCY", _POLICY.worker_concurrency, minimum=1),
    "interval_seconds": envint("SCALING_INTERVAL_SECONDS", int(_POLICY.interval_seconds), minimum=1),
    "target_latency_seconds": envint("SCALING_TARGET_LATENCY_SECONDS", int(_POLICY.target_latency_seconds), minimum=1),
    "scale_in_stable_seconds": envint(
        "SCALING_SCALE_IN_STABLE_SECONDS", int(_POLICY.scale_in_stable_seconds), minimum=0
    ),
    "scale_in_cooldown": envint("SCALING_SCALE_IN_COOLDOWN_SECONDS", int(_POLICY.scale_in_cooldown), minimum=0),
}
# "local": worker processes on this machine; "asg": the EC2 Auto Scaling group ASG_NAME.
SCALING_PROVIDER = envstr("SCALING_PROVIDER", "local")
if SCALING_PROVIDER not in ("local", "asg"):
    raise ImproperlyConfigured(f"SCALING_PROVIDER must be 'local' or 'asg', not {SCALING_PROVIDER!r}")
ASG_NAME = envstr("ASG_NAME", "")
# The dead-letter sweep (images whose message died in the DLQ become failed).
DEAD_LETTER_SWEEP_SECONDS = envint("DEAD_LETTER_SWEEP_SECONDS", 30, minimum=1)
# A pending image older than this (since it was queued) with no result is
# queued again by the periodic duties: its message was lost (an enqueue that
# failed after the commit, a restarted local SQS, an expired message). Longer
# than a healthy backlog takes to drain; a re-dispatch that comes too early
# costs only a duplicate message, which the task skips once the image is ready.
STRANDED_AFTER_SECONDS = envint("STRANDED_AFTER_SECONDS", 900, minimum=60)
# The orphan sweep: S3 objects of images whose row is gone, older than this
# (an upload stores its original a moment before its row), every ORPHAN_SWEEP_SECONDS.
ORPHAN_SWEEP_AFTER_SECONDS = envint("ORPHAN_SWEEP_AFTER_SECONDS", 600, minimum=60)
ORPHAN_SWEEP_SECONDS = envint("ORPHAN_SWEEP_SECONDS", 600, minimum=10)
# Periodic duties (scaling hook, sweeps) run in one process at a time, whatever
# the number of web nodes: a holder keeps a database lease it renews each tick;
# another process takes over once the lease is this old.
DUTIES_LEASE_SECONDS = envint("DUTIES_LEASE_SECONDS", 60, minimum=5)

# --- Worker node --------------------------------------------------------------------
# On EC2 the instance id comes from the metadata service; this overrides it.
EC2_INSTANCE_ID = envstr("EC2_INSTANCE_ID", "")
# Pool processes of one worker share this counter (scale-in protection).
ACTIVE_TASKS_FILE = Path(envstr("IMAGESHARE_ACTIVE_TASKS_FILE", "/tmp/imageshare-active-tasks"))
# Set by the local scaling hook: the worker touches it once it consumes.
WORKER_READY_FILE = envstr("IMAGESHARE_WORKER_READY_FILE", "")
# Messages a worker holds per pool process (Celery's prefetch multiplier). 4
# drains a full queue faster (the next message is at hand when a task ends;
# docs/pipeline.md), but the scaling hook reads SQS's in-flight messages as
# busy pool processes, so prefetched ones would make it start workers for
# work that is already taken: 1 until the policy knows the multiplier.
WORKER_PREFETCH_MULTIPLIER = envint("WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)

# --- Monitoring -------------------------------------------------------------------
# Bearer token for Prometheus to scrape /metrics; without it only staff may read it.
METRICS_TOKEN = envstr("METRICS_TOKEN", "")
FLOWER_URL = envstr("FLOWER_URL", "")
# The site's public address, linked from the console; unset: the address the console was reached at.
SITE_URL = envstr("SITE_URL", "")
# The Redis the workers send their events to (Flower listens there); unset: no events.
CELERY_EVENTS_URL = envstr("CELERY_EVENTS_URL", "")
FLOWER_BASIC_AUTH = envstr("FLOWER_BASIC_AUTH", "")  # "user:password"

# --- Local stack (ops/devstack) -----------------------------------------------------
# The first admin account: ensure_admin creates it, with this password or a random one it prints once.
ADMIN_USERNAME = envstr("IMAGESHARE_ADMIN_USER", "admin")
ADMIN_PASSWORD = envstr("IMAGESHARE_ADMIN_PASSWORD", "")
LOCAL_WEB_PORT = envint("WEB_PORT", 8000, minimum=1)
LOCAL_AWS_PORT = envint("AWS_PORT", 4566, minimum=1)
LOCAL_WORKERS = envint("WORKERS", 1, minimum=0)
LOCAL_REDIS_PORT = envint("REDIS_PORT", 6390, minimum=1)
LOCAL_FLOWER_PORT = envint("FLOWER_PORT", 5555, minimum=1)


# --- Content-Security-Policy ------------------------------------------------------
# No inline script or style, no other origin but where the images live: the
# private mode's /i/ URLs redirect to presigned S3 URLs, the open mode links to
# S3 or the CDN, and an <img> follows redirects under img-src.
def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


_IMAGE_ORIGINS = [
    _origin(AWS_ENDPOINT_URL or ""),
    _origin(CDN_BASE_URL),
    f"https://{S3_BUCKET}.s3.amazonaws.com",
    f"https://{S3_BUCKET}.s3.{AWS_REGION}.amazonaws.com",
]
# Where a presigned POST sends the browser: the bucket's endpoint (moto locally), never the CDN.
_UPLOAD_ORIGINS = [o for o in _IMAGE_ORIGINS if o != _origin(CDN_BASE_URL)]
CONTENT_SECURITY_POLICY = envstr(
    "CONTENT_SECURITY_POLICY",
    f"default-src 'self'; img-src 'self' data: blob: {' '.join(o for o in _IMAGE_ORIGINS if o)}; "
    # connect-src: the upload page's script POSTs files straight to the bucket (direct uploads).
    f"connect-src 'self' {' '.join(o for o in _UPLOAD_ORIGINS if o)}; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'",
)
