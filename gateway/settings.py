"""One typed ``Settings`` object, read once from flags > environment (``IDEA24_*``) > TOML file.

Every error names the key and what a valid value looks like; the repr masks secrets (arq's
``RedisSettings`` prints the password: we do not).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from backend.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///idea24.db"
DEV_API_KEY = "idea24-dev-key"
DEV_SECRET_KEY = "idea24-dev-secret-change-me"  # noqa: S105 - documented dev default, warned at start


#: ``--smsc`` URL schemes and their default ports (3550: the usual SMPP-over-TLS port).
SMSC_SCHEMES: Mapping[str, int] = {"smpp": 2775, "smpps": 3550}
TLS_OPTIONS = ("ca", "cert", "key")


@dataclass(frozen=True, slots=True)
class SmscProfile:
    """One SMPP bind: where, who, and how this SMSC wants messages shaped.

    Parsed from ``smpp://ID:PASSWORD@HOST:PORT?option=value&...`` (or ``smpps://`` for SMPP over
    TLS, default port 3550, with ``ca``, ``cert`` and ``key`` files); options: ``system_type``,
    ``bind`` (``trx`` or ``tx+rx``), ``window``, ``rate`` (parts/s, 0 = unlimited),
    ``source_addr``, ``source_ton``, ``source_npi``, ``dest_ton``, ``dest_npi``, ``address_range``,
    ``long`` (``udh``, ``udh16``, ``sar``, ``payload``), ``ussd`` (``tlv``), ``enquire_link``
    (seconds), ``response_timeout`` (seconds), ``receipts`` (0/1); with ``serve --workers N``:
    ``binds_per_worker`` (1: every worker opens this bind; 0: the binds are spread over the
    workers) and ``max_binds`` (the binds the SMSC account allows, 0 = not stated; more is
    refused at start).
    """

    system_id: str
    password: str
    host: str
    port: int
    system_type: str = ""
    bind: str = "trx"
    window: int = 10
    rate: float = 0.0
    source_addr: str = ""
    source_ton: int = 0
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    address_range: str = ""
    long: str = "udh"
    ussd: str = "tlv"
    enquire_link: float = 30.0
    response_timeout: float = 10.0
    receipts: bool = True
    binds_per_worker: bool = False
    max_binds: int = 0
    #: SMPP over TLS (``smpps://``): the server verified against ``ca`` (empty: the system
    #: store), ``cert``/``key`` presented for mutual TLS; the files are read on every connect.
    tls: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""

    def __repr__(self) -> str:
        return f"SmscProfile({self.url}, bind={self.bind})"

    @property
    def url(self) -> str:
        """Where this bind goes, password masked: ``smpps://ID:***@HOST:PORT``."""
        return f"{self.scheme}://{self.system_id}:***@{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "smpps" if self.tls else "smpp"

    @property
    def name(self) -> str:
        return f"{self.system_id}@{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, key: str = "--smsc") -> SmscProfile:
        parts = urlsplit(url)
        if parts.scheme not in SMSC_SCHEMES or not parts.hostname or parts.username is None:
            raise ConfigError(
                f"{key}: expected smpp://ID:PASSWORD@HOST:PORT (or smpps://…?ca=FILE for TLS),"
                f" got {mask_url(url)!r}"
            )
        tls = parts.scheme == "smpps"
        try:
            port = parts.port or SMSC_SCHEMES[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"{key}: bad port in {mask_url(url)!r}") from exc
        values: dict[str, Any] = {
            "system_id": unquote(parts.username),
            "password": unquote(parts.password or ""),
            "host": parts.hostname,
            "port": port,
            "tls": tls,
        }
        types = {f.name: f.type for f in fields(cls)}
        for name, (raw, *_) in parse_qs(parts.query, keep_blank_values=True).items():
            if name not in types or name in values:
                raise ConfigError(f"{key}: unknown option {name!r} in {mask_url(url)!r}")
            if name in TLS_OPTIONS and not tls:
                raise ConfigError(f"{key} {name}: a TLS option; use smpps:// to connect over TLS")
            values[name] = _convert(f"{key} {name}", raw, str(types[name]))
        if values.get("key") and not values.get("cert"):
            raise ConfigError(f"{key} key: set together with cert (mutual TLS needs both)")
        if values.get("bind", "trx") not in ("trx", "tx+rx"):
            raise ConfigError(f"{key} bind: expected 'trx' or 'tx+rx'")
        if values.get("long", "udh") not in ("udh", "udh16", "sar", "payload"):
            raise ConfigError(f"{key} long: expected udh, udh16, sar or payload")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    smsc: tuple[SmscProfile, ...] = ()
    http_host: str = "127.0.0.1"
    http_port: int = 8024
    api_key: str = DEV_API_KEY
    #: Key of ``POST /api/v1/ussd`` (None: the API key); see gateway/web/access.py.
    ussd_api_key: str | None = None
    #: Networks that may call ``POST /api/v1/ussd`` (empty: any, given the key).
    ussd_allow: tuple[str, ...] = ()
    #: Allows the bundled simulator and ``/phone`` on a non-loopback address.
    lab: bool = False
    secret_key: str = DEV_SECRET_KEY
    short_code: str = "2424"
    ussd_code: str = "*100#"
    language: str = "pl"
    #: How text that GSM-7 cannot carry is sent: "auto" (Polish letters when they cost no more
    #: parts), "ucs2" or "transliterate" (ą→a, ł→l...); SMS and USSD alike.
    encoding: str = "auto"
    ussd_timeout: float = 120.0
    #: Portal password requests per minute across all numbers (each sends an SMS).
    password_rate: int = 600
    #: Wrong subscriber codes per minute across all subscribers before HTTP checks are refused.
    code_guess_limit: int = 30
    #: HTTP: open connections at most (kept below the open-file limit), seconds a new connection
    #: has to send its first request's headers, seconds a kept-alive connection may stay idle.
    http_max_connections: int = 1000
    http_header_timeout: float = 10.0
    http_idle_timeout: float = 15.0
    #: Seconds replies may wait in the outbox with none leaving before /healthz says 503.
    outbox_stall: float = 60.0
    sms_dialog_timeout: float = 300.0
    simulator_smpp_host: str = "127.0.0.1"
    simulator_smpp_port: int = 2775
    simulator_http_port: int = 8025
    #: HTTPS for the API, /healthz, /metrics and /phone (PEM files; empty: plain HTTP).
    tls_cert: str = ""
    tls_key: str = ""
    #: The bundled simulator's SMPP over TLS: its certificate and key (empty: clear text), and
    #: the CA the gateway trusts for it (empty: the certificate itself, when self-signed).
    simulator_tls_cert: str = ""
    simulator_tls_key: str = ""
    simulator_tls_ca: str = ""
    seed_demo: bool = True
    log_format: str = "auto"
    log_level: str = "INFO"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("api_key", "ussd_api_key", "secret_key", "extra")
        }
        shown["database_url"] = mask_url(self.database_url)
        shown["redis_url"] = mask_url(self.redis_url) if self.redis_url else None
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"Settings({inner}, api_key='***', ussd_api_key='***', secret_key='***')"

    @property
    def https(self) -> bool:
        return bool(self.tls_cert)

    @property
    def uses_simulator(self) -> bool:
        return not self.smsc

    @property
    def ussd_key(self) -> str:
        """The key USSD over HTTP checks: ``IDEA24_USSD_API_KEY``, else ``IDEA24_API_KEY``."""
        return self.ussd_api_key or self.api_key

    @property
    def ussd_key_published(self) -> bool:
        """The key USSD over HTTP checks is the published development key (it proves nothing)."""
        return self.ussd_key == DEV_API_KEY

    @property
    def dev_secrets(self) -> bool:
        return self.api_key == DEV_API_KEY or self.secret_key == DEV_SECRET_KEY


ENV_KEYS: Mapping[str, str] = {
    "IDEA24_DATABASE_URL": "database_url",
    "IDEA24_REDIS_URL": "redis_url",
    "IDEA24_SMSC": "smsc",
    "IDEA24_HTTP": "http",
    "IDEA24_API_KEY": "api_key",
    "IDEA24_USSD_API_KEY": "ussd_api_key",
    "IDEA24_USSD_ALLOW": "ussd_allow",
    "IDEA24_SECRET_KEY": "secret_key",
    "IDEA24_SHORT_CODE": "short_code",
    "IDEA24_USSD_CODE": "ussd_code",
    "IDEA24_LANGUAGE": "language",
    "IDEA24_ENCODING": "encoding",
    "IDEA24_OUTBOX_STALL": "outbox_stall",
    "IDEA24_HTTP_MAX_CONNECTIONS": "http_max_connections",
    "IDEA24_HTTP_HEADER_TIMEOUT": "http_header_timeout",
    "IDEA24_HTTP_IDLE_TIMEOUT": "http_idle_timeout",
    "IDEA24_PASSWORD_RATE": "password_rate",
    "IDEA24_CODE_GUESS_LIMIT": "code_guess_limit",
    "IDEA24_LOG_FORMAT": "log_format",
    "IDEA24_LOG_LEVEL": "log_level",
    "IDEA24_TLS_CERT": "tls_cert",
    "IDEA24_TLS_KEY": "tls_key",
}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Merge TOML file < environment < flags into one validated :class:`Settings`.

    ``flags`` uses the field names (``None`` values are ignored); ``smsc`` may be a list of URLs
    and ``http`` a ``host:port`` string.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, tuple[str, Any]] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"--config: file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from exc
        for name, value in data.items():
            merged[name] = (f"{path}: {name}", value)
    for env, name in ENV_KEYS.items():
        if environ.get(env):
            merged[name] = (env, environ[env])
    for name, value in (flags or {}).items():
        if value is not None and value != [] and value != ():
            merged[name] = (f"--{name.replace('_', '-')}", value)
    return _build(merged)


def _build(merged: Mapping[str, tuple[str, Any]]) -> Settings:
    values: dict[str, Any] = {}
    types = {f.name: str(f.type) for f in fields(Settings)}
    for name, (key, value) in merged.items():
        if name == "smsc":
            urls = [value] if isinstance(value, str) else list(value)
            urls = [u for raw in urls for u in str(raw).split(",") if u.strip()]
            values["smsc"] = tuple(SmscProfile.from_url(u.strip(), key) for u in urls)
        elif name == "http":
            host, _, port = str(value).rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"{key}: expected HOST:PORT such as 127.0.0.1:8024, got {value!r}"
                )
            values["http_host"], values["http_port"] = host, int(port)
        elif name == "ussd_allow":
            values["ussd_allow"] = parse_networks(key, value)
        elif name in types:
            values[name] = _convert(key, value, types[name])
        else:
            raise ConfigError(f"{key}: unknown setting {name!r}")
    if isinstance(values.get("database_url"), str):
        values["database_url"] = _async_driver(values["database_url"])
    settings = Settings(**values)
    _validate(settings)
    return settings


def parse_networks(key: str, value: Any) -> tuple[str, ...]:
    """``IDEA24_USSD_ALLOW``: CIDR networks or addresses, comma-separated (or a TOML list)."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in (part.strip() for item in items for part in str(item).split(",")):
        if not raw:
            continue
        try:
            out.append(str(ipaddress.ip_network(raw, strict=False)))
        except ValueError as exc:
            raise ConfigError(
                f"{key}: {raw!r} is not an address or network such as 10.0.0.0/8"
            ) from exc
    return tuple(out)


def _async_driver(url: str) -> str:
    """``postgresql://…`` and ``sqlite:///…`` (what operators write) name the async driver
    the server uses; anything else is left for :func:`_validate` to refuse."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _validate(s: Settings) -> None:
    if not s.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "IDEA24_DATABASE_URL: expected sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
            f" (or their +aiosqlite / +asyncpg forms), got {mask_url(s.database_url)!r}"
        )
    if s.redis_url:
        from fsm.redis_connect import is_redis_url, parse_sentinel

        if not is_redis_url(s.redis_url):
            raise ConfigError(
                "IDEA24_REDIS_URL: expected redis://HOST:PORT/DB or"
                f" redis+sentinel://HOST:PORT,HOST:PORT/SERVICE/DB, got {mask_url(s.redis_url)!r}"
            )
        parse_sentinel(s.redis_url)
    if s.language not in ("pl", "en"):
        raise ConfigError(f"IDEA24_LANGUAGE: expected pl or en, got {s.language!r}")
    if s.encoding not in ("auto", "ucs2", "transliterate"):
        raise ConfigError(
            f"IDEA24_ENCODING: expected auto, ucs2 or transliterate, got {s.encoding!r}"
        )
    if s.password_rate < 1 or s.code_guess_limit < 1:
        raise ConfigError(
            "IDEA24_PASSWORD_RATE / IDEA24_CODE_GUESS_LIMIT: 1 or more per minute, got"
            f" {s.password_rate} / {s.code_guess_limit}"
        )
    if s.http_max_connections < 1 or s.http_header_timeout <= 0 or s.http_idle_timeout <= 0:
        raise ConfigError(
            "IDEA24_HTTP_MAX_CONNECTIONS / IDEA24_HTTP_HEADER_TIMEOUT / IDEA24_HTTP_IDLE_TIMEOUT:"
            " above 0"
        )
    if s.outbox_stall <= 0:
        raise ConfigError(f"IDEA24_OUTBOX_STALL: seconds above 0, got {s.outbox_stall:g}")
    if not (0 <= s.http_port < 65536):
        raise ConfigError(f"IDEA24_HTTP: port {s.http_port} out of range")
    if not s.ussd_code.startswith("*") or not s.ussd_code.endswith("#"):
        raise ConfigError(f"IDEA24_USSD_CODE: expected a code like *100#, got {s.ussd_code!r}")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError("IDEA24_TLS_CERT / IDEA24_TLS_KEY (--tls-cert, --tls-key): set both")
    if bool(s.simulator_tls_cert) != bool(s.simulator_tls_key):
        raise ConfigError("--simulator-tls-cert / --simulator-tls-key: set both")
    exposed = lab_exposure(s)
    if exposed and not s.lab:
        raise ConfigError(
            f"--lab: the bundled simulator and /phone (every SMS, passwords included, and MO for"
            f" any number) would listen on {exposed}, not loopback; pass --lab on a lab network,"
            " or set --smsc for a real SMSC"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name (or 0.0.0.0 / ::): reachable from elsewhere as far as we know


def lab_exposure(s: Settings) -> str | None:
    """The non-loopback address the bundled simulator or ``/phone`` would be served on, if any."""
    if not s.uses_simulator:
        return None
    for host in (s.http_host, s.simulator_smpp_host):
        if not is_loopback(host):
            return host
    return None


def _convert(key: str, value: Any, type_name: str) -> Any:
    try:
        if "bool" in type_name:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return text in ("1", "true", "yes", "on")
        if "int" in type_name and "str" not in type_name:
            return int(value)
        if "float" in type_name:
            return float(value)
        return value if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {value!r} is not a valid {type_name}") from exc


def mask_url(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
