"""`ewx config check` (issue 14, item 4): a node.toml and the files it names, without starting the node."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli._config import check_config
from node.pki import init_federation
from tests.node.cli.test_cli import ewx

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("config-check") / "fed"
    init_federation(root)
    return root


@pytest.fixture
def fed(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "fed")
    return tmp_path / "fed"


def test_a_fresh_development_node_is_valid(fed: Path) -> None:
    problems, sound = check_config(fed / "KR" / "node.toml", at=NOW, environ={})
    assert problems == []
    assert [line.split()[0] for line in sound] == [
        "config",
        "trust",
        "alert",
        "log",
        "witness",
        "tls.certificate",
    ]
    done = ewx("config", "check", "--config", str(fed / "KR" / "node.toml"))
    assert done.returncode == 0 and done.stdout.splitlines()[-1].endswith(": valid")


def test_every_problem_is_one_line_and_the_exit_is_2(fed: Path) -> None:
    kr = fed / "KR"
    config = kr / "node.toml"
    alert_key = next(p for p in (kr / "keys").iterdir() if "alert" in p.name)
    alert_key.chmod(0o644)  # readable by others
    shutil.copy(fed / "US" / "tls" / "node.pem", kr / "tls" / "node.pem")  # US's certificate, KR's key
    problems, _ = check_config(config, at=NOW, environ={})
    assert len(problems) == 2, problems
    assert str(alert_key) in problems[0] and "group or others" in problems[0]
    assert "tls.certificate" in problems[1]
    done = ewx("config", "check", "--config", str(config), check=False)
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("PROBLEM ") for line in lines)
    report = json.loads(ewx("config", "check", "--config", str(config), "--json", check=False).stdout)
    assert report["valid"] is False and report["problems"] == problems


def test_a_missing_trust_file_or_a_bad_field_is_named(fed: Path) -> None:
    config = fed / "KR" / "node.toml"
    (fed / "federation.json").unlink()
    problems, _ = check_config(config, at=NOW, environ={})
    assert len(problems) == 1 and "federation.json" in problems[0]
    problems, _ = check_config(config, at=NOW, environ={"EWX_PEER_BURST": "lots"})
    assert len(problems) == 1 and problems[0].startswith(f"config file {config}: peer_burst")
    assert "EWX_PEER_BURST='lots'" in problems[0]


def test_a_certificate_expired_by_then_is_a_problem(fed: Path) -> None:
    problems, _ = check_config(fed / "KR" / "node.toml", at=datetime(2099, 1, 1, tzinfo=UTC), environ={})
    assert any("tls.certificate" in p for p in problems), problems


def test_no_config_is_a_usage_error(tmp_path: Path) -> None:
    done = ewx("config", "check", "--config", str(tmp_path / "absent.toml"), check=False)
    assert done.returncode == 2 and "cannot read it" in done.stdout
