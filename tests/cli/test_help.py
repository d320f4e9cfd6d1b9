"""Every command's `--help`: a description, an example and the exit codes."""

from __future__ import annotations

import pytest

from xos_runtime.cli.main import build_parser

from .conftest import Cli

COMMANDS = [
    ["run"],
    ["check"],
    ["plugins"],
    ["graph"],
    ["status"],
    ["plan"],
    ["objects"],
    *(["objects", action] for action in ("list", "show", "create", "update", "delete")),
    ["events"],
    ["events", "publish"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_explains_the_command(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    text = result.out
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: xos-runtime {' '.join(command)}")
    description = rest.split("\n\n")[0]
    assert len(description) > 20 and not description.startswith(("positional", "options"))
    examples = text.split("examples:\n", 1)[1].split("\n\n")[0].splitlines()
    assert examples and all(e.startswith(f"  xos-runtime {command[0]}") for e in examples)
    exits = text.split("exit codes:\n", 1)[1].splitlines()
    codes = [line.split()[0] for line in exits if line.strip()]
    assert codes[0] == "0" and codes[-1] == "2"


def test_check_says_it_fails_with_1(cli: Cli) -> None:
    text = cli("check", "--help").out
    assert "  1  the check failed" in text


def test_run_says_what_1_means(cli: Cli) -> None:
    assert "  1  objects left in error" in cli("run", "--help").out


def test_examples_parse() -> None:
    """An example that the parser refuses would teach the wrong thing."""
    parser = build_parser()
    text = ""
    for command in COMMANDS:
        sub = parser
        for word in command:
            sub = next(a for a in sub._actions if a.dest in ("command", "action")).choices[word]  # type: ignore[union-attr, index]
        text += sub.format_help()
    examples = [
        line.strip().split(" | ")[0]
        for block in text.split("examples:\n")[1:]
        for line in block.split("\n\n")[0].splitlines()
    ]
    assert len(examples) >= 12
    for example in examples:
        args = parser.parse_args(example.split()[1:])
        assert args.handler is not None, example
