"""The command line as a whole: help ends with real examples, the README's command lines
parse, -q exists where progress does, and NO_COLOR / piped output carries no escapes."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mnistlr.cli import _click_group

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["fetch", "train", "evaluate", "predict", "sweep", "inspect", "show"]
PROGRESS_COMMANDS = ["fetch", "train", "evaluate", "predict", "sweep", "show"]


def mnistlr_words(line: str) -> list[str]:
    """The words after `mnistlr` in a shell line (pipes and redirections dropped; a quoted | stays)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    tokens, segments = list(lexer), [[]]
    for token in tokens:
        if token == "|":
            segments.append([])
        else:
            segments[-1].append(token)
    for words in segments:
        if words and words[0] == "mnistlr":
            words = words[1:]
            for stop in (">", ">>", "2>"):
                if stop in words:
                    words = words[:words.index(stop)]
            return words
    raise AssertionError(f"no mnistlr command in {line!r}")


def parse(words: list[str]) -> None:
    """Parse *words* as the CLI would, without running the command: unknown options, bad
    choices and malformed numbers raise click's UsageError."""
    group = _click_group([])
    name, *rest = words
    assert name in group.commands, f"no command {name!r}"
    with group.make_context("mnistlr", [name]) as ctx:
        with group.commands[name].make_context(name, rest, parent=ctx):
            pass


def epilog_examples(command: list[str]) -> list[str]:
    """The example command lines of a command's epilog (the top level's with no command)."""
    group = _click_group([])
    epilog = (group.commands[command[0]] if command else group).epilog or ""
    return [line.strip() for line in epilog.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=["mnistlr", *COMMANDS])
def test_help_ends_with_two_or_three_examples_that_parse(cli, command, monkeypatch):
    lines = epilog_examples(command)
    assert 2 <= len(lines) <= 3, lines
    for line in lines:
        words = mnistlr_words(line)
        if command:
            assert words[0] == command[0], line
        parse(words)
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: each example on one line
    result = cli(*command, "--help")
    assert result.code == 0
    tail = result.out[result.out.rindex("Examples:"):]
    # the examples end the help, each on one line of its own
    assert "╭" not in tail and "Options" not in tail
    assert [line.strip() for line in tail.splitlines() if line.startswith("   ") and line.strip()] == lines


def test_a_wrong_example_would_fail_to_parse():
    with pytest.raises(Exception, match="No such option|no such option"):
        parse(["train", "--no-such-option"])
    with pytest.raises(Exception, match="not one of|invalid choice"):
        parse(["train", "--model", "forest"])


def readme_commands() -> list[tuple[str, str]]:
    """Every `$ mnistlr ...` line of the README's console blocks (continuations joined), with
    the line shown after it (its output's first line)."""
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [(m.group(1), m.group(2) or "")
            for m in re.finditer(r"^\$ (.*\bmnistlr .*)$\n?(.*)", text, re.M)]


def test_readme_shows_every_command():
    used = {mnistlr_words(line)[0] for line, _ in readme_commands()}
    assert set(COMMANDS) <= used, f"README lacks examples of {set(COMMANDS) - used}"


@pytest.mark.parametrize("line, shown", readme_commands(), ids=[line for line, _ in readme_commands()])
def test_readme_command_lines_parse(line, shown):
    words = mnistlr_words(line)
    if shown.startswith("mnistlr: error:") and "--help')" in shown:
        with pytest.raises(typer.BadParameter):  # a usage error shown on purpose (exit 2)
            parse(words)
    else:
        parse(words)


@pytest.mark.parametrize("command", PROGRESS_COMMANDS)
def test_quiet_option_where_progress_is_shown(command):
    group = _click_group([])
    options = {o for p in group.commands[command].params for o in getattr(p, "opts", [])}
    assert {"-q", "--quiet"} <= options


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("no_color", ["1", ""])
def test_no_color_means_no_escape_sequences_on_a_terminal(monkeypatch, no_color):
    from mnistlr.cli.base import stdout_console

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("NO_COLOR", no_color)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    stdout_console().print("[bold red]accuracy[/] 0.9")
    escapes = "\x1b" in terminal.getvalue()
    assert escapes == (no_color == ""), terminal.getvalue()  # empty NO_COLOR: colour stays on


def test_piped_results_are_plain(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_COLOR")  # not a terminal is enough
    model = tmp_path / "m.joblib"
    assert cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    for args in (["evaluate", model], ["inspect", model, "--weights"], ["fetch", "--list"],
                 ["show", "mnist-sample", "--index", "3"]):
        result = cli(*args)
        assert result.code == 0, result.err
        assert "\x1b" not in result.out and "\x1b" not in result.err, args
        assert not {"┏", "╭", "━"} & set(result.out), args  # no heavy boxes around results


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_training_option_defaults_match_the_api(command):
    """The command line trains with the same defaults as mnistlr.learn.options.TrainOptions."""
    import dataclasses

    from mnistlr.learn.options import TrainOptions

    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    group = _click_group([])
    params = {p.name: p.default for p in group.commands[command].params}
    for name, default in defaults.items():
        value = params[name]
        value = getattr(value, "value", value)  # enums
        assert value == default, f"mnistlr {command} --{name.replace('_', '-')}: {value!r} != {default!r}"
    # exactly one option per field: no flag of the command is defined twice
    flags = [flag for p in group.commands[command].params for flag in p.opts]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)


def test_training_options_come_from_one_definition():
    """Every TrainOptions field has exactly one CLI option, in cli.options.OPTIONS or SHARED."""
    import dataclasses

    from mnistlr.cli import options as o
    from mnistlr.learn.options import TrainOptions

    fields = [f.name for f in dataclasses.fields(TrainOptions)]
    assert sorted([*o.OPTIONS, *o.SHARED]) == sorted(fields)


def test_a_reader_that_goes_away_ends_every_command_quietly(cli, tmp_path):
    """`mnistlr evaluate m | head -1` exits 0 without a word on stderr (Rich alone exits 1)."""
    model = tmp_path / "m.joblib"
    assert cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    env = dict(os.environ, NO_COLOR="1")
    for args in (["evaluate", model], ["inspect", model, "--weights"], ["show", "mnist-sample"],
                 ["fetch", "--list"]):
        process = subprocess.Popen([sys.executable, "-m", "mnistlr", *map(str, args)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        process.stdout.close()  # the reader is gone before the first result is written
        stderr = process.stderr.read()
        assert (process.wait(timeout=120), stderr) == (0, b""), args


def test_piped_tables_carry_no_trailing_spaces(cli, tmp_path):
    model = tmp_path / "m.joblib"
    assert cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    for args in (["evaluate", model], ["inspect", model], ["show", "mnist-sample"]):
        result = cli(*args)
        assert result.code == 0 and result.out.strip(), args
        assert [line for line in result.out.splitlines() if line.endswith(" ")] == [], args


def test_an_eof_error_that_escapes_a_reader_is_not_reported_as_a_ctrl_c(cli, monkeypatch, tmp_path):
    # Click turns an EOFError into Abort, which is also what Ctrl-C becomes: exit 1 here, not 130
    import mnistlr.api.inspect

    def cut_short(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(mnistlr.api.inspect, "inspect", cut_short)
    result = cli("inspect", tmp_path / "m.joblib")
    assert result.code == 1 and "an input ended early" in result.err and "interrupted" not in result.err
