"""The README and the guides in docs/ cannot drift from the tools: every relative link
resolves (to a file, and to a heading as GitHub makes its anchor), every option a
documented command gives exists in that tool's click command, every `make` target named
exists, and the README keeps the shape an operator reads in five minutes.

No emulator: the tools' options are read from their click commands, not from --help."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from tools.bench import arguments

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

# The runbook's scripts, by the click command each is a shim over; the installed names
# (wardrobe-*) come from pyproject.toml.
SCRIPTS = {
    "run_backfill_production.py": "wardrobe.commands.backfill:main",
    "backfill_rollback.py": "wardrobe.commands.rollback:main",
    "backfill_validation.py": "wardrobe.commands.validate:main",
    "backfill_control.py": "backfill.commands.control:main",
    "vocabulary_report.py": "wardrobe.commands.vocabulary:main",
}
# A tool named where a command starts (the span's start, after `python3 `, `$ ` or `: `):
# a script, with or without its folder, or an installed name.
TOOL = re.compile(r"(?:^|(?<=python3 )|(?<=\$ )|(?<=: ))(?:scripts/)?"
                  r"(run_backfill_production\.py|backfill_rollback\.py|backfill_validation\.py|"
                  r"backfill_control\.py|vocabulary_report\.py|wardrobe-[a-z]+)(?=$|[\s`),;])")
# A task's command (backfill.commands.task): `python3 -m backfill SUB`, or installed.
TASK_TOOL = re.compile(r"(?:(?<=python3 )-m backfill|firestore-backfill) ([a-z]+)(?=$|[\s`),;])")
MAKE = re.compile(r"(?<![\w-])make ([a-z][\w-]*)")
BENCH_ARGS = re.compile(r"BENCH_ARGS=\"([^\"]*)\"")
# Options the docs name for other programs, in spans of their own.
OTHER_PROGRAMS = {"--dist": "pytest-xdist (the Makefile's PYTEST_ARGS)"}
FENCE = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Snippet:
    """A piece of a page that may hold a command: a fenced line, or an inline code span."""

    page: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def commands() -> dict[str, click.Command]:
    """Every name a documented command may start with, and its click command."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    named = {**SCRIPTS, **scripts}
    found = {}
    for name, target in named.items():
        module, attribute = target.split(":")
        found[name] = getattr(importlib.import_module(module), attribute)
    return found


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def outside_fences(text: str) -> str:
    """The page with its fenced blocks blanked (their line breaks kept)."""
    return FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), text)


def snippets(page: Path) -> Iterator[Snippet]:
    text = page.read_text()
    for block in FENCE.finditer(text):
        first = line_of(text, block.start())
        lines = block.group(0).splitlines()[1:-1]
        number = 0
        while number < len(lines):  # a line ending in a backslash goes on
            start, joined = number, lines[number]
            while joined.endswith("\\") and number + 1 < len(lines):
                number += 1
                joined = joined[:-1] + " " + lines[number].strip()
            yield Snippet(page, first + 1 + start, joined)
            number += 1
    prose = outside_fences(text)
    for span in SPAN.finditer(prose):
        yield Snippet(page, line_of(prose, span.start()),
                      " ".join(span.group(1).replace("\\|", "|").split()))


def words_of(command: str) -> list[str]:
    """A command's words, up to a comment or the next command."""
    command = re.split(r"\s#|\s\|\s|;|&&", command)[0]
    try:
        words = shlex.split(command)
    except ValueError:  # an example's unbalanced quote
        words = command.split()
    return [word.rstrip("),;.") for word in words]


def option_problems(tool: click.Command, name: str, words: list[str]) -> Iterator[str]:
    context = tool.make_context(name, [], resilient_parsing=True)
    params = {flag: param for param in tool.get_params(context)
              for flag in (*param.opts, *param.secondary_opts)}
    positional = []
    waiting_value = False
    for word in words:
        if word.startswith("-") and len(word) > 1:
            flag = word.split("=", 1)[0]
            param = params.get(flag)
            if param is None:
                yield f"{name} has no option {flag}"
            waiting_value = (isinstance(param, click.Option) and not param.is_flag
                             and "=" not in word)
        elif waiting_value:
            waiting_value = False
        else:
            positional.append(word)
    choices = [param.type.choices for param in tool.params
               if isinstance(param, click.Argument) and isinstance(param.type, click.Choice)]
    if choices and positional and positional[0] not in choices[0]:
        yield f"{name} has no action {positional[0]!r} (it takes {', '.join(choices[0])})"


def task_problems(sub: str, rest: str) -> Iterator[str]:
    """What is wrong with `python3 -m backfill SUB REST`: no such subcommand, or options
    it does not have."""
    group = importlib.import_module("backfill.__main__").main
    if sub not in group.commands:
        yield f"python3 -m backfill has no command {sub!r}"
        return
    yield from option_problems(group.commands[sub], f"python3 -m backfill {sub}",
                               words_of(rest))


def bench_options() -> set[str]:
    return set(arguments()._option_string_actions)  # argparse keeps no public list


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


def command_problems() -> tuple[list[str], int]:
    """What is wrong with the commands the docs give, and how many were checked."""
    tools, targets, bench = commands(), make_targets(), bench_options()
    every_option = {flag for tool in tools.values() for param in tool.params
                    for flag in getattr(param, "opts", [])} | {"--help", "--help-all", "-h",
                                                               "--version"}
    problems, checked = [], 0
    for page in PAGES:
        for snippet in snippets(page):
            for found in TOOL.finditer(snippet.text):
                name = found.group(1)
                if name not in tools:  # wardrobe-prod, a project; a command goes first
                    if found.start() == 0:
                        problems.append(f"{snippet.where()}: there is no command {name}: "
                                        f"`{snippet.text}`")
                    continue
                checked += 1
                words = words_of(snippet.text[found.end():])
                problems += [f"{snippet.where()}: {problem}: `{snippet.text}`"
                             for problem in option_problems(tools[name], name, words)]
            for found in TASK_TOOL.finditer(snippet.text):
                checked += 1
                problems += [f"{snippet.where()}: {problem}: `{snippet.text}`"
                             for problem in task_problems(found.group(1),
                                                          snippet.text[found.end():])]
            for found in MAKE.finditer(snippet.text):
                checked += 1
                if found.group(1) not in targets:
                    problems.append(f"{snippet.where()}: the Makefile has no target "
                                    f"{found.group(1)!r}: `{snippet.text}`")
            for found in BENCH_ARGS.finditer(snippet.text):
                problems += [f"{snippet.where()}: tools/bench.py has no option {word}: "
                             f"`{snippet.text}`" for word in found.group(1).split()
                             if word.startswith("--") and word not in bench]
            first = snippet.text.split(" ", 1)[0].split("=", 1)[0].rstrip(",")
            if (first.startswith("--") and not TOOL.search(snippet.text)
                    and first not in every_option | bench and first not in OTHER_PROGRAMS):
                problems.append(f"{snippet.where()}: no tool has an option {first}: "
                                f"`{snippet.text}`")
    return problems, checked


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", outside_fences(page.read_text()),
                              re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems() -> tuple[list[str], int]:
    problems, checked = [], 0
    for page in PAGES:
        prose = SPAN.sub(lambda span: " " * len(span.group(0)),
                         outside_fences(page.read_text()))
        for link in LINK.finditer(prose):
            target = link.group(1)
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            checked += 1
            where = f"{page.relative_to(REPO)}:{line_of(prose, link.start())}"
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                problems.append(f"{where}: the link ({target}) leads to no file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: the link ({target}) names no heading of "
                                f"{resolved.relative_to(REPO)}")
    return problems, checked


def test_every_relative_link_resolves_to_a_file_and_a_heading() -> None:
    problems, checked = link_problems()
    assert checked > 30  # the links were found
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_every_option_a_documented_command_gives_exists_in_its_tool() -> None:
    problems, checked = command_problems()
    assert checked > 80  # the commands were found
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150)"
    first_20 = "\n".join(lines[:20])
    for command in ("make demo", "make test"):
        assert command in first_20, f"README.md: `{command}` is not in its first 20 lines"
    assert "BACKFILL_TARGET_FIELD=metadata.normalized" in "\n".join(lines[:100]), (
        "README.md: the app's field (BACKFILL_TARGET_FIELD=metadata.normalized) is not in "
        "its first 100 lines")


def test_there_are_guides() -> None:
    assert len(PAGES) - 1 >= 4, "docs/ has fewer than four guides"


@pytest.mark.parametrize("text, expected", [
    ("A subset: --where", "a-subset---where"),
    ("The app's field", "the-apps-field"),
    ("Step 1½: a canary", "step-1½-a-canary"),
    ("`--help` in [sections](x.md)", "--help-in-sections"),
])
def test_a_heading_s_anchor_is_github_s(text: str, expected: str) -> None:
    assert slug(text) == expected
