"""The one Settings object. Read once in `main` (or a lifespan) and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"


class Settings(BaseSettings):
    """Every field reads from the environment as `FARM_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="FARM_", extra="ignore", frozen=True)

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment environment; `production` enforces safe settings."
    )
    data_dir: Path = Field(
        Path(".farm"), description="Where embedded services keep their files (database, objects)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of the JSON log lines."
    )

    # HTTP
    api_host: str = Field("127.0.0.1", description="Address the HTTP proxy binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP API and WebSocket.")
    api_replicas: int = Field(2, ge=1, le=64, description="Number of Api replicas.")
    api_replica_cpus: float = Field(
        0.25, gt=0, le=16, description="Ray CPUs reserved by each Api replica (fractional)."
    )
    api_max_ongoing_requests: int = Field(
        200, ge=1, description="Concurrent requests (WebSockets included) per Api replica."
    )
    upload_host: str | None = Field(
        None, description="Address the upload gateway binds to; unset: the same as FARM_API_HOST."
    )
    upload_port: int = Field(
        8001, ge=1, le=65535, description="Port of the upload gateway, which carries file bytes."
    )
    upload_public_url: str | None = Field(
        None, pattern=r"^https?://",
        description="Base URL clients send file bytes to; unset: http://<upload host>:<port>.",
    )
    upload_gateway_cpus: float = Field(
        0.25, gt=0, le=16, description="Ray CPUs reserved by the upload gateway (fractional)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated browser origins allowed by CORS and WebSocket checks.",
    )
    node_managers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated studio slugs whose TDs, supervisors and admins may lock, "
        "drain and label farm nodes; empty: every studio's (a farm of one studio).",
    )
    json_body_limit_bytes: int = Field(
        1_048_576, ge=1024, description="Largest JSON request body accepted (413 above)."
    )
    tls_terminated_upstream: bool = Field(
        False,
        description="Trust X-Forwarded-Proto from the proxy in front; sends HSTS on https.",
    )
    rate_limit_requests: int = Field(
        1200, ge=1, description="Requests allowed per rate-limit window per studio (callers "
        "with a valid access token) or per client address (everyone else)."
    )
    rate_limit_window_s: int = Field(60, ge=1, description="Length of a rate-limit window.")

    # Dependencies
    mongo_url: SecretStr | None = Field(
        None, description="MongoDB URL; unset starts the embedded wire-protocol server."
    )
    mongo_db: str = Field("studio_farm", min_length=1, description="Database name.")
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint host:port; unset starts the embedded S3 server."
    )
    s3_access_key: SecretStr | None = Field(None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_secure: bool = Field(False, description="Use https to reach S3.")
    s3_public_url: str | None = Field(
        None, pattern=r"^https?://[^/?#\s]+/?$",
        description="Base URL (scheme://host[:port]) that presigned download and upload URLs "
        "carry, when clients reach storage at another address than the farm does (a proxy, "
        "a DNS name); unset: the S3 endpoint as the farm reaches it.",
    )
    s3_region: str = Field("us-east-1", description="S3 region (skips a region lookup).")
    s3_bucket: str = Field("studio-farm", min_length=3, description="Bucket for all objects.")
    ffmpeg: str = Field("ffmpeg", description="FFmpeg executable (name on PATH or full path).")
    ffprobe: str = Field("ffprobe", description="ffprobe executable (name on PATH or full path).")
    ray_address: str | None = Field(
        None, description="Ray cluster address; unset starts a local Ray instance."
    )
    ray_dashboard_port: int = Field(
        8265, ge=1, le=65535, description="Port of the Ray dashboard when Ray is started locally."
    )
    local_slots: float | None = Field(
        None, ge=0, le=1024, description="Farm slots of this machine when `farm up` starts "
        "Ray itself; unset: half its CPUs (at least 1); 0: a head that renders nothing."
    )
    dependency_timeout_s: float = Field(
        2.0, gt=0, le=30, description="Timeout of one readiness probe of a dependency, and the "
        "time within which a request answers 503 while the database does not answer."
    )

    # Mail
    smtp_host: str | None = Field(
        None, description="SMTP server for the studio's email (verification codes, "
        "invitations, password resets); unset: an embedded server that keeps each message "
        "as a file under `<data_dir>/mail` (development and tests; refused in production)."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="`starttls` (port 587), `tls` (implicit TLS, port 465) or "
        "`none` (a relay on a trusted network only)."
    )
    smtp_username: str | None = Field(None, description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    mail_from: str = Field(
        "Studio Farm <farm@localhost>", max_length=320,
        description="The From of every message."
    )
    app_url: str = Field(
        "http://localhost:3000", description="The studio's web app: links in emails open "
        "`<app_url>/accept-invite?token=…` and `<app_url>/reset-password?token=…`."
    )
    email_verification: bool = Field(
        True, description="New accounts confirm their email with a 6-digit code before they "
        "can do anything but read themselves and verify."
    )
    mail_max_attempts: int = Field(
        8, ge=1, le=50, description="Tries to send a message before it is marked failed "
        "(listed for admins at GET /api/v1/mail)."
    )
    mail_retry_initial_s: float = Field(
        5.0, gt=0, le=3600, description="Wait before the second try; doubles each try "
        "after, up to an hour."
    )

    # Assets and uploads
    upload_part_size_bytes: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024, le=512 * 1024 * 1024,
        description="Size of every multipart part but the last (S3 needs 5 MiB or more).",
    )
    simple_upload_limit_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest file accepted by the one-request upload."
    )
    max_upload_bytes: int = Field(
        50 * 1024**3, ge=1, description="Largest file accepted by any upload."
    )
    upload_ttl_s: int = Field(
        24 * 3600, ge=60, description="An upload left incomplete this long is aborted."
    )
    upload_idle_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="A file body that sends nothing for this long is "
        "refused (408) and its connection closed; nothing of it is kept."
    )
    upload_url_ttl_s: int = Field(
        900, ge=10, le=7 * 24 * 3600, description="Lifetime of presigned part upload URLs."
    )
    download_url_ttl_s: int = Field(
        300, ge=10, le=7 * 24 * 3600, description="Lifetime of presigned download URLs."
    )
    studio_quota_bytes: int = Field(
        2 * 1024**4, ge=0, description="Stored bytes allowed per studio (uploads beyond: 429)."
    )
    studio_max_open_uploads: int = Field(
        20, ge=1, description="Incomplete uploads a studio may have open at once."
    )
    janitor_interval_s: float = Field(
        60.0, gt=0, description="How often a replica reaps expired uploads and deleted assets."
    )

    # Farm
    task_lease_s: float = Field(
        30.0, gt=0, description="A task leased but never handed to its node (the round died) "
                                "goes back to the queue after this."
    )
    node_silence_s: float = Field(
        15.0, gt=0, description="A node not heard from for this long is lost; its tasks requeue."
    )
    circuit_threshold: int = Field(
        3, ge=1, description="Failures of this many different jobs in a row on a node (or "
        "node x task kind) that open its circuit."
    )
    circuit_cooldown_s: float = Field(
        60.0, gt=0, description="How long an open circuit waits before one trial task."
    )
    bad_node_threshold: int = Field(
        3, ge=1, description="Failures of one job on one node that bar the node from the job."
    )
    retry_initial_s: float = Field(
        2.0, gt=0, description="First retry delay; doubles per attempt, with jitter."
    )
    retry_max_s: float = Field(300.0, gt=0, description="Longest retry delay.")
    dispatch_ahead: float = Field(
        1.0, ge=0, le=4, description="At most this many tasks, as a fraction of a node's "
        "slots, leased to it beyond its free slots: about what it ends in a second or two, "
        "so short tasks start without a round trip and long ones never wait on a busy node."
    )
    node_cache_bytes: int = Field(
        10 * 2**30, ge=0, description="Disk a farm node may keep for downloaded inputs "
        "(scenes, media); least recently used go first, never one a running task holds."
    )
    blender: str | None = Field(
        None, description="Blender executable for render tasks on farm nodes; unset: the "
        "bpy module of the node's Python (the `render` extra)."
    )

    # Live events and WebSockets
    event_retention_s: float = Field(
        7 * 24 * 3600, ge=0, description="Events older than this are pruned (0: no age limit)."
    )
    event_retention_count: int = Field(
        100_000, ge=0, description="Events kept per studio, newest first (0: no count limit)."
    )
    ws_send_queue_frames: int = Field(
        256, ge=8, le=65536,
        description="Frames queued per socket, and frames sent but not yet acknowledged.",
    )
    ws_max_message_bytes: int = Field(
        65536, ge=1024, le=16 * 1024 * 1024,
        description="Largest client WebSocket message (closes with 1009 above).",
    )
    ws_messages_per_s: float = Field(
        20.0, gt=0, description="Client messages allowed per socket per second (burst: twice)."
    )
    ws_auth_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Time a socket has to send its auth message."
    )
    ws_auth_recheck_s: float = Field(
        30.0, gt=0, le=60, description="How often an open socket's credential is checked again."
    )
    ws_heartbeat_s: float = Field(
        15.0, gt=0, le=300,
        description="Server ping interval on an idle socket; three missed: closed.",
    )

    # Identity
    jwt_secret: SecretStr = Field(
        SecretStr(DEFAULT_JWT_SECRET), description="HMAC key that signs access tokens."
    )
    jwt_issuer: str = Field("studio-farm", description="`iss` of access tokens.")
    jwt_audience: str = Field("studio-farm-api", description="`aud` of access tokens.")
    access_token_ttl_s: int = Field(900, ge=60, le=3600, description="Access token lifetime.")
    refresh_token_ttl_s: int = Field(
        7 * 24 * 3600, ge=3600, description="Absolute lifetime of a refresh-token family."
    )
    refresh_token_idle_s: int = Field(
        24 * 3600, ge=300, description="A refresh token unused for this long expires."
    )
    bcrypt_rounds: int = Field(
        12, ge=4, le=16, description="bcrypt cost factor (12+ in production)."
    )

    @field_validator("event_retention_count")
    @classmethod
    def _keep_enough_events(cls, value: int) -> int:
        # Writers take the next sequence number just above the newest events.
        if 0 < value < 100:
            raise ValueError("keep at least 100 events per studio (or 0 for no limit)")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().rstrip("/") for item in value.split(",") if item.strip()]
        return value

    @field_validator("node_managers", mode="before")
    @classmethod
    def _split_slugs(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lower() for item in value.split(",") if item.strip()]
        return value

    @property
    def upload_bind_host(self) -> str:
        return self.upload_host or self.api_host

    @property
    def upload_url(self) -> str:
        """Where clients send file bytes: the gateway, or what routes to it in front."""
        if self.upload_public_url:
            return self.upload_public_url.rstrip("/")
        host = self.upload_bind_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.upload_port}"

    @property
    def farm_local_slots(self) -> float:
        if self.local_slots is not None:
            return self.local_slots
        return float(max(1, (os.cpu_count() or 2) // 2))

    @property
    def embedded_mongo(self) -> bool:
        return self.mongo_url is None

    @property
    def embedded_s3(self) -> bool:
        return self.s3_endpoint is None

    @property
    def embedded_smtp(self) -> bool:
        return self.smtp_host is None

    @property
    def mail_dir(self) -> Path:
        """Where the embedded SMTP server keeps the messages it is given."""
        return self.data_dir / "mail"


def production_problems(settings: Settings) -> list[str]:
    """Settings that are fine on a laptop and wrong on a real farm."""
    if settings.env != "production":
        return []
    problems = []
    if settings.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET:
        problems.append("FARM_JWT_SECRET: the default secret is refused in production")
    elif len(settings.jwt_secret.get_secret_value()) < 32:
        problems.append("FARM_JWT_SECRET: must be at least 32 characters in production")
    if settings.embedded_mongo:
        problems.append("FARM_MONGO_URL: production needs a real MongoDB, not the embedded one")
    if settings.embedded_s3:
        problems.append("FARM_S3_ENDPOINT: production needs real S3 storage, not the embedded one")
    if settings.embedded_smtp:
        problems.append("FARM_SMTP_HOST: production needs a real SMTP server, not the "
                        "embedded one (it delivers nothing)")
    if settings.bcrypt_rounds < 12:
        problems.append("FARM_BCRYPT_ROUNDS: must be 12 or more in production")
    return problems
