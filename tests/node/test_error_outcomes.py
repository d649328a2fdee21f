"""One table of outcomes: every node error exits the same from the CLI and through the operator socket.

Issue 11, item 3: a ConfigError exited 2 raised in the CLI but 1 when it came
back through the node's operator socket. Each class now carries its exit code
and operator kind (node/errors.py); this test raises every EwxError class of
node/ both ways, with a real node's operator server on a Unix socket.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import node
from node.cli import EXIT_USAGE, run
from node.errors import OPERATOR_ERRORS, EwxError
from node.ids import Country
from node.operator import OperatorClient, OperatorServer
from tests.support.factories import running


def _every_error_class() -> list[type[EwxError]]:
    for info in pkgutil.walk_packages(node.__path__, "node."):
        importlib.import_module(info.name)
    found: list[type[EwxError]] = []
    pending: list[type[EwxError]] = [EwxError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted({c for c in found if c.__module__.startswith("node.")}, key=lambda c: c.__qualname__)


ERRORS = _every_error_class()


def _instance(cls: type[EwxError], message: str) -> EwxError:
    """An instance with only its message (some classes take more arguments than a test needs)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


def _cli_exit(raise_it: Any) -> int:
    parser = argparse.ArgumentParser(prog="ewx")
    parser.set_defaults(func=lambda _args: raise_it())
    return run(parser, [])


def test_the_table_names_each_kind_once_and_every_class_exits_1_or_2() -> None:
    assert len(ERRORS) > 20  # every module was imported
    for kind, cls in OPERATOR_ERRORS.items():
        assert cls.operator_kind == kind
    for cls in ERRORS:
        assert cls.exit_code in (1, 2), cls


def test_every_error_exits_the_same_from_the_cli_and_through_the_operator_socket(
    federation: dict[Country, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_name = {f"{c.__module__}.{c.__qualname__}": c for c in ERRORS}

    async def raise_named(args: dict[str, Any]) -> Any:
        raise _instance(by_name[args["name"]], f"boom from {args['name']}")

    async def scenario() -> None:
        async with running(federation["KR"]) as nodes:
            server = OperatorServer(nodes["KR"].service, extra={"raise": raise_named})
            socket = tmp_path / "errors.sock"
            await server.start(socket)
            try:
                client = OperatorClient(socket)
                for name, cls in by_name.items():
                    with pytest.raises(EwxError) as came_back:
                        await asyncio.to_thread(client.call, "raise", name=name)
                    assert str(came_back.value) == f"boom from {name}"
                    assert came_back.value.exit_code == cls.exit_code, name

                    direct = _cli_exit(lambda cls=cls: (_ for _ in ()).throw(_instance(cls, "x")))
                    through = await asyncio.to_thread(
                        _cli_exit, lambda name=name: client.call("raise", name=name)
                    )
                    assert direct == through == cls.exit_code, name
                    err = capsys.readouterr().err
                    word = "error" if cls.exit_code == EXIT_USAGE else "refused"
                    assert err.count(f"ewx: {word}: ") == 2, (name, err)
            finally:
                await server.close()

    asyncio.run(scenario())


def test_no_node_exception_is_also_a_value_error_and_all_live_in_node_errors() -> None:
    """One error tree: a caller's `except ValueError` never swallows a node refusal by accident."""
    import builtins

    strays = [c for c in _every_error_class() if issubclass(c, ValueError)]
    assert strays == []
    assert {c.__module__ for c in ERRORS} == {"node.errors"}
    # No public exception class outside it (a module's private one for its own control
    # flow, caught where it is raised, is its business).
    for info in pkgutil.walk_packages(node.__path__, "node."):
        if info.name == "node.errors":
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not value.__name__.startswith("_")
                and not hasattr(builtins, value.__name__)
            ):
                raise AssertionError(f"{info.name} defines exception {value.__name__} outside node/errors.py")
