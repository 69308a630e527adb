"""The train summary's Rich-free path prints exactly what Rich prints to a pipe, and declines otherwise."""

from __future__ import annotations

import io
import string
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlr.cli import tables


def rich_text(data, title, monkeypatch) -> str:
    """What print_stdout(key_value_table(...)) writes to a (non-terminal) stdout."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    tables.print_stdout(tables.key_value_table(data, title))
    return out.getvalue()


@pytest.fixture
def pipe_env(monkeypatch):
    for name in tables._RICH_ENV + ("NO_COLOR",):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


SUMMARY = {"model": "softmax", "solver": "lbfgs", "dataset": None, "classes": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
           "l2": 0.0002, "l1": 0.0, "n_train": 22699, "train_accuracy": 0.94101, "best_epoch": None,
           "stop_reason": "converged", "seconds": 1.7573, "tiny": 3.2e-7, "huge": 123456.0, "flag": True,
           "output": "/tmp/some dir/model.joblib"}


@pytest.mark.parametrize("title", ["Training summary", None, "T"])
def test_plain_text_is_richs(pipe_env, title):
    plain = tables.plain_key_value_text(SUMMARY, title)
    assert plain is not None
    assert plain == rich_text(SUMMARY, title, pipe_env)


_cell = st.text(alphabet=string.ascii_letters + string.digits + " -_./,=()—", min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True), _cell, min_size=1, max_size=8),
       title=st.one_of(st.none(), _cell))
def test_plain_text_matches_rich_on_random_tables(data, title):
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in tables._RICH_ENV + ("NO_COLOR",):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        plain = tables.plain_key_value_text(data, title)
        if plain is not None:
            assert plain == rich_text(data, title, monkeypatch)


@pytest.mark.parametrize("data, title", [
    ({"output": "C:/models/x.joblib"}, None),          # ':' could be an emoji code
    ({"note": "[bold]x[/bold]"}, None),                 # markup
    ({"name": "café"}, None),                           # not one column per character for sure
    ({"path": "x" * 120}, None),                        # wider than the pipe's 100 columns
    ({"a": "b"}, "a title longer than the table is"),   # Rich would wrap the title
    ({}, "empty"),
])
def test_declines_what_only_rich_can_render(pipe_env, data, title):
    assert tables.plain_key_value_text(data, title) is None


@pytest.mark.parametrize("name", ["FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE"])
def test_declines_under_rich_settings(pipe_env, name):
    pipe_env.setenv(name, "1")
    assert tables.plain_key_value_text(SUMMARY, "Training summary") is None


def test_declines_on_a_terminal(pipe_env):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    pipe_env.setattr(sys, "stdout", Terminal())
    assert tables.plain_key_value_text(SUMMARY, "Training summary") is None


def test_print_key_values_writes_the_plain_text(pipe_env):
    pipe_env.setattr(sys, "stdout", io.StringIO())   # inside the test: pytest's capture resets it after set-up
    tables.print_key_values(SUMMARY, "Training summary")
    assert sys.stdout.getvalue() == tables.plain_key_value_text(SUMMARY, "Training summary")


def test_a_piped_table_wider_than_the_pipe_keeps_each_row_on_one_line(pipe_env):
    from rich.table import Table

    table = Table()
    table.add_column("data", overflow="fold")
    table.add_column("fold scores")
    rows = [("../shared/data/mnist/t10k-images-idx3-ubyte.gz / ../shared/data/mnist/t10k-labels-idx1-ubyte.gz",
             "0.9500 0.9300 0.9200 0.9050 0.9450"), ("short", "0.1 0.2")]
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    pipe_env.setattr(sys, "stdout", out)
    tables.print_stdout(table, "a line after it")
    lines = out.getvalue().splitlines()
    assert any(rows[0][0] in line and rows[0][1] in line for line in lines)
    assert len(lines) == 7 and max(map(len, lines)) > 100 and lines[-1] == "a line after it"
    narrow = io.StringIO()
    pipe_env.setenv("COLUMNS", "100")   # a width asked for is kept: the row wraps
    pipe_env.setattr(sys, "stdout", narrow)
    tables.print_stdout(table)
    assert max(map(len, narrow.getvalue().splitlines())) <= 100


def test_a_narrow_console_folds_a_long_value_and_splits_a_wide_table(pipe_env):
    from rich.table import Table

    pipe_env.setenv("COLUMNS", "40")
    out = io.StringIO()
    pipe_env.setattr(sys, "stdout", out)
    path = "a/very/long/directory/name/for-the-model-output.joblib"
    tables.print_key_values({"output": path, "l2": 0.0002}, "Training summary")
    table = Table(title="Wide", caption="the caption", box=tables_box())
    for name in ("key", "first figure", "second figure", "third figure"):
        table.add_column(name, justify="right")
    table.add_row("row", "123,456.7890", "0.000123", "98.7654")
    tables.print_stdout(table)
    text = out.getvalue()
    assert "…" not in text and max(map(len, text.splitlines())) <= 40
    value_lines = [line.split()[-1] for line in text.splitlines()[2:4]]
    assert "".join(value_lines) == path                    # folded, every character kept
    assert {"123,456.7890", "0.000123", "98.7654"} <= set(text.split())
    assert text.count("row") == 2 and text.count("Wide") == 1 and text.count("the caption") == 1


def tables_box():
    from rich import box

    return box.SIMPLE_HEAD
