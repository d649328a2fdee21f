"""The documentation is true of the `ewx` command line, and the site builds (issue 14, item 9).

(a) Every `ewx ...` command written in the docs (docs/*.md, README.md,
    deploy/README.md) names a real command path of the full `ewx` parser
    (gateway.cli.build_parser: node's commands plus `serve` and `demo`), and
    every `--flag` written after it is an option of that very command. Commands
    are read from fenced shell blocks (```sh, ```bash, ```console or a bare
    ```), from indented code lines, and from inline code spans that start with
    `ewx `; `a|b` in a command path stands for either. The parser is walked in
    this process: nothing is spawned per command.
(b) `mkdocs build --strict` (Material theme, mkdocs.yml) succeeds.
(c) Every command and subcommand has a help text; no option or argument
    without one is added beyond the known gaps listed below.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli import build_parser as build_ewx_parser

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "deploy" / "README.md"]

SHELL_FENCES = {"", "sh", "bash", "shell", "console"}
"""Fenced blocks whose lines are shell commands; ```toml, ```python, ```json are not."""

STOP_TOKENS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}
"""Tokens that end a command (pipes, redirections, background)."""

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)")
_EWX_TOKEN = re.compile(r"(?:^|.*[/(=])ewx$")
"""`ewx`, `.venv/bin/ewx`, `/opt/ewx/venv/bin/ewx`, `ID=$(ewx`: the program name."""

KNOWN_WITHOUT_HELP: frozenset[str] = frozenset()
"""Options and arguments without a help text: none (the test fails on any new one)."""


@dataclass(frozen=True)
class Written:
    """One `ewx` command as the docs write it."""

    where: str  # file:line
    text: str  # the command as written, for messages
    words: tuple[str, ...]  # what follows `ewx`, up to the end of the command


# ---------------------------------------------------------------- reading the docs


def _logical_lines(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join backslash continuations: a command written over several lines is one."""
    start = 0
    parts: list[str] = []
    for number, line in lines:
        if not parts:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def _tokens(line: str) -> list[str]:
    """Shell words of one line, comments dropped; a line shlex cannot read is split on spaces."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in an example: read the words anyway
        return line.split("#", 1)[0].split()


def _commands_in(tokens: list[str]) -> Iterator[tuple[str, ...]]:
    """Each `ewx` command in one line's words, as the words after `ewx`."""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if not _EWX_TOKEN.match(token) or _EWX_TOKEN.match(following) or following.startswith("ewx"):
            i += 1  # not the program, or `sudo -u ewx ewx ...`: the user name, then the program
            continue
        words: list[str] = []
        i += 1
        while i < len(tokens) and tokens[i] not in STOP_TOKENS:
            word = tokens[i]
            i += 1
            if word.endswith(")") and not word.startswith("("):  # the end of `$(ewx ...)`
                words.append(word[:-1])
                break
            words.append(word)
        yield tuple(w for w in words if w)


def _code_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of shell code in one Markdown file: fenced shell blocks and indented code.

    A bare ``` block may hold a diagram or a command's output as well as commands
    ("the ewx commands" in README.md's architecture), so there only a line that
    starts with the program counts; in a block marked as shell, every line does.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: str | None = None
    kind = ""
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, kind, block = match.group(2), match.group(3).lower(), []
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                if kind in SHELL_FENCES:
                    for start, logical in _logical_lines(block):
                        if kind or _starts_with_program(logical):
                            yield start, logical
                fence = None
                continue
            block.append((number, line))
            continue
        if line.startswith("    ") and _starts_with_program(line):
            yield number, line  # an indented code block (docs/key-rotation.md)


def _starts_with_program(line: str) -> bool:
    words = line.strip().removeprefix("$ ").split(maxsplit=1)
    return bool(words) and _EWX_TOKEN.match(words[0]) is not None


def _inline_spans(path: Path) -> Iterator[tuple[int, str]]:
    """Inline code spans outside fenced blocks that start with `ewx ` (a span may wrap a line)."""
    text = path.read_text(encoding="utf-8")
    outside: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)
            outside.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            outside.append("")
            continue
        outside.append(line)
    prose = "\n".join(outside)
    for match in _INLINE.finditer(prose):
        span = " ".join(match.group(1).split())
        if span.startswith("ewx "):
            yield prose.count("\n", 0, match.start()) + 1, span


def written_commands() -> list[Written]:
    """Every `ewx` command the docs write."""
    found: list[Written] = []
    for path in DOC_FILES:
        name = path.relative_to(ROOT).as_posix()
        for number, line in _code_lines(path):
            for words in _commands_in(_tokens(line.strip().removeprefix("$ "))):
                found.append(Written(f"{name}:{number}", line.strip(), words))
        for number, span in _inline_spans(path):
            for words in _commands_in(span.split()):
                found.append(Written(f"{name}:{number}", span, words))
    return found


# ---------------------------------------------------------------- the parser


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The full `ewx` parser, built once: the tests only read it."""
    return build_ewx_parser()


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("ewx",)
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """Every parser below `parser`, with its command path and the help its parent gives it."""
    sub = _subcommands(parser)
    if sub is None:
        return
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, child in sub.choices.items():
        yield (*path, name), child, helps.get(name)
        yield from _walk(child, (*path, name))


def _resolve(
    parser: argparse.ArgumentParser, words: tuple[str, ...]
) -> tuple[list[tuple[tuple[str, ...], argparse.ArgumentParser]], list[str], str | None]:
    """The command(s) the words name, the words after the path, or why they name none.

    A word `a|b` (docs write `ewx watchlist show|history`) names each of its parts.
    """
    here: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [(("ewx",), parser)]
    rest = list(words)
    while rest:
        word = rest[0]
        subs = [(path, p, _subcommands(p)) for path, p in here]
        if word.startswith(("-", "[")) or any(s is None for _, _, s in subs):
            break
        names = word.split("|")
        step: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
        for path, _p, sub in subs:
            assert sub is not None
            for name in names:
                if name not in sub.choices:
                    known = ", ".join(sub.choices)
                    return [], rest, f"`{' '.join(path)}` has no command {name!r} (it has: {known})"
                step.append(((*path, name), sub.choices[name]))
        here = step
        rest.pop(0)
    return here, rest, None


def _flags(words: list[str]) -> Iterator[str]:
    """The `--flags` among the words after a command path (`[--json]`, `--since=7d` included)."""
    for word in words:
        for alternative in word.split("|"):
            part = alternative.strip("[]")
            if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", part):
                yield part.split("=", 1)[0]


# ---------------------------------------------------------------- (a) the docs name real commands


ALL_WRITTEN = written_commands()


def test_the_docs_write_commands() -> None:
    """The reader found the commands (a broken reader would make the next test pass on nothing)."""
    assert len(ALL_WRITTEN) > 100
    places = {w.where.split(":")[0] for w in ALL_WRITTEN}
    for page in ("README.md", "docs/quickstart.md", "docs/operator-guide.md", "docs/auditor-guide.md"):
        assert page in places, f"no `ewx` command read from {page}"
    examples = [
        ("sudo -u ewx ewx pki csr --country KR --out /etc/ewx", ("pki", "csr", "--country", "KR")),
        ('ID=$(ewx alert raise --headline "x y") && echo', ("alert", "raise", "--headline", "x y")),
        (".venv/bin/ewx status --json | jq .", ("status", "--json")),
    ]
    for line, start in examples:
        (words,) = list(_commands_in(_tokens(line)))
        assert words[: len(start)] == start, (line, words)


@pytest.mark.parametrize("written", ALL_WRITTEN, ids=lambda w: w.where)
def test_every_written_command_exists(written: Written) -> None:
    parser = build_parser()
    commands, rest, problem = _resolve(parser, written.words)
    assert problem is None, f"{written.where}: {written.text!r}: {problem}"
    for path, command in commands:
        known = set(command._option_string_actions)
        for flag in _flags(rest):
            assert flag in known, (
                f"{written.where}: {written.text!r}: `{' '.join(path)}` has no option {flag} "
                f"(it has: {', '.join(sorted(k for k in known if k.startswith('--')))})"
            )


# ---------------------------------------------------------------- (b) the site builds


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[dev]' brings it)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about MkDocs 2, not a problem
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "operator-guide.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    """mkdocs only warns about a page left out of the nav; here it fails (and strict fails too)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert re.search(rf":\s*{re.escape(page.name)}\s*$", nav, re.MULTILINE), f"{page.name} not in nav"


# ---------------------------------------------------------------- (c) help everywhere


def test_every_command_has_help() -> None:
    parser = build_parser()
    assert parser.description
    missing = [" ".join(path) for path, _p, text in _walk(parser) if not (text and text.strip())]
    assert not missing, f"commands without a help text: {missing}"
    paths = {" ".join(path) for path, _p, _t in _walk(parser)}
    assert {"ewx serve", "ewx demo", "ewx pki csr", "ewx audit check-proof", "ewx ews event add"} <= paths


def test_no_new_option_without_help() -> None:
    parser = build_parser()
    gaps: set[str] = set()
    for path, command, _text in [(("ewx",), parser, None), *_walk(parser)]:
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not (action.help and action.help.strip()):
                gaps.add(
                    f"{' '.join(path)} {action.option_strings[-1] if action.option_strings else action.dest}"
                )
    new = sorted(gaps - KNOWN_WITHOUT_HELP)
    assert not new, f"options or arguments without a help text: {new}"
