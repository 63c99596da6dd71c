"""Django settings for Tanfang; every value comes from the environment (see docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from tanfang.config import ConfigError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(env_str("TANFANG_DATA_DIR", str(Path.cwd() / "var")) or "var")

DEBUG = env_bool("TANFANG_DEBUG", False)
SECRET_KEY = env_str("TANFANG_SECRET_KEY")
if not SECRET_KEY:
    raise ConfigError("TANFANG_SECRET_KEY is not set (or set TANFANG_SECRET_KEY_FILE)")
ALLOWED_HOSTS = env_list("TANFANG_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("TANFANG_CSRF_TRUSTED_ORIGINS", [])

# Keys protecting personal identifiers: Fernet keys (newest first, for rotation) and the
# separate HMAC key of the blind index.
FIELD_ENCRYPTION_KEYS = env_list("TANFANG_FIELD_KEYS", [])
BLIND_INDEX_KEY = env_str("TANFANG_BLIND_INDEX_KEY")
if not FIELD_ENCRYPTION_KEYS or not BLIND_INDEX_KEY:
    raise ConfigError(
        "TANFANG_FIELD_KEYS and TANFANG_BLIND_INDEX_KEY must be set "
        "(`tanfang keys` prints a fresh pair)"
    )

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
    "drf_spectacular_sidecar",
    "tanfang.core",
    "tanfang.areas",
    "tanfang.accounts",
    "tanfang.audit",
    "tanfang.registry",
    "tanfang.imports",
    "tanfang.web",
    "tanfang.api",
    "tanfang.demo",
    "tanfang.monitoring",
    "tanfang.visits",
    "tanfang.care",
    "tanfang.notifications",
    "tanfang.referrals",
    "tanfang.emergencies",
    "tanfang.workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "tanfang.core.middleware.ChosenLanguageOnly",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tanfang.accounts.middleware.DenyByDefaultMiddleware",
]

ROOT_URLCONF = "tanfang.urls"
WSGI_APPLICATION = "tanfang.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_default_db = f"sqlite:///{DATA_DIR / 'tanfang.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", _default_db) or _default_db,
        conn_max_age=env_int("TANFANG_DB_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and workers share the embedded database.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The queries here are short OLTP ones and grouped counts; PostgreSQL's JIT spent longer
    # compiling the rates' queries (1.4-2.7 s) than running them (docs/visit-rates.md).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "elder-list"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("TANFANG_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tanfang.api.permissions.DenyByDefault"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tanfang API",
    "DESCRIPTION": "Registry, areas and first contacts of elders with special difficulties.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["tanfang.api.permissions.SignedInWithRole"],
    # No internet where this runs: the docs UI's assets are served from the sidecar package.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "ENUM_NAME_OVERRIDES": {
        "ContactRelationEnum": "tanfang.registry.models.ContactRelation",
        "HouseholdRelationEnum": "tanfang.registry.models.HouseholdRelation",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("TANFANG_LOG_LEVEL", "WARNING")},
}

# Monitoring (docs/monitoring.md): the reading store (Parquet files), how long raw readings
# are kept (hourly aggregates are kept for years), and the MQTT broker the subscriber uses.
MONITORING_DIR = Path(env_str("TANFANG_MONITORING_DIR", str(DATA_DIR / "monitoring")) or "")
RAW_READING_DAYS = env_int("TANFANG_RAW_READING_DAYS", 180, minimum=120)
HOURLY_READING_DAYS = env_int("TANFANG_HOURLY_READING_DAYS", 5 * 366, minimum=366)
MQTT_URL = env_str("TANFANG_MQTT_URL", "mqtt://127.0.0.1:1883") or ""

# Notifications and workers (issue 5; docs/notifications.md, docs/workers.md).
# The address of this site as family members reach it (confirmation links in messages).
TANFANG_PUBLIC_URL = env_str("TANFANG_PUBLIC_URL", "http://127.0.0.1:8000") or ""
# SMS through Alibaba Cloud's SMS API (alibabacloud-dysmsapi20170525). Unset endpoint: no SMS.
SMS_ENDPOINT = env_str("TANFANG_SMS_ENDPOINT", "") or ""  # e.g. dysmsapi.aliyuncs.com
SMS_PROTOCOL = env_str("TANFANG_SMS_PROTOCOL", "https") or "https"
SMS_ACCESS_KEY_ID = env_str("TANFANG_SMS_ACCESS_KEY_ID", "") or ""
SMS_ACCESS_KEY_SECRET = env_str("TANFANG_SMS_ACCESS_KEY_SECRET", "") or ""
SMS_SIGN_NAME = env_str("TANFANG_SMS_SIGN_NAME", "探访") or ""
SMS_RATE = env_int("TANFANG_SMS_RATE", 50, minimum=0)  # provider requests per second
# WeCom group robots: the webhook's base URL (the robot's key is stored per group).
WECOM_URL = env_str("TANFANG_WECOM_URL", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send") or ""
WECOM_ENABLED = env_bool("TANFANG_WECOM_ENABLED", False)
# E-mail over SMTP. Unset host: no e-mail.
SMTP_HOST = env_str("TANFANG_SMTP_HOST", "") or ""
SMTP_PORT = env_int("TANFANG_SMTP_PORT", 25, minimum=1)
SMTP_USER = env_str("TANFANG_SMTP_USER", "") or ""
SMTP_PASSWORD = env_str("TANFANG_SMTP_PASSWORD", "") or ""
SMTP_STARTTLS = env_bool("TANFANG_SMTP_STARTTLS", False)
SMTP_FROM = env_str("TANFANG_SMTP_FROM", "tanfang@localhost") or ""
# Workers: empty runs them in-process on the database; redis://... runs them on Redis.
REDIS_URL = env_str("TANFANG_REDIS_URL", "") or ""
# The prefix of every Redis key the workers use (several sites may share one Redis).
WORKER_KEY_PREFIX = env_str("TANFANG_WORKER_KEY_PREFIX", "tanfang:") or "tanfang:"
# The outbox (docs/notifications.md, "Outbox"): how long a worker holds a claimed batch before
# another may take it over as in doubt; batches in flight per worker (0: 4 on PostgreSQL, 1 on
# SQLite); non-urgent messages to one address per hour.
OUTBOX_LEASE_SECONDS = env_int("TANFANG_OUTBOX_LEASE_SECONDS", 30, minimum=5)
OUTBOX_IN_FLIGHT = env_int("TANFANG_OUTBOX_IN_FLIGHT", 0, minimum=0)
OUTBOX_RECIPIENT_PER_HOUR = env_int("TANFANG_OUTBOX_RECIPIENT_PER_HOUR", 10, minimum=1)
