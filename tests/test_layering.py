"""The architecture's arrows (README, "Layers"), checked against every import in node/ and gateway/.

Read from the source with `ast`, so an import inside a function counts as
much as one at the top. A second check runs a fresh interpreter: the offline
auditor must not load the node's storage, configuration or gRPC, and the
node's core must not load gRPC.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, tuple[str, ...]] = {
    # component: the modules (dotted names, or prefixes ending in ".") it holds
    "shared": (
        "node.errors",
        "node.ids",
        "node.countries",
        "node.digits",
        "node.parsing",
        "node.clock",
        "node.limits",
        "node.logs",
        "node.files",
    ),
    "message": ("node.message.", "node.wire."),
    "crypto": ("node.crypto.",),
    "trust": ("node.trust.",),
    "pki": ("node.pki.",),
    "checks": ("node.checks.",),
    "trilateral": ("node.trilateral.",),
    "situation-settings": ("node.situation.settings",),
    "situation": ("node.situation.",),
    "store-settings": ("node.store.settings",),
    "store": ("node.store.",),
    "audit": ("node.audit.",),
    "ews-settings": ("node.ews.thresholds",),
    "config": ("node.config",),
    "ews": ("node.ews.",),
    "service": ("node.service.",),
    "operator": ("node.operator.",),
    "cli": ("node.cli.", "node.ews.cli"),
    "gateway": ("gateway.",),
}
"""Each module in exactly one component; the most specific entry wins (node.ews.cli is the CLI's)."""

_BELOW_THE_SERVICE: set[str] = {
    "shared", "message", "crypto", "trust", "pki", "checks", "trilateral", "situation-settings", "situation",
    "store-settings", "store", "audit", "ews-settings", "config", "ews",
}

MAY_IMPORT: dict[str, set[str]] = {
    "shared": set(),
    "message": {"shared"},
    "crypto": {"shared"},
    "trust": {"shared", "crypto", "message"},
    "pki": {"shared", "crypto", "trust"},
    "checks": {"shared", "message", "crypto", "trust"},
    "trilateral": {"shared", "message"},
    "situation-settings": {"shared", "message"},
    "situation": {"shared", "message", "crypto", "trilateral", "situation-settings"},
    "store-settings": {"shared"},
    "store": {"shared", "crypto", "store-settings"},
    "audit": {"shared", "message", "crypto", "trust", "checks", "trilateral", "situation", "situation-settings"},
    "ews-settings": {"shared"},
    "config": {"shared", "crypto", "trust", "pki", "ews-settings", "situation-settings", "store-settings"},
    "ews": {"shared", "ews-settings", "config"},
    "service": _BELOW_THE_SERVICE,
    "operator": {"shared", "message", "trust", "store-settings", "store", "config", "service"},
    "cli": _BELOW_THE_SERVICE | {"service", "operator"},
    "gateway": set(LAYERS) - {"gateway"},
}
"""The arrows: what each component may import besides itself. Nothing in node/ imports the gateway."""


def component_of(module: str) -> str | None:
    """The component holding `module`, the longest matching entry first; None outside node/ and gateway/."""
    best: tuple[int, str] | None = None
    for name, entries in LAYERS.items():
        for entry in entries:
            holds = (
                module == entry
                or (entry.endswith(".") and (module + ".").startswith(entry))
                or module.startswith(entry + ".")
            )
            if holds and (best is None or len(entry) > best[0]):
                best = (len(entry), name)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every (line, module) that `path` imports, `from node import limits` as node.limits."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("node", "gateway"):
                found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
    return found


def sources() -> list[Path]:
    return sorted(
        p for folder in ("node", "gateway") for p in (ROOT / folder).rglob("*.py") if "wire" not in p.parts
    )


def broken_arrows(files: list[Path]) -> list[str]:
    broken = []
    for path in files:
        here = component_of(module_name(path))
        for line, imported in imports_of(path):
            there = component_of(imported)
            if here is None or there is None or there == here:
                continue
            if there not in MAY_IMPORT[here]:
                broken.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {there} ({imported})")
    return broken


def test_every_module_of_node_and_gateway_is_in_a_component() -> None:
    assert [module_name(p) for p in sources() if component_of(module_name(p)) is None] in (
        [],
        ["node"],  # the package itself
    )


def test_every_import_follows_an_arrow() -> None:
    assert broken_arrows(sources()) == []


def test_the_arrows_have_no_cycle() -> None:
    assert set(MAY_IMPORT) == set(LAYERS)

    def visit(component: str, path: tuple[str, ...]) -> None:
        assert component not in path, " -> ".join((*path, component))
        for below in MAY_IMPORT[component]:
            visit(below, (*path, component))

    for component in MAY_IMPORT:
        visit(component, ())


def test_node_never_imports_grpc_or_the_gateway() -> None:
    offending = [
        f"{p.relative_to(ROOT)}:{line}: {imported}"
        for p in sources()
        if p.parts[len(ROOT.parts)] == "node"
        for line, imported in imports_of(p)
        if imported.split(".")[0] in ("grpc", "gateway", "grpc_health", "grpc_tools")
    ]
    assert offending == []


def test_only_the_message_and_the_gateway_import_the_generated_protobuf_code() -> None:
    """node/message is the one place in node/ that knows the wire (issue 11, item 1); the rest take `pb` from it."""
    offending = [
        f"{p.relative_to(ROOT)}:{line}: {imported}"
        for p in sources()
        if p.parts[len(ROOT.parts)] == "node" and "message" not in p.parts
        for line, imported in imports_of(p)
        if imported == "node.wire" or imported.startswith("node.wire.")
    ]
    assert offending == []


CLI_SHARED = frozenset({"node.cli._common", "node.cli._alert_fields", "node.cli._progress"})
"""What a command group of `ewx` may import of the CLI: the shared modules, never another group nor the package."""


def cli_group_imports(path: Path) -> list[str]:
    """The imports of the CLI in `path` (a command group's module) beyond CLI_SHARED, as file:line: module."""
    return [
        f"{path.relative_to(ROOT)}:{line}: {imported}"
        for line, imported in imports_of(path)
        if (imported == "node.cli" or imported.startswith("node.cli.") or imported == "node.ews.cli")
        and imported not in CLI_SHARED
    ]


def test_the_cli_command_groups_import_only_the_shared_modules() -> None:
    """One module per command group (issue 11, item 1): node/cli/_main.py alone assembles them, so no cycle."""
    groups = [p for p in sorted((ROOT / "node" / "cli").glob("*.py")) if p.stem not in ("__init__", "_main")]
    assert [hit for p in [*groups, ROOT / "node" / "ews" / "cli.py"] for hit in cli_group_imports(p)] == []


def test_a_cli_group_importing_another_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "node" / "cli").mkdir(parents=True)
    bad = tmp_path / "node" / "cli" / "_pki.py"
    bad.write_text(
        "from node.cli._common import EXIT_OK\nfrom node.cli._rotation import add_rotation_commands\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert cli_group_imports(bad) == ["node/cli/_pki.py:2: node.cli._rotation"]


def test_a_broken_arrow_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: an audit module that imports the store is reported, naming file and line."""
    fake_root = tmp_path
    (fake_root / "node" / "audit").mkdir(parents=True)
    bad = fake_root / "node" / "audit" / "_verify.py"
    bad.write_text("import json\n\n\ndef f():\n    from node.store import Store\n    return Store\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    assert broken_arrows([bad]) == ["node/audit/_verify.py:5: audit imports store (node.store)"]


def _loaded_after(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_offline_audit_loads_no_storage_configuration_or_grpc() -> None:
    loaded = _loaded_after(
        "import node.audit",
        (
            "grpc",
            "gateway",
            "sqlite3",
            "_sqlite3",
            "duckdb",
            "node.store",
            "node.config",
            "node.service",
            "node.pki",
        ),
    )
    assert loaded == []


def test_the_node_service_and_operator_api_load_no_grpc() -> None:
    assert _loaded_after("import node.service, node.operator, node.cli", ("grpc", "gateway")) == []


SERVICE_INSIDES = frozenset({"store", "links"})
"""What the service keeps to itself: the gateway asks the service's methods (its configuration
and trust file it may read, as every part of the node does)."""


def reaches_into_the_service(path: Path) -> list[str]:
    """`service.store`, `self._service.links` and the like in `path`, as file:line: text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Attribute) and node.attr in SERVICE_INSIDES):
            continue
        owner = node.value
        name = (
            owner.attr
            if isinstance(owner, ast.Attribute)
            else owner.id
            if isinstance(owner, ast.Name)
            else ""
        )
        if name in ("service", "_service"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_gateway_reaches_the_node_through_the_service_methods_only() -> None:
    assert [
        hit for p in sorted((ROOT / "gateway").rglob("*.py")) for hit in reaches_into_the_service(p)
    ] == []


def test_reaching_into_the_service_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gateway").mkdir()
    bad = tmp_path / "gateway" / "x.py"
    bad.write_text("def f(self):\n    return self._service.store.log_size\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert reaches_into_the_service(bad) == ["gateway/x.py:2: self._service.store"]


def test_no_assert_in_production_code() -> None:
    """`python -O` drops asserts: an invariant the node relies on is an explicit check."""
    found = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for p in sources()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
