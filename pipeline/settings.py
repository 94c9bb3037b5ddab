"""One settings object for the CLI, the workers, the watcher and the web alike.

Defaults live in ``config/settings.toml`` (data, not code); ``EVIDENCE_*`` environment variables
override them. ``EVIDENCE_CONFIG`` names another defaults file. ``EVIDENCE_ENV_FILE`` names a file
of ``EVIDENCE_*=value`` lines (the ``.env`` that ``docker-compose.yml`` hands its services), read
between the two: the environment wins over it, it wins over the defaults.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipeline.config import CONFIG_DIR, PROJECT_ROOT
from pipeline.errors import InvalidValueError

DEFAULTS_FILE = CONFIG_DIR / "settings.toml"

SourcePolicy = Literal["move", "delete", "keep"]


def _defaults_file() -> Path:
    return Path(os.environ.get("EVIDENCE_CONFIG", DEFAULTS_FILE))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVIDENCE_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    home: Path = Path("evidence-data")
    database_url: str = ""
    broker_url: str = ""
    queue_prefix: str = "evidence"
    source_policy: SourcePolicy = "move"
    external_source_policy: SourcePolicy = "keep"
    extra_digests: list[str] = Field(default_factory=list)
    quiet_period: float = Field(5.0, ge=0)
    rescan_interval: float = Field(60.0, gt=0)
    watch_polling: bool = False
    poll_interval: float = Field(2.0, gt=0)
    ignore_patterns: list[str] = Field(default_factory=list)
    lease_seconds: float = Field(60.0, gt=0)
    stale_after: float = Field(300.0, gt=0)
    reconcile_interval: float = Field(30.0, gt=0)
    # A worker retries a system fault (database, broker, store, missing program) this many times with
    # exponential back-off and jitter up to retry_backoff_max seconds, then marks the stage failed.
    task_max_retries: int = Field(10, ge=0)
    retry_backoff_max: float = Field(300.0, gt=0)
    copy_chunk_size: int = Field(1 << 20, ge=4096, le=64 << 20)
    worker_concurrency: int = Field(2, ge=1)
    # Where workers write their logs (a file per set of queues); relative paths are under home.
    log_dir: Path = Path("logs")
    # Scheduled fixity: every stored object is re-hashed at least this often (0: only on demand).
    fixity_interval_days: float = Field(30.0, ge=0)
    fixity_batch: int = Field(20, ge=1)
    actor: str = ""
    # The unit named at the head of supervision reports (EVIDENCE_UNIT_NAME).
    unit_name: str = ""
    # Metadata and deadlines
    timezone: str = "Asia/Shanghai"
    deadline_working_days: int = Field(3, ge=1, le=60)
    capture_day_counts: bool = False
    clock_drift_tolerance: float = Field(300.0, ge=0)
    site_calendar: Path = Path("config/calendars/site.toml")
    filename_patterns: Path = Path("config/filename_patterns.toml")
    devices: Path = Path("config/devices.toml")
    # Derivatives (access copies, thumbnails, preservation masters)
    transcode_profiles: Path = Path("config/transcode_profiles.toml")
    transcode_timeout: float = Field(3600.0, gt=0)
    # Processes a command spreads its files over (`ingest`, `probe`, `derive`; or `--jobs`), and the
    # probe and transcode workers `evidence serve` starts: empty for one per core.
    jobs: int | None = Field(None, ge=1)
    probe_concurrency: int | None = Field(None, ge=1)
    transcode_concurrency: int | None = Field(None, ge=1)
    # Disc packages
    package_media: Literal["cd", "dvd", "dvd-dl", "bd25", "bd50", "bd100"] = "dvd"
    package_margin: float = Field(0.03, ge=0, lt=0.5)
    # Web application: HOST:PORT it listens on (empty: `serve` starts none), how long a sign-in lasts
    # at most and unused, and whether its cookies may travel over plain http (development only).
    web_bind: str = "127.0.0.1:8000"
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    session_idle_minutes: float = Field(30.0, gt=0, le=24 * 60 * 30)
    web_insecure_cookies: bool = False
    # Group given the data folder (it and new folders in it are then group-readable): empty for none.
    data_group: str = ""
    # Resumable uploads (tus, /api/v1/uploads): the largest file taken, incomplete uploads one token
    # or account may hold at once, hours an incomplete upload may lie idle before it is removed, and
    # bytes of the disk kept free beyond what the uploads under way will still need.
    upload_max_bytes: int = Field(64 << 30, gt=0)
    upload_max_concurrent: int = Field(8, ge=1)
    upload_expiry_hours: float = Field(24.0, gt=0)
    upload_reserve_bytes: int = Field(1 << 30, ge=0)
    # Where originals are kept (EVIDENCE_STORE): the local store only, the local store and an S3
    # bucket, or the S3 bucket only; the S3 service's endpoint URL (empty: AWS), bucket, key pair and
    # region. The secret key is never shown (repr, logs, `settings` output).
    store: Literal["local", "local+s3", "s3"] = "local"
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    # Object Lock put on every original in S3: compliance (nobody, not even the bucket's owner, can
    # delete it or shorten its retention), governance (only accounts allowed to bypass it can), or
    # off; for this many days from its arrival. Parts of a multipart upload are this many bytes.
    s3_lock_mode: Literal["compliance", "governance", "off"] = "compliance"
    s3_retention_days: int = Field(3650, ge=0, le=36500)
    s3_part_size: int = Field(16 << 20, ge=5 << 20, le=5 << 30)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_defaults_file())
        env_file = os.environ.get("EVIDENCE_ENV_FILE")
        if not env_file:
            return (init_settings, env_settings, toml)
        if not os.path.isfile(env_file):
            raise InvalidValueError(f"EVIDENCE_ENV_FILE {env_file!r} is not a file")
        dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file, env_prefix="EVIDENCE_")
        return (init_settings, env_settings, dotenv, toml)

    @field_validator("extra_digests")
    @classmethod
    def _known_digests(cls, names: list[str]) -> list[str]:
        normalized = [name.lower() for name in names]
        unknown = [name for name in normalized if name not in hashlib.algorithms_available]
        if unknown:
            raise ValueError(f"digest(s) not offered by this Python's hashlib: {', '.join(unknown)}")
        return [name for name in dict.fromkeys(normalized) if name != "sha256"]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("web_bind")
    @classmethod
    def _host_and_port(cls, bind: str) -> str:
        bind = bind.strip()
        if bind and not _BIND.fullmatch(bind):
            raise ValueError(f"web_bind {bind!r} is not HOST:PORT (an IPv6 address in brackets: [::1]:8000)")
        if bind and not 0 <= int(bind.rpartition(":")[2]) <= 65535:
            raise ValueError(f"web_bind {bind!r}: the port must be 0 to 65535")
        return bind

    @field_validator("store", "s3_lock_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_url(cls, url: str) -> str:
        url = url.strip().rstrip("/")
        if url and not _ENDPOINT.fullmatch(url):
            raise ValueError(f"s3_endpoint {url!r} is not an http:// or https:// URL of a host (and port)")
        return url

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_name(cls, name: str) -> str:
        name = name.strip()
        if name and (not _BUCKET.fullmatch(name) or ".." in name):
            raise ValueError(
                f"s3_bucket {name!r} is not an S3 bucket name (3 to 63 lower-case letters, digits, dots and "
                "hyphens, starting and ending with a letter or digit)"
            )
        return name

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.store != "local":
            missing = [
                f"EVIDENCE_{name.upper()}"
                for name, value in (
                    ("s3_bucket", self.s3_bucket),
                    ("s3_access_key", self.s3_access_key),
                    ("s3_secret_key", self.s3_secret_key.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"store {self.store!r} keeps originals in S3 and needs {', '.join(missing)}")
            if self.s3_lock_mode != "off" and self.s3_retention_days < 1:
                raise ValueError(
                    f"s3_lock_mode {self.s3_lock_mode!r} needs s3_retention_days of at least 1 (or s3_lock_mode off)"
                )
        return self

    @field_validator("data_group")
    @classmethod
    def _known_group(cls, name: str) -> str:
        if name:
            import grp

            try:
                grp.getgrnam(name)
            except KeyError:
                raise ValueError(f"data_group {name!r}: no such group on this machine") from None
        return name

    @model_validator(mode="after")
    def _safe_outside_development(self) -> Settings:
        if self.environment == "production":
            problems = []
            if not self.home.is_absolute():
                problems.append("home must be an absolute path (a relative data directory follows the cwd)")
            if self.quiet_period < 1:
                problems.append("quiet_period below 1 s takes files that docks are still writing")
            if self.lease_seconds < 10:
                problems.append("lease_seconds below 10 s hands live intakes to a second worker")
            if self.web_insecure_cookies:
                problems.append("web_insecure_cookies sends sign-in cookies over plain http")
            if problems:
                raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    # Derived locations: one place decides the layout of the data directory.
    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().absolute()

    @property
    def inbox_dir(self) -> Path:
        return self.home_dir / "inbox"

    @property
    def processed_dir(self) -> Path:
        return self.home_dir / "processed"

    @property
    def quarantine_dir(self) -> Path:
        return self.home_dir / "quarantine"

    @property
    def store_dir(self) -> Path:
        return self.home_dir / "store"

    @property
    def packages_dir(self) -> Path:
        return self.home_dir / "packages"

    @property
    def uploads_dir(self) -> Path:
        return self.home_dir / "uploads"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / self.log_dir.expanduser()

    @property
    def queue_dir(self) -> Path:
        return self.home_dir / "queue"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'catalog.sqlite3'}"

    def config_file(self, path: Path) -> Path:
        """Config paths are relative to the project's folder unless absolute."""
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_actor(self) -> str:
        if self.actor:
            return self.actor
        try:
            import getpass

            return getpass.getuser()
        except (KeyError, OSError):
            return f"uid:{os.getuid()}"

    @property
    def web_address(self) -> tuple[str, int] | None:
        """``web_bind`` as host and port (an IPv6 host without brackets); None when it is empty."""
        if not self.web_bind:
            return None
        host, _, port = self.web_bind.rpartition(":")
        return host.strip("[]"), int(port)

    def ensure_dirs(self) -> None:
        """Make the data folder and its working folders, readable by this account (and by
        ``data_group``, when set) only: folders 0750 whatever the umask, the data folder itself
        set so however it was made (with the set-group-ID bit when ``data_group`` is set, so what
        is made inside belongs to that group)."""
        home = self.home_dir
        home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        mode = DIR_MODE
        if self.data_group:
            import grp

            gid = grp.getgrnam(self.data_group).gr_gid
            if home.stat().st_gid != gid:
                try:
                    os.chown(home, -1, gid)
                except PermissionError as exc:
                    raise InvalidValueError(
                        f"data_group {self.data_group!r}: {home} cannot be given to it ({exc.strerror}); "
                        "the pipeline's account must own the folder and belong to the group"
                    ) from exc
            mode |= stat.S_ISGID
        if stat.S_IMODE(home.stat().st_mode) != mode:
            home.chmod(mode)
        for directory in (self.inbox_dir, self.processed_dir, self.quarantine_dir, self.store_dir):
            private_dir(directory)


# Folders and files in the data folder: the pipeline's account reads and writes, its group (if any)
# reads, nobody else sees anything. Stored originals are read-only even for the pipeline.
DIR_MODE = 0o750
FILE_MODE = 0o640
_ENDPOINT = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BIND = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a folder of mode 0750 whatever the umask; a folder made
    here keeps the set-group-ID bit of its parent. A folder that exists is left as it is."""
    if not path.is_dir():
        private_dir(path.parent)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            return path
        inherited = path.parent.stat().st_mode & stat.S_ISGID
        path.chmod(DIR_MODE | inherited)
    return path


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
