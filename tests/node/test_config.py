"""node.toml (node/config.py): defaults, path resolution, and each refusal."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.config import NodeConfig, split_address
from node.errors import ConfigError
from node.limits import MAX_CLOCK_SKEW, UNIX_SOCKET_PATH_MAX
from node.pki import init_federation, write_private_key

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
Document = dict[str, Any]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("config") / "fed"
    init_federation(root, now=NOW)
    return root


@pytest.fixture
def fed(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the federation (modes preserved) that a test may edit."""
    return Path(shutil.copytree(pristine, tmp_path / "fed"))


def _edit(fed: Path, change: Callable[[Document], object]) -> Path:
    path = fed / "KR" / "node.toml"
    document = tomllib.loads(path.read_text())
    change(document)
    path.write_text(tomli_w.dumps(document))
    return path


def _refused(path: Path, *fragments: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        NodeConfig.load(path)
    message = str(caught.value)
    assert message.startswith(f"config file {path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return caught.value


# ---------------------------------------------------------------- loading
def test_defaults(pristine: Path) -> None:
    config = NodeConfig.load(pristine / "KR" / "node.toml")
    assert config.node_id == "KR"
    assert config.operator_socket == config.data_dir / "operator.sock"
    assert config.log_origin == "ewx.kr.node/log"
    assert config.checkpoint_interval_seconds == 1.0
    assert config.max_clock_skew_seconds == MAX_CLOCK_SKEW.total_seconds()
    assert config.outbox_retry_max_seconds == 30.0
    assert config.peer_countries == ("US", "JP")
    assert config.ack_deadline_minutes == {"EXTREME": 15, "SEVERE": 60, "MODERATE": 1440}


def test_relative_paths_resolve_against_the_toml_folder(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # somewhere unrelated: the working directory must not matter
    config = NodeConfig.load(pristine / "KR" / "node.toml")
    kr = (pristine / "KR").resolve()
    assert config.data_dir == kr / "data"
    assert config.trust_file == pristine.resolve() / "federation.json"
    assert config.tls.certificate == kr / "tls" / "node.pem"
    assert config.tls.private_key == kr / "tls" / "node.key"
    assert config.keys.path_for("witness") == kr / "keys" / "witness.key"
    assert config.operator_socket == kr / "data" / "operator.sock"
    for path in (config.trust_file, config.tls.certificate, config.tls.private_key, config.keys.alert):
        assert path.is_absolute()
        assert path.is_file()


def test_optional_values_and_absolute_paths_are_taken_as_given(fed: Path, tmp_path: Path) -> None:
    socket = tmp_path / "op.sock"

    def change(document: Document) -> None:
        document.update(
            operator_socket=str(socket),
            checkpoint_interval_seconds=2,
            max_clock_skew_seconds=60.5,
            outbox_retry_max_seconds=5.0,
            data_dir="/var/lib/ewx",
        )

    config = NodeConfig.load(_edit(fed, change))
    assert config.operator_socket == socket
    assert config.data_dir == Path("/var/lib/ewx")
    assert config.log_origin == "ewx.kr.node/log"  # fixed per country, not configurable
    assert config.checkpoint_interval_seconds == 2.0
    assert config.max_clock_skew_seconds == 60.5
    assert config.outbox_retry_max_seconds == 5.0


def test_trust_and_tls_material_load(pristine: Path) -> None:
    config = NodeConfig.load(pristine / "US" / "node.toml")
    trust = config.load_trust()
    assert set(config.load_signers(trust)) == {"alert", "log", "witness"}
    credentials = config.read_tls_credentials()
    assert credentials.certificate_chain.startswith(b"-----BEGIN CERTIFICATE-----")
    assert credentials.private_key.startswith(b"-----BEGIN PRIVATE KEY-----")


# ---------------------------------------------------------------- refusals
def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"config file {tmp_path / 'absent.toml'}: cannot read it"):
        NodeConfig.load(tmp_path / "absent.toml")


def test_bad_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('node_id = "KR\n')
    _refused(path, "not valid TOML")
    path.write_bytes(b"\xff\xfe")
    _refused(path, "not UTF-8")


def test_unknown_key_is_refused(fed: Path) -> None:
    _refused(_edit(fed, lambda d: d.update(node_name="Korea")), "node_name: unknown key")
    _refused(_edit(fed, lambda d: d["tls"].update(ca="x")), "tls.ca: unknown key")
    _refused(_edit(fed, lambda d: d["peers"]["US"].update(id="US")), "peers.US.id: unknown key")


def test_missing_key_is_refused(fed: Path) -> None:
    _refused(_edit(fed, lambda d: d.pop("trust_file")), "trust_file: required key is missing")
    _refused(_edit(fed, lambda d: d["keys"].pop("log")), "keys.log: required key is missing")


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("node_id", lambda d: d.update(node_id="CN")),
        ("listen", lambda d: d.update(listen=7401)),
        ("listen", lambda d: d.update(listen="localhost")),
        ("data_dir", lambda d: d.update(data_dir=1)),
        ("tls.certificate", lambda d: d["tls"].update(certificate=5)),
        ("tls", lambda d: d.update(tls="tls/node.pem")),
        ("keys.alert", lambda d: d["keys"].update(alert=["keys/alert.key"])),
        ("peers.US.address", lambda d: d["peers"]["US"].update(address="127.0.0.1:http")),
        ("peers.US.address", lambda d: d["peers"]["US"].update(address="127.0.0.1:0")),
        ("peers.CN", lambda d: d["peers"].update(CN={"address": "127.0.0.1:1"})),
        ("checkpoint_interval_seconds", lambda d: d.update(checkpoint_interval_seconds="1")),
        ("checkpoint_interval_seconds", lambda d: d.update(checkpoint_interval_seconds=0)),
        ("max_clock_skew_seconds", lambda d: d.update(max_clock_skew_seconds=True)),
        ("outbox_retry_max_seconds", lambda d: d.update(outbox_retry_max_seconds=-1.0)),
        ("log_origin", lambda d: d.update(log_origin="example.org/ewx-kr")),  # no longer a setting
        ("operator_socket", lambda d: d.update(operator_socket=False)),
        ("ack_deadline_minutes", lambda d: d.update(ack_deadline_minutes={"URGENT": 5})),
        ("ack_deadline_minutes", lambda d: d.update(ack_deadline_minutes={"EXTREME": 0})),
        ("ack_deadline_minutes", lambda d: d.update(ack_deadline_minutes={"EXTREME": "15"})),
        ("ack_deadline_minutes", lambda d: d.update(ack_deadline_minutes=15)),
        ("delivery_window", lambda d: d.update(delivery_window=0)),
        ("delivery_window", lambda d: d.update(delivery_window=4097)),
        ("delivery_window", lambda d: d.update(delivery_window="512")),
    ],
)
def test_wrong_type_or_value_is_refused_naming_the_field(
    fed: Path, field: str, change: Callable[[Document], object]
) -> None:
    _refused(_edit(fed, change), f"{field}:")


def test_a_socket_path_longer_than_a_unix_socket_holds_is_refused_at_load(fed: Path) -> None:
    # Found when pytest-xdist's longer temp folders made the demo's data_dir
    # too deep: the node started, then died at bind with "AF_UNIX path too long".
    deep = "d" * (UNIX_SOCKET_PATH_MAX - len("/operator.sock") + 1)
    _refused(
        _edit(fed, lambda d: d.update(data_dir=f"/tmp/{deep}")),
        f"operator_socket: /tmp/{deep}/operator.sock is",
    )
    _refused(_edit(fed, lambda d: d.update(operator_socket=f"/{'s' * UNIX_SOCKET_PATH_MAX}")), "at most 107")
    fits = "/" + "s" * (UNIX_SOCKET_PATH_MAX - 1)
    assert len(fits) == UNIX_SOCKET_PATH_MAX
    NodeConfig.load(_edit(fed, lambda d: d.update(operator_socket=fits, data_dir="/tmp/short")))


def test_node_cannot_be_its_own_peer(fed: Path) -> None:
    path = _edit(fed, lambda d: d["peers"].update(KR={"address": "127.0.0.1:7401"}))
    _refused(path, "KR is this node (node_id) and cannot be its own peer")


def test_peers_must_be_exactly_the_other_trust_members(fed: Path) -> None:
    config = NodeConfig.load(_edit(fed, lambda d: d["peers"].pop("JP")))
    with pytest.raises(ConfigError, match=r"peers \(US\) must be exactly the other members .*\(US, JP\)"):
        config.load_trust()


def test_node_must_be_a_trust_member(fed: Path, tmp_path: Path) -> None:
    two = init_federation(tmp_path / "two", countries=("KR", "US"), now=NOW)
    config = NodeConfig.load(_edit(fed, lambda d: d.update(trust_file=str(two))))
    with pytest.raises(ConfigError, match=r"peers \(US, JP\) must be exactly .*\(US\)"):
        config.load_trust()
    jp = NodeConfig.load(fed / "JP" / "node.toml").model_copy(update={"trust_file": two})
    with pytest.raises(ConfigError, match="node_id JP is not a member of federation ewx-dev"):
        jp.load_trust()


def test_group_readable_signing_key_is_refused(fed: Path) -> None:
    key = fed / "KR" / "keys" / "alert.key"
    key.chmod(0o640)
    config = NodeConfig.load(fed / "KR" / "node.toml")
    with pytest.raises(ConfigError, match=rf"key file {key} is accessible by group or others \(mode 0640\)"):
        config.load_signers()


def test_world_readable_tls_key_is_refused(fed: Path) -> None:
    key = fed / "KR" / "tls" / "node.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=rf"key file {key} is accessible by group or others"):
        NodeConfig.load(fed / "KR" / "node.toml").read_tls_credentials()


def test_signing_key_not_in_trust_file_is_refused(fed: Path) -> None:
    key = fed / "KR" / "keys" / "log.key"
    key.unlink()
    write_private_key(key, Ed25519PrivateKey.generate())
    with pytest.raises(ConfigError, match=rf"key file {key}: .*not listed as the log key of KR"):
        NodeConfig.load(fed / "KR" / "node.toml").load_signers()


def test_signing_key_of_another_purpose_is_refused(fed: Path) -> None:
    # The alert key file configured as the log key: a real key, the wrong job.
    path = _edit(fed, lambda d: d["keys"].update(log="keys/alert.key"))
    with pytest.raises(ConfigError, match="not listed as the log key of KR"):
        NodeConfig.load(path).load_signers()


# ---------------------------------------------------------------- addresses
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:7401", ("127.0.0.1", 7401)),
        ("[::1]:1", ("[::1]", 1)),
        ("kr.node.ewx:65535", ("kr.node.ewx", 65535)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize(
    "address", ["", "7401", ":7401", "host:", "host:65536", "::1:7401", "[]:1", "a b:1", "host:+1", "host:0"]
)
def test_split_address_refuses(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        split_address(address)


def test_port_zero_only_for_listen() -> None:
    assert split_address("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)


# ---------------------------------------------------------------- EWX_ environment overrides (issue 14, item 4)
def test_environment_variables_override_the_file(fed: Path) -> None:
    path = fed / "KR" / "node.toml"
    environ = {
        "EWX_PEER_RATE_PER_SECOND": "12.5",
        "EWX_GRPC_REFLECTION": "true",
        "EWX_TLS__CERTIFICATE": "tls/other.pem",  # relative: against the file's folder, as in the file
        "EWX_PEERS__US__ADDRESS": "127.0.0.1:7999",
        "EWX_ACK_DEADLINE_MINUTES": '{"EXTREME": 5}',
        "EWX_METRICS_LISTEN": "127.0.0.1:9100",
        "EWX_CONFIG": str(path),  # names the file, not a field: ignored here
        "EWX_AUDIT_WORKERS": "2",
    }
    config = NodeConfig.load(path, environ=environ)
    plain = NodeConfig.load(path, environ={})
    assert config.peer_rate_per_second == 12.5 and plain.peer_rate_per_second != 12.5
    assert config.grpc_reflection is True
    assert config.tls.certificate == (fed / "KR" / "tls" / "other.pem").resolve()
    assert {k: v for k, v in dict(config.tls).items() if k != "certificate"} == {
        k: v for k, v in dict(plain.tls).items() if k != "certificate"
    }  # the rest of the table stays the file's
    assert config.peers["US"].address == "127.0.0.1:7999" and config.peers["JP"] == plain.peers["JP"]
    assert config.ack_deadline_minutes == {"EXTREME": 5}
    assert config.metrics_listen == "127.0.0.1:9100"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("EWX_PEER_RATE_PER_SECOND", "fast", "peer_rate_per_second"),
        ("EWX_NODE_ID", "CN", "node_id"),
        ("EWX_PEERS__US__ADDRESS", "127.0.0.1:http", "peers.US.address"),
        ("EWX_ACK_DEADLINE_MINUTES", '{"URGENT": 5}', "ack_deadline_minutes"),
        ("EWX_CHECKPOINT_INTERVAL_SECONDS", "0", "checkpoint_interval_seconds"),
    ],
)
def test_a_bad_environment_value_is_refused_naming_the_file_the_field_and_the_value(
    fed: Path, variable: str, value: str, field: str
) -> None:
    path = fed / "KR" / "node.toml"
    with pytest.raises(ConfigError) as caught:
        NodeConfig.load(path, environ={variable: value})
    message = str(caught.value)
    assert message.startswith(f"config file {path}: {field}"), message
    assert "set by the environment: " + variable in message, message
    assert f"{variable}={value!r}" in message, message


def test_the_process_environment_is_read_by_default(fed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EWX_OUTBOX_RETRY_MAX_SECONDS", "7.5")
    assert NodeConfig.load(fed / "KR" / "node.toml").outbox_retry_max_seconds == 7.5
