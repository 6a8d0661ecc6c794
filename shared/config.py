"""Configuration from the environment, validated once (pydantic-settings)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import PACKAGE_DIR

# The Supabase CLI's well-known local development secret; never use it for a hosted project.
DEV_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105


def project_dir() -> Path:
    """The checkout holding `supabase/` (override with AUTODOCTOR_PROJECT_DIR)."""
    env = os.environ.get("AUTODOCTOR_PROJECT_DIR")
    return Path(env).resolve() if env else PACKAGE_DIR.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    autodoctor_home: Path | None = Field(default=None, alias="AUTODOCTOR_HOME")
    embedded_port: int = Field(default=54329, alias="AUTODOCTOR_PG_PORT", ge=1024, le=65535)
    database_name: str = Field(default="autodoctor", alias="AUTODOCTOR_DB_NAME", pattern=r"^[a-z_][a-z0-9_]*$")
    jwt_secret: str | None = Field(default=None, alias="SUPABASE_JWT_SECRET", min_length=32)
    # Set by `autodoctor serve` on the embedded database: allows the well-known development secret.
    local_dev: bool = Field(default=False, alias="AUTODOCTOR_LOCAL")
    jwt_issuer: str = Field(default="supabase-demo", alias="SUPABASE_JWT_ISSUER")
    jwks_url: str | None = Field(default=None, alias="SUPABASE_JWKS_URL")
    cron_secret: str | None = Field(default=None, alias="CRON_SECRET", min_length=16)
    livekit_api_key: str | None = Field(default=None, alias="LIVEKIT_API_KEY")
    livekit_api_secret: str | None = Field(default=None, alias="LIVEKIT_API_SECRET")
    livekit_url: str | None = Field(default=None, alias="LIVEKIT_URL")
    resend_api_key: str | None = Field(default=None, alias="RESEND_API_KEY")
    resend_api_base: str = Field(default="https://api.resend.com", alias="RESEND_API_BASE")
    # Signing secret (`whsec_…`) of Resend's webhook endpoint; unset: resend_webhook refuses every event.
    resend_webhook_secret: str | None = Field(default=None, alias="RESEND_WEBHOOK_SECRET")
    email_from: str = Field(default="Auto Doctor <no-reply@autodoctor.app>", alias="EMAIL_FROM")
    support_email: str | None = Field(default=None, alias="SUPPORT_EMAIL")
    email_files_dir: Path | None = Field(default=None, alias="EMAIL_FILES_DIR")
    app_url: str = Field(default="http://127.0.0.1:3000", alias="APP_URL")
    port: int = Field(default=8080, alias="PORT", ge=1, le=65535)
    # Payments (docs/payments.md). Unset secrets fail closed: no checkout, no webhook.
    stripe_secret_key: str | None = Field(default=None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: str | None = Field(default=None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_connect_webhook_secret: str | None = Field(default=None, alias="STRIPE_CONNECT_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(default=None, alias="STRIPE_API_BASE", pattern=r"^(https?://[^\s/]+\S*)?$")
    # Storage API (docs/privacy.md#erasure): the project URL and its service key, to delete files.
    supabase_url: str | None = Field(default=None, alias="SUPABASE_URL")
    supabase_service_role_key: str | None = Field(default=None, alias="SUPABASE_SERVICE_ROLE_KEY")

    @property
    def effective_jwt_secret(self) -> str | None:
        """The JWT secret; the development default only in local mode (fail closed elsewhere)."""
        return self.jwt_secret or (DEV_JWT_SECRET if self.local_dev else None)

    @property
    def home(self) -> Path:
        return (self.autodoctor_home or project_dir() / ".autodoctor").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
