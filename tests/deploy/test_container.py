"""deploy/Dockerfile, deploy/compose.yaml and deploy/config/*.toml hold together (issue 14, item 1).

No container runtime runs here, so the files are read: every command they
run parses with the real `ewx` parser, every path they copy or mount exists
in the repository or in the layout `ewx pki init` writes, every port and
volume they name is the one the example configurations use, and each
configuration loads, with its keys and certificates, against a real
development PKI. `docker compose config` runs too where Docker Compose exists.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from gateway.cli import build_parser
from node.config import NodeConfig, split_address
from node.ids import COUNTRIES
from node.pki import init_federation

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
METRICS_PORT = 9464
"""The container port of `metrics_listen` (issue 14): what compose.yaml publishes for every node."""


# ------------------------------------------------------------------ reading the files
@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int


def dockerfile(path: Path = DEPLOY / "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continuation lines joined, stages counted."""
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    assert not pending, "a continuation line ends the file"
    return instructions


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list."""
    import json

    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def ewx_command(argv: list[str]) -> Any:
    """Parse `ewx ARGS...` with the real parser; the namespace (its `func` is the command run)."""
    assert argv[0] == "ewx", argv
    return build_parser().parse_args(argv[1:])


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def configs() -> dict[str, dict[str, Any]]:
    return {cc: tomllib.loads((DEPLOY / "config" / f"{cc}.toml").read_text()) for cc in COUNTRIES}


def metrics_line(cc: str) -> str | None:
    """The `metrics_listen` value a config names, set or in its commented-out line."""
    found = re.search(
        r'^#?\s*metrics_listen\s*=\s*"([^"]+)"', (DEPLOY / "config" / f"{cc}.toml").read_text(), re.M
    )
    return None if found is None else found.group(1)


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) of a service's short-syntax volumes."""
    found: dict[str, tuple[str, str]] = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


NODES = {cc: cc.lower() for cc in COUNTRIES}
"""Country -> its compose service."""


# ------------------------------------------------------------------ the image
def test_the_image_is_built_in_stages_from_files_that_exist() -> None:
    steps = dockerfile()
    stages = [s for s in steps if s.keyword == "FROM"]
    assert len(stages) >= 2, "a multi-stage build: the wheels are built apart from the image that runs"
    assert stages[0].arguments.endswith(" AS build")
    copied = [s for s in steps if s.keyword == "COPY" and s.stage == 0]
    assert copied
    allowed = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for step in copied:
        *sources, _target = shlex.split(step.arguments)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert f"!{source}" in allowed, f"COPY {source}: .dockerignore keeps it out of the build context"
    final = [s for s in steps if s.stage == len(stages) - 1]
    assert not [s for s in final if s.keyword == "COPY" and "--from" not in s.arguments], (
        "the image that runs takes nothing from the source tree, only what the build stage made"
    )
    assert any("from=build" in s.arguments for s in final if s.keyword in ("RUN", "COPY"))
    pip = [s for s in steps if s.keyword == "RUN" and "pip wheel" in s.arguments]
    assert pip and pip[0].stage == 0 and pip[0].arguments.endswith(" .")
    assert (ROOT / "pyproject.toml").is_file()


def test_the_image_runs_ewx_serve_as_a_user_with_data_on_a_volume() -> None:
    final = [s for s in dockerfile() if s.stage == max(s.stage for s in dockerfile())]
    by = {s.keyword: s.arguments for s in final}
    user = by["USER"].split(":")[0]
    assert user not in ("root", "0") and re.search(
        rf"useradd .*--uid \d+ .*{user}\b",
        by["RUN"] + "".join(s.arguments for s in final if s.keyword == "RUN"),
    )
    assert final[-1].keyword in ("CMD", "ENTRYPOINT") and by["ENTRYPOINT"] and by["CMD"]
    serve = ewx_command(exec_form(by["ENTRYPOINT"]) + exec_form(by["CMD"]))
    assert serve.command == "serve" and serve.config is None  # from EWX_CONFIG
    env = dict(re.findall(r"(\w+)=(\S+)", by["ENV"]))
    assert env["EWX_CONFIG"] == "/etc/ewx/node.toml"
    volumes = exec_form(by["VOLUME"])
    exposed = {int(port) for port in by["EXPOSE"].split()}
    for cc, config in configs().items():
        assert config["data_dir"] in volumes, f"{cc}'s data_dir is not the image's volume"
        assert split_address(config["listen"])[1] in exposed
        assert metrics_line(cc) is not None and split_address(metrics_line(cc) or "")[1] in exposed
    assert METRICS_PORT in exposed
    made = " ".join(s.arguments for s in final if s.keyword == "RUN")
    for folder in (*volumes, "/pki", "/var/backups/ewx"):
        assert re.search(rf"install -d -o {user} -g {user} -m 0700 [^&]*{re.escape(folder)}\b", made), (
            f"{folder} must belong to {user} in the image, so a new volume there is the node's"
        )


def test_the_healthcheck_runs_ewx_health() -> None:
    (check,) = [s for s in dockerfile() if s.keyword == "HEALTHCHECK"]
    options, _, command = check.arguments.partition("CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=(\d+)s", options)
    health = ewx_command(exec_form(command))
    assert health.command == "health" and health.func.__name__ == "cmd_health"
    timeout = int(re.search(r"--timeout=(\d+)s", options).group(1))  # type: ignore[union-attr]
    assert 2 * health.timeout < timeout, "both checks fit in the HEALTHCHECK's own timeout"


# ------------------------------------------------------------------ the compose file
def test_pki_init_runs_once_into_its_volume_before_the_nodes() -> None:
    services = compose()["services"]
    init = services["pki-init"]
    assert init["entrypoint"] == ["sh", "-c"]
    (script,) = init["command"]
    guard, _, run = script.partition(" || exec ")
    assert guard == "test -e /pki/federation.json", "a second `up` must not make new keys"
    parsed = ewx_command(shlex.split(run))
    assert parsed.command == "pki" and parsed.pki == "init" and parsed.out == "/pki"
    assert mounts(init)["/pki"] == ("pki", "rw")
    assert init["network_mode"] == "none" and init["healthcheck"] == {"disable": True}
    for cc, name in NODES.items():
        depends = services[name]["depends_on"]
        assert depends["pki-init"]["condition"] == "service_completed_successfully", cc


def test_every_node_mounts_its_config_its_pki_and_its_own_data_volume() -> None:
    data = compose()
    services, declared = data["services"], set(data["volumes"])
    dockerfile_env = next(s for s in dockerfile() if s.keyword == "ENV").arguments
    data_volumes: set[str] = set()
    for cc, name in NODES.items():
        service = services[name]
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["image"] == services["pki-init"]["image"]
        mounted = mounts(service)
        source, mode = mounted["/etc/ewx/node.toml"]
        assert "EWX_CONFIG=/etc/ewx/node.toml" in dockerfile_env
        assert (DEPLOY / source).resolve() == DEPLOY / "config" / f"{cc}.toml" and mode == "ro"
        config = configs()[cc]
        assert config["node_id"] == cc
        assert mounted["/pki"] == ("pki", "ro")
        paths = [config["trust_file"], *config["tls"].values(), *config["keys"].values()]
        assert all(p.startswith("/pki/") for p in paths), f"{cc}: every PKI file is in the pki volume"
        volume, mode = mounted[config["data_dir"]]
        assert mode == "rw" and volume in declared and volume not in data_volumes, (
            f"{cc}: a data volume of its own"
        )
        data_volumes.add(volume)
        for target, (source, _) in mounted.items():
            assert source in declared or (DEPLOY / source).exists(), f"{cc}: {source} for {target}"


def test_three_link_networks_each_joining_one_pair_of_nodes_by_their_names() -> None:
    data = compose()
    services, networks = data["services"], set(data["networks"])
    assert len(networks) == 3
    members: dict[str, set[str]] = {network: set() for network in networks}
    for cc, name in NODES.items():
        for network, settings in services[name]["networks"].items():
            assert network in networks
            members[network].add(cc)
            assert settings["aliases"] == [f"{name}.node.ewx"]
    assert sorted(sorted(m) for m in members.values()) == sorted(
        sorted(pair) for pair in (("KR", "US"), ("US", "JP"), ("JP", "KR"))
    )
    for cc, config in configs().items():
        listen_port = split_address(config["listen"])[1]
        for peer, settings in config["peers"].items():
            host, port = split_address(settings["address"])
            shared = [n for n, m in members.items() if m == {cc, peer}]
            assert len(shared) == 1, f"{cc} and {peer} share one link network"
            assert host in services[NODES[peer]]["networks"][shared[0]]["aliases"], f"{cc} -> {peer}: {host}"
            assert port == split_address(configs()[peer]["listen"])[1]
        assert listen_port == 7401


def test_the_metrics_port_of_every_node_is_published_on_the_loopback() -> None:
    services = compose()["services"]
    host_ports: set[int] = set()
    for cc, name in NODES.items():
        metrics = metrics_line(cc)
        assert metrics is not None and split_address(metrics)[1] == METRICS_PORT
        (published,) = services[name]["ports"]
        address, host_port, container_port = published.split(":")
        assert address == "127.0.0.1" and int(container_port) == METRICS_PORT
        host_ports.add(int(host_port))
    assert len(host_ports) == 3
    assert "metrics_listen" not in services["kr"].get("environment", {})


# ------------------------------------------------------------------ the configs against a real PKI
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_federation(root)  # what the pki-init service writes into /pki
    return root


def _as_on_this_host(cc: str, pki: Path, data: Path) -> Path:
    text = (DEPLOY / "config" / f"{cc}.toml").read_text()
    if "metrics_listen" in NodeConfig.model_fields:  # once the node has the key: the line is to be set
        text = re.sub(r"^#\s*(metrics_listen\s*=)", r"\1", text, flags=re.M)
    document = tomllib.loads(text.replace('"/pki/', f'"{pki}/').replace('"/var/lib/ewx"', f'"{data}"'))
    path = data.parent / f"{cc}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(document))
    return path


def test_each_config_loads_with_its_keys_and_certificate_from_the_pki_init_layout(
    pki: Path, tmp_path: Path
) -> None:
    for cc in COUNTRIES:
        config = NodeConfig.load(_as_on_this_host(cc, pki, tmp_path / cc / "data"))
        trust = config.load_trust()  # node_id a member, peers exactly the others
        assert set(config.load_signers(trust)) == {"alert", "log", "witness"}
        assert config.read_tls_credentials().certificate_chain.startswith(b"-----BEGIN CERTIFICATE-----")
        assert config.operator_socket == tmp_path / cc / "data" / "operator.sock"


# ------------------------------------------------------------------ the operator's commands
def _documented_commands() -> Iterator[list[str]]:
    """`ewx ...` as deploy/README.md runs it in a container (`docker compose exec|run ... SERVICE ewx ...`)."""
    text = (DEPLOY / "README.md").read_text()
    for line in text.splitlines():
        found = re.match(r"\s*docker compose (exec|run)\b(.*)", line)
        if not found:
            continue
        words = shlex.split(found.group(2).split("#")[0])
        while words and words[0].startswith("-"):
            words.pop(0)
        service, *rest = words
        assert service in NODES.values(), line
        yield rest if rest[:1] == ["ewx"] else ["ewx", *rest]  # `run` goes through the entrypoint


def test_the_container_commands_in_the_operators_guide_parse() -> None:
    seen = set()
    for argv in _documented_commands():
        seen.add(ewx_command(argv).command)
    assert {"status", "backup", "restore", "health"} <= seen


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], check=False, capture_output=True).returncode != 0
    ):
        pytest.skip("no Docker Compose on this machine")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stderr
