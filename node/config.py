"""A node's configuration: `node.toml`, as `ewx pki init` writes it.

Example (paths relative to the folder holding the TOML file)::

    node_id = "KR"
    listen = "127.0.0.1:7401"
    data_dir = "data"
    trust_file = "../federation.json"
    [tls]
    certificate = "tls/node.pem"
    private_key = "tls/node.key"
    [keys]
    alert = "keys/alert.key"
    log = "keys/log.key"
    witness = "keys/witness.key"
    [peers.US]
    address = "127.0.0.1:7402"
    [peers.JP]
    address = "127.0.0.1:7403"

Optional keys, with their defaults: `operator_socket` (data_dir/operator.sock),
`checkpoint_interval_seconds` (1.0), `outbox_retry_max_seconds` (30.0), the
operational limits below, and the `[ews]` table of the early-warning rules'
thresholds (node/ews/thresholds.py).

Limits (node/limits.py holds every default; the bounds an operator may set
them within are here, in the fields below). Each is checked at load; a
value outside its bounds is a ConfigError naming the key.

| key | default | bounds | what it bounds |
|---|---|---|---|
| `max_clock_skew_seconds` | 300 | 0-86400 | how far in the future a received alert's sent time may be |
| `peer_rate_per_second` | 2000 | >0-1e6 | sustained calls a second per peer (RESOURCE_EXHAUSTED beyond) |
| `peer_burst` | 4000 | 1-10^7 | calls a peer may make at once after a quiet spell |
| `peer_max_concurrent_calls` | 64 | 1-10000 | calls (unary or stream) one peer may have in flight |
| `peer_max_concurrent_streams` | 4 | 1-1000, <= calls | CatchUp and DeliverStream streams one peer may hold open |
| `stream_max_seconds` | 30 | 0.1-3600 | longest a CatchUp stream may stay open; then cancelled |
| `stream_stall_seconds` | 10 | 0.1-3600 | longest one streamed message may wait for the client to read it |
| `catchup_page_served` | 1000 | 1-1000 | most alerts one CatchUp call streams to a peer |
| `catchup_page_requested` | 1000 | 1-1000 | most alerts this node asks a peer for in one CatchUp call |
| `rpc_deadline_seconds` | 10 | 0.1-300 | deadline on every call this node makes to a peer |
| `delivery_window` | 2048 | 1-4096 | own alerts in flight to one peer on a DeliverStream; 1: one Deliver at a time |
| `peer_unhealthy_after_seconds` | 30 | 0.1-86400 | how long a peer may be unreachable before its health name is NOT_SERVING |

Operations: `metrics_listen` (`host:port`, unset: no metrics endpoint) serves
Prometheus metrics over plain HTTP, so it belongs on a local or management
address; `grpc_reflection` (default false) adds gRPC server reflection to the
federation port for grpcurl.

The federation limits (envelope 8 KiB, field sizes and counts, expiry
window; node.limits.FEDERATION_LIMITS) are not settings: a node that
refused an alert the SPEC allows would stall that origin's gapless
sequence, and one that accepted more would take what its peers refuse.
Naming one of them in node.toml is refused with its fixed value.

`NodeConfig.load` checks the file alone; `load_trust` then checks it against
the trust file (this node is a member, and its peers are exactly the other
members). Every problem is a ConfigError naming the file and the key.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, get_args

from cryptography import x509
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from node.crypto import KEY_PURPOSES, KeyPurpose, Signer
from node.errors import ConfigError
from node.ews.thresholds import Thresholds
from node.files import read_bounded
from node.ids import COUNTRIES, Country
from node.limits import (
    DELIVERY_WINDOW,
    FEDERATION_LIMITS,
    MAX_CATCHUP_PAGE,
    MAX_CLOCK_SKEW,
    MAX_DELIVERY_WINDOW,
    MAX_RPC_DEADLINE_SECONDS,
    MAX_STREAM_SECONDS,
    MIN_DURATION_SECONDS,
    PEER_BURST,
    PEER_MAX_CONCURRENT_CALLS,
    PEER_MAX_CONCURRENT_STREAMS,
    PEER_RATE_PER_SECOND,
    PEER_UNHEALTHY_AFTER_SECONDS,
    RPC_DEADLINE_SECONDS,
    STREAM_MAX_SECONDS,
    STREAM_STALL_SECONDS,
    UNIX_SOCKET_PATH_MAX,
)
from node.pki import check_node_tls, load_ed25519_private_key, read_private_key_pem
from node.situation.settings import DEFAULT_ACK_DEADLINE_MINUTES, check_deadline_minutes
from node.store.settings import STORE_FILE, check_postgres_url, redact
from node.trust import Trust, describe_validation_error, log_origin

BASE_DIR_CONTEXT: Final = "base_dir"
"""Validation context key: the folder relative paths are resolved against."""
SOURCE_CONTEXT: Final = "source"
"""Validation context key: the file the config came from, for messages."""

ENV_PREFIX: Final = "EWX_"
"""Environment variables `EWX_<FIELD>` override node.toml's fields (`EWX_TLS__CERTIFICATE`: a
nested key; `EWX_CONFIG` names the file itself and is no field)."""
ENV_NESTED_DELIMITER: Final = "__"

MAX_CONFIG_FILE_BYTES: Final = 1024 * 1024
MAX_CERTIFICATE_FILE_BYTES: Final = 256 * 1024


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve a relative path against the config file's folder.

    Against the file's folder, not the working directory: a node started by
    a service manager from `/` must find the same files as one started by hand.
    Without a base (a model built in code) paths are kept as given.
    """
    context = info.context
    if isinstance(context, dict):
        base = context.get(BASE_DIR_CONTEXT)
        if isinstance(base, Path):
            return (base / value).resolve()
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path in node.toml: relative paths are taken from the file's folder."""


def split_address(address: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Split `host:port` (or `[v6]:port`) into host and port, or raise ValueError.

    Port 0 (an ephemeral port, for tests) is allowed only where the node
    listens, never for a peer it must reach.
    """
    host, separator, port_text = address.rpartition(":")
    if not separator or not host:
        raise ValueError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if not inner or "[" in inner or "]" in inner:
            raise ValueError(f"address {address!r} has an empty or malformed IPv6 host")
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"address {address!r}: write an IPv6 host in brackets, as [::1]:7401")
    if any(character.isspace() or character == "/" for character in host):
        raise ValueError(f"address {address!r} has an invalid host")
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"address {address!r} has no numeric port")
    port = int(port_text)
    lowest = 0 if allow_port_zero else 1
    if not lowest <= port <= 65535:
        raise ValueError(f"address {address!r}: port must be {lowest}-65535")
    return host, port


class TlsConfig(BaseModel):
    """The node's TLS identity, issued by its national CA."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    certificate: ConfigPath
    """PEM node certificate (URI SAN urn:ewx:node:<CC>), issued by this country's CA."""

    private_key: ConfigPath
    """PEM private key of the node certificate; must be mode 0600 or stricter."""


class KeysConfig(BaseModel):
    """The node's Ed25519 signing keys, one per purpose; each file mode 0600."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert: ConfigPath
    """Signs this node's alerts and the receipts it returns."""

    log: ConfigPath
    """Signs this node's exchange-log checkpoints."""

    witness: ConfigPath
    """Cosigns the peers' checkpoints."""

    def path_for(self, purpose: KeyPurpose) -> Path:
        """The key file for `purpose`."""
        paths: dict[KeyPurpose, Path] = {"alert": self.alert, "log": self.log, "witness": self.witness}
        return paths[purpose]


class PeerConfig(BaseModel):
    """How to reach one peer; who it is comes from its certificate, not from here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    """`host:port` of the peer's gateway."""

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        split_address(value)
        return value


class StoreConfig(BaseModel):
    """The `[store]` table: the node's store on a PostgreSQL server instead of the SQLite
    file in `data_dir` (the default when the table is absent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    """libpq URL of the node's own database, `postgresql://USER@HOST:PORT/DB` (a unix socket:
    `?host=/run/postgresql`); never with a password in it (refused)."""

    password_file: ConfigPath | None = None
    """File whose first line is the password; else EWX_STORE_PASSWORD, else libpq's own
    (~/.pgpass, PGPASSFILE, peer authentication)."""

    lease_poll_seconds: float = Field(default=1.0, ge=0.05, le=60, strict=True)
    """How often a standby asks for the store's lease, and how often the active checks it still
    holds it (a lost lease stops the node: another process may be writing now)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            return check_postgres_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """The node's TLS certificate chain and private key, as PEM bytes for gRPC."""

    certificate_chain: bytes
    private_key: bytes


class NodeConfig(BaseModel):
    """One national node's configuration (`node.toml`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: Country
    """This node's country. It must match the URI SAN of `tls.certificate`,
    since peers take the node id from the certificate, not from here."""

    listen: str
    """`host:port` the gateway listens on for peers (port 0: any free port)."""

    data_dir: ConfigPath
    """Folder of the node's store and exchange log."""

    trust_file: ConfigPath
    """The federation trust file (federation.json)."""

    tls: TlsConfig
    """The node's TLS certificate and key."""

    keys: KeysConfig
    """The node's signing key files."""

    peers: dict[Country, PeerConfig]
    """Every other member of the federation, by country; exactly the trust
    file's other members (checked by `load_trust`)."""

    operator_socket: ConfigPath
    """Unix socket of the local operator API; default `data_dir/operator.sock`."""

    checkpoint_interval_seconds: float = Field(default=1.0, gt=0, le=3600, strict=True)
    """Longest time between signed checkpoints while the log grows."""

    max_clock_skew_seconds: float = Field(default=MAX_CLOCK_SKEW.total_seconds(), ge=0, le=86400, strict=True)
    """How far in the future a received alert's sent time may be."""

    outbox_retry_max_seconds: float = Field(default=30.0, gt=0, le=86400, strict=True)
    """Cap of the exponential back-off between delivery attempts to a peer."""

    peer_rate_per_second: float = Field(default=PEER_RATE_PER_SECOND, gt=0, le=1e6, strict=True)
    """Sustained calls a second one peer may make; beyond it, RESOURCE_EXHAUSTED."""

    peer_burst: int = Field(default=PEER_BURST, ge=1, le=10**7, strict=True)
    """Calls one peer may make at once after a quiet spell (token bucket size)."""

    peer_max_concurrent_calls: int = Field(default=PEER_MAX_CONCURRENT_CALLS, ge=1, le=10_000, strict=True)
    """Calls one peer may have in flight at once; more are refused, not queued."""

    peer_max_concurrent_streams: int = Field(default=PEER_MAX_CONCURRENT_STREAMS, ge=1, le=1000, strict=True)
    """CatchUp streams one peer may hold open at once (each is also a call in
    flight, so at most `peer_max_concurrent_calls`); more are refused."""

    stream_max_seconds: float = Field(
        default=STREAM_MAX_SECONDS, ge=MIN_DURATION_SECONDS, le=MAX_STREAM_SECONDS, strict=True
    )
    """Longest a CatchUp stream may stay open; then it is cancelled (DEADLINE_EXCEEDED).
    Keep it above the peers' `rpc_deadline_seconds`."""

    stream_stall_seconds: float = Field(
        default=STREAM_STALL_SECONDS, ge=MIN_DURATION_SECONDS, le=MAX_STREAM_SECONDS, strict=True
    )
    """Longest one streamed message may wait for the client to read it; a
    client that stops reading is cancelled then (DEADLINE_EXCEEDED)."""

    catchup_page_served: int = Field(default=MAX_CATCHUP_PAGE, ge=1, le=MAX_CATCHUP_PAGE, strict=True)
    """Most alerts one CatchUp call streams to a peer, whatever it asks for."""

    catchup_page_requested: int = Field(default=MAX_CATCHUP_PAGE, ge=1, le=MAX_CATCHUP_PAGE, strict=True)
    """Most alerts this node asks a peer for in one CatchUp call (one commit per page)."""

    rpc_deadline_seconds: float = Field(
        default=RPC_DEADLINE_SECONDS, ge=MIN_DURATION_SECONDS, le=MAX_RPC_DEADLINE_SECONDS, strict=True
    )
    """Deadline on every call this node makes to a peer."""

    delivery_window: int = Field(default=DELIVERY_WINDOW, ge=1, le=MAX_DELIVERY_WINDOW, strict=True)
    """Own alerts kept in flight to one peer on a DeliverStream before waiting for their
    receipts; 1 sends one Deliver at a time (as a node did before DeliverStream)."""

    metrics_listen: str | None = Field(default=None, min_length=1, max_length=256)
    """`host:port` of the Prometheus metrics endpoint (HTTP, plain text); none when unset.
    Keep it on a local or management address: it is not authenticated."""

    peer_unhealthy_after_seconds: float = Field(
        default=PEER_UNHEALTHY_AFTER_SECONDS, ge=MIN_DURATION_SECONDS, le=86400, strict=True
    )
    """A peer unreachable this long is NOT_SERVING under its name in the gRPC health service."""

    grpc_reflection: bool = False
    """Serve gRPC server reflection on the federation port (for grpcurl); off unless the operator asks."""

    store: StoreConfig | None = None
    """The `[store]` table: PostgreSQL instead of the SQLite file `data_dir/ewx.sqlite3`."""

    ews: Thresholds = Field(default_factory=Thresholds)
    """The `[ews]` table: the early-warning rules' thresholds (node/ews/thresholds.py)."""

    ack_deadline_minutes: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ACK_DEADLINE_MINUTES))
    """The `[ack_deadline_minutes]` table: minutes a recipient has to acknowledge an alert, per
    severity (EXTREME = 15); a severity left out has no deadline (node/situation/deadlines.py)."""

    @field_validator("ack_deadline_minutes", mode="before")
    @classmethod
    def _check_ack_deadlines(cls, value: Any) -> Any:
        return check_deadline_minutes(value) if isinstance(value, dict) else value

    # The file this config came from, for error messages (None if built in code).
    _source: Path | None = PrivateAttr(default=None)

    @property
    def log_origin(self) -> str:
        """Origin line of this node's checkpoints; fixed per country (node/trust/_identity.py)."""
        return log_origin(self.node_id)

    @model_validator(mode="before")
    @classmethod
    def _fill_derived_defaults(cls, data: Any) -> Any:
        """Defaults that depend on other keys: the operator socket, and the streams
        per peer (never more than the calls per peer: every stream is a call).

        When the key they derive from is itself missing or of the wrong type,
        a placeholder stands in: validation then fails on that key, which is
        the one the operator has to fix, not on the derived one.
        """
        if not isinstance(data, dict):
            return data
        fixed = sorted(key for key in data if key in FEDERATION_LIMITS)
        if fixed:
            raise ValueError(
                "; ".join(
                    f"{key}: a federation limit, fixed at {FEDERATION_LIMITS[key]} for every node "
                    "(node/limits.py), not a setting"
                    for key in fixed
                )
            )
        filled = dict(data)
        if "operator_socket" not in filled:
            data_dir = filled.get("data_dir")
            base = Path(data_dir) if isinstance(data_dir, str | Path) else Path()
            filled["operator_socket"] = base / "operator.sock"
        calls = filled.get("peer_max_concurrent_calls")
        if "peer_max_concurrent_streams" not in filled and isinstance(calls, int) and calls >= 1:
            filled["peer_max_concurrent_streams"] = min(PEER_MAX_CONCURRENT_STREAMS, calls)
        return filled

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_address(value, allow_port_zero=True)
        return value

    @model_validator(mode="after")
    def _check_peers_and_note_source(self, info: ValidationInfo) -> NodeConfig:
        if self.node_id in self.peers:
            raise ValueError(f"peers: {self.node_id} is this node (node_id) and cannot be its own peer")
        if self.peer_max_concurrent_streams > self.peer_max_concurrent_calls:
            raise ValueError(
                f"peer_max_concurrent_streams: {self.peer_max_concurrent_streams} is more than "
                f"peer_max_concurrent_calls ({self.peer_max_concurrent_calls}); every stream is also a call"
            )
        for what, path in (("operator_socket", self.operator_socket), ("health socket", self.health_socket)):
            if len(os.fsencode(path)) > UNIX_SOCKET_PATH_MAX:
                raise ValueError(
                    f"{what}: {path} is {len(os.fsencode(path))} bytes long; a unix socket's path holds "
                    f"at most {UNIX_SOCKET_PATH_MAX}: set operator_socket to a shorter path "
                    "(or move data_dir)"
                )
        if isinstance(info.context, dict):
            source = info.context.get(SOURCE_CONTEXT)
            if isinstance(source, Path):
                self._source = source
        return self

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: Path, *, environ: Mapping[str, str] | None = None) -> NodeConfig:
        """Read and validate a node.toml, with `EWX_` variables of `environ` (default: the
        process's environment) overriding its fields; relative paths, from the file or the
        environment, resolve against the file's folder.

        Raises ConfigError naming the file and the offending key on any problem:
        missing or unreadable file, bad TOML, unknown keys, wrong types, bad values.
        """
        raw = read_bounded(path, MAX_CONFIG_FILE_BYTES, what="config file", error=ConfigError)
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
        if not isinstance(document, dict):  # tomllib gives a table; kept for the type checker
            raise ConfigError(f"config file {path}: not a TOML table")
        environ = os.environ if environ is None else environ
        overrides = environment_overrides(environ)
        try:
            config = cls.model_validate(
                _merged(document, overrides),
                context={BASE_DIR_CONTEXT: path.absolute().parent, SOURCE_CONTEXT: path},
            )
        except ValidationError as exc:
            raise ConfigError(
                f"config file {path}: {describe_validation_error(exc)}{_from_environment(exc, environ)}"
            ) from None
        return config

    @property
    def store_place(self) -> str:
        """Where the store is, for messages: the SQLite file's path, or the PostgreSQL URL."""
        return str(self.data_dir / STORE_FILE) if self.store is None else self.store.url

    @property
    def health_socket(self) -> Path:
        """The unix socket (0600, beside the operator socket) where the gRPC health service is
        served locally, for `ewx health` and a container HEALTHCHECK that hold no peer certificate."""
        return self.operator_socket.parent / "health.sock"

    @property
    def peer_countries(self) -> tuple[Country, ...]:
        """The configured peers, in the federation's fixed order."""
        return tuple(country for country in COUNTRIES if country in self.peers)

    def _where(self) -> str:
        return f"config file {self._source}" if self._source is not None else "node configuration"

    def check_trust(self, trust: Trust) -> None:
        """Check this config against `trust`: node_id is a member, peers are the others.

        Raises ConfigError naming both files.
        """
        if self.node_id not in trust.members:
            raise ConfigError(
                f"{self._where()}: node_id {self.node_id} is not a member of federation "
                f"{trust.federation} in trust file {self.trust_file}"
            )
        expected = {country for country in trust.countries if country != self.node_id}
        if set(self.peers) != expected:
            raise ConfigError(
                f"{self._where()}: peers ({', '.join(self.peer_countries) or 'none'}) must be exactly "
                f"the other members of trust file {self.trust_file} "
                f"({', '.join(c for c in trust.countries if c in expected) or 'none'})"
            )

    def load_trust(self) -> Trust:
        """Load the trust file and check this config against it (ConfigError on any problem)."""
        trust = Trust.load(self.trust_file)
        self.check_trust(trust)
        return trust

    def load_signers(self, trust: Trust | None = None) -> dict[KeyPurpose, Signer]:
        """Load the signing keys, each checked to be this node's key in the trust file.

        `trust` defaults to `load_trust()`. Raises ConfigError naming the key
        file when it is unreadable, too permissive, not Ed25519, or its public
        key is not listed for this node and purpose in the trust file.
        """
        if trust is None:
            trust = self.load_trust()
        return {purpose: self.load_signer(purpose, trust) for purpose in KEY_PURPOSES}

    def load_signer(self, purpose: KeyPurpose, trust: Trust) -> Signer:
        """One signing key, checked to be this node's key for `purpose` in `trust` (ConfigError if not)."""
        path = self.keys.path_for(purpose)
        signer = Signer.of(self.node_id, purpose, load_ed25519_private_key(path))
        entry = trust.key(signer.key_id)
        if entry is None or entry.owner != self.node_id or entry.purpose != purpose:
            raise ConfigError(
                f"key file {path}: its public key ({signer.key_id}) is not listed as the {purpose} key "
                f"of {self.node_id} in trust file {self.trust_file}"
            )
        return signer

    def tls_certificate(self) -> x509.Certificate:
        """The node's own TLS certificate (for its expiry in `ewx status`)."""
        data = read_bounded(
            self.tls.certificate, MAX_CERTIFICATE_FILE_BYTES, what="certificate file", error=ConfigError
        )
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise ConfigError(
                f"{self._where()}: cannot read tls.certificate {self.tls.certificate}: {exc}"
            ) from None

    def check_tls(self, credentials: TlsCredentials, trust: Trust, *, at: datetime) -> x509.Certificate:
        """node.pki.check_node_tls of this node's TLS files, as `ewx serve` and `ewx config check`
        run it: ConfigError naming tls.certificate (CertificateNotValidNow for the time alone)."""
        return check_node_tls(
            credentials.certificate_chain,
            credentials.private_key,
            node_id=self.node_id,
            trust=trust,
            at=at,
            where=f"tls.certificate {self.tls.certificate}",
        )

    def read_tls_credentials(self) -> TlsCredentials:
        """The TLS certificate and key bytes for gRPC; the key file's mode is checked.

        Raises ConfigError naming the file when either cannot be read or the
        key file is accessible by group or others.
        """
        certificate = read_bounded(
            self.tls.certificate, MAX_CERTIFICATE_FILE_BYTES, what="certificate file", error=ConfigError
        )
        return TlsCredentials(
            certificate_chain=certificate, private_key=read_private_key_pem(self.tls.private_key)
        )


# ---------------------------------------------------------------- environment overrides
_env_model: type[BaseSettings] | None = None


def _environment_model() -> type[BaseSettings]:
    """NodeConfig's fields as a pydantic-settings model, for its environment source only.

    pydantic-settings finds `EWX_<FIELD>` and `EWX_<TABLE>__<KEY>` and decodes JSON for
    tables; NodeConfig itself then validates the merged document, so a value from the
    environment meets exactly the checks a value in the file does.
    """
    global _env_model  # noqa: PLW0603 - built once, on first use
    if _env_model is None:
        from pydantic import create_model

        fields: dict[str, Any] = {name: (f.annotation, None) for name, f in NodeConfig.model_fields.items()}
        model = create_model("NodeEnvironment", __base__=BaseSettings, **fields)
        model.model_config.update(
            SettingsConfigDict(
                env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="ignore"
            )
        )
        _env_model = model
    return _env_model


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (tests give theirs)."""

    def __init__(self, model: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = {key.lower(): value for key, value in environ.items()}  # not case-sensitive
        super().__init__(model)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The node.toml fields that `EWX_` variables set, as a document to lay over the file's.

    A scalar's text is read as JSON when it parses (`2000`, `1.5`, `true`), else kept as
    text (paths, addresses); tables are JSON or `__`-nested keys. Country keys of
    `peers` are upper-cased (environment names are not case-sensitive).
    """
    source = _EnvironmentSource(_environment_model(), os.environ if environ is None else environ)
    found: dict[str, Any] = dict(source())
    for name, value in list(found.items()):
        if isinstance(value, str) and not _takes_text(NodeConfig.model_fields[name].annotation):
            try:
                decoded = json.loads(value)
            except ValueError:
                continue
            if not isinstance(decoded, str):
                found[name] = decoded
    if isinstance(found.get("peers"), dict):
        found["peers"] = {str(k).upper(): v for k, v in found["peers"].items()}
    return found


def _takes_text(annotation: Any) -> bool:
    """Whether a field's type admits text (str, a path): then an environment value stays text."""
    if annotation in (str, Path):
        return True
    return any(_takes_text(arg) for arg in get_args(annotation))


def _merged(document: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`document` with `overrides` laid over it, table by table."""
    merged = dict(document)
    for key, value in overrides.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _from_environment(exc: ValidationError, environ: Mapping[str, str]) -> str:
    """Which failing fields the environment set, with the text given there (short: numbers,
    paths and addresses, no key material, live in node.toml)."""
    given = {key.upper(): value for key, value in environ.items() if key.upper().startswith(ENV_PREFIX)}
    named = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"] if part != "[key]"]
        for end in range(len(loc), 0, -1):
            variable = ENV_PREFIX + ENV_NESTED_DELIMITER.join(loc[:end]).upper()
            if variable in given:
                # a store URL refused for holding a password must not echo it
                shown = redact(given[variable]) if loc[0] == "store" else given[variable]
                named.append(f"{variable}={shown[:80]!r}")
                break
    return f" (set by the environment: {', '.join(dict.fromkeys(named))})" if named else ""
