"""What a command line loads before it works: `--help` renders through Typer's formatter with
stand-ins for Rich's Markdown and traceback modules (same text, neither loaded), and a command
converts only its own Typer function."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mnistlr.cli import COMMANDS, _click_group
from mnistlr.cli.base import app
from mnistlr.cli.help_formatter import asks_for_help, stand_in_class, stand_in_module

# Loads the CLI, runs it on argv[2:] (after importing argv[1]'s comma-separated modules, if
# any), prints stdout and writes the loaded modules' top-level names to the file named by argv[1]
HELP_PROBE = """
import importlib, json, os, sys
first, record, *args = sys.argv[1:]
for name in filter(None, first.split(",")):
    importlib.import_module(name)
from mnistlr.cli import main
code = main(args)
with open(record, "w") as handle:
    json.dump(sorted({m.split(".")[0] for m in sys.modules} | {m for m in sys.modules if m.startswith("rich.")}),
              handle)
sys.exit(code)
"""


def _help(tmp_path, first: str, *args: str) -> tuple[str, list[str]]:
    record = tmp_path / "modules.json"
    env = dict(os.environ, COLUMNS="100", TERM="xterm-256color", FORCE_COLOR="1")
    env.pop("NO_COLOR", None)
    done = subprocess.run([sys.executable, "-c", HELP_PROBE, first, str(record), *args], capture_output=True,
                          text=True, env=env)
    # no arguments: the help, then exit status 2 (a usage error, as Click has it)
    assert done.returncode == (0 if args else 2), done.stderr
    assert done.stderr == "", done.stderr    # the help alone: no empty error line after it
    return done.stdout, json.loads(record.read_text())


@pytest.mark.parametrize("args", [["--help"], [], ["train", "--help"], ["predict", "-h"]])
def test_help_is_the_same_text_without_loading_markdown_or_tracebacks(tmp_path, args):
    lean, loaded = _help(tmp_path, "", *args)
    full, loaded_full = _help(tmp_path, "rich.markdown,rich.traceback", *args)
    assert "Usage" in lean and "\x1b[" in lean    # rendered by Rich, in colour
    assert lean == full
    for module in ("markdown_it", "pygments", "rich.markdown", "rich.traceback", "rich.syntax", "pydantic",
                   "numpy", "numba"):
        assert module not in loaded, module
    assert "markdown_it" in loaded_full and "rich.traceback" in loaded_full   # the probe would see them


def test_a_stand_in_makes_and_reads_the_real_class():
    from rich.markdown import Markdown
    from rich.text import Text
    from rich.traceback import Traceback

    stand_in = stand_in_class("rich.markdown", "Markdown")
    made = stand_in("# title", style="bold")
    assert type(made) is Markdown and made.markup == "# title"
    assert stand_in.__name__ == "Markdown" and stand_in | Text    # annotations like `Markdown | Text` work
    assert stand_in_class("rich.traceback", "Traceback").from_exception == Traceback.from_exception


def test_a_stand_in_module_has_every_public_name_and_no_dunder():
    module = stand_in_module("rich.markdown")
    assert module.Markdown is module.Markdown and module.Markdown.__module__ == "rich.markdown"
    assert not hasattr(module, "__path__")    # not a package to the import system


def test_help_is_asked_by_no_arguments_or_a_help_flag():
    assert asks_for_help([]) and asks_for_help(["train", "--help"]) and asks_for_help(["-h"])
    assert not asks_for_help(["train", "-d", "mnist-sample"])


def test_a_command_line_converts_only_its_command():
    every = list(app.registered_commands)
    assert set(_click_group(["predict", "m.joblib", "x.idx"]).commands) == {"predict"}
    assert set(_click_group(["-q", "evaluate"]).commands) == {"evaluate"}
    names = {name for name, _ in COMMANDS}
    for args in (["--help"], [], ["predcit"], ["--version"]):
        assert set(_click_group(args).commands) == names
    assert app.registered_commands == every


def test_a_command_line_imports_only_its_command_module():
    probe = ("import json, sys; from mnistlr.cli import main; main(['predict', '--help']); "
             "sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.startswith('mnistlr.cli.'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stderr)
    assert "mnistlr.cli.predict" in loaded and "Usage" in done.stdout
    for other in ("train", "evaluate", "sweep", "export", "options"):
        assert f"mnistlr.cli.{other}" not in loaded, other


@pytest.mark.parametrize("message", ["wrote 10,000 predictions to /tmp/out dir/x.csv", "to a [bold]b[/bold].csv",
                                     "to x:smile:.csv", "tab\there", "to é.csv", "bell\x07", ""])
def test_a_note_reads_as_rich_prints_it(capsys, message):
    from mnistlr.cli.base import print_note, stderr_console

    print_note(message)
    ours = capsys.readouterr().err
    stderr_console().print(message, highlight=False, soft_wrap=True)
    assert ours == capsys.readouterr().err


def test_a_plain_note_does_not_load_rich():
    probe = ("import sys; from mnistlr.cli.base import print_note; print_note('wrote 3 predictions to x.csv'); "
             "sys.stdout.write(str('rich.console' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("False", "wrote 3 predictions to x.csv\n")


def test_the_console_script_freezes_the_collector_after_the_run(monkeypatch, capsys):
    import gc

    import mnistlr.cli as cli

    events = []
    monkeypatch.setattr(gc, "freeze", lambda: events.append(("freeze", capsys.readouterr().out)))
    with pytest.raises(SystemExit) as stop:
        cli.app(["--version"])
    # after the run and its output, before the exit (with the run's status)
    assert stop.value.code == 0 and events == [("freeze", "mnistlr 0.1.0\n")]


# A console-script run with an atexit handler (its print left in stdout's buffer); THREAD=1 leaves
# a thread running that prints once the main thread is over.
_ENDING = """
import atexit, os, sys, threading
from mnistlr.cli import app
atexit.register(lambda: print("atexit ran"))
if os.environ.get("THREAD"):
    threading.Thread(target=lambda: (threading.main_thread().join(), print("thread done"))).start()
sys.argv = ["mnistlr", *sys.argv[1:]]
app()
"""


@pytest.mark.parametrize("thread", ["", "1"])
@pytest.mark.parametrize("args,status,out", [(["--version"], 0, "mnistlr 0.1.0\n"),
                                             (["train", "--no-such-option"], 2, "")])
def test_the_console_script_keeps_the_status_atexit_output_and_threads(args, status, out, thread):
    done = subprocess.run([sys.executable, "-c", _ENDING, *args], capture_output=True, text=True,
                          env=dict(os.environ, NO_COLOR="1", THREAD=thread), timeout=120)
    # the status and every byte of output, atexit's included (after a running thread's end)
    assert (done.returncode, done.stdout) == (status, out + "thread done\n" * bool(thread) + "atexit ran\n")
    assert (status == 0) == (done.stderr == "")


def test_the_console_script_ends_the_process_once_atexit_ran_and_streams_are_flushed(monkeypatch, capsys):
    import atexit
    import threading

    import mnistlr.cli as cli

    events = []

    class Ended(BaseException):
        pass

    def end(status):
        events.append(("os._exit", status, capsys.readouterr().out))
        raise Ended

    import gc

    monkeypatch.setattr(gc, "freeze", lambda: None)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: events.append(("atexit",)))
    monkeypatch.setattr(os, "_exit", end)
    monkeypatch.setattr(sys, "argv", ["mnistlr", "--version"])
    # (threads other tests left in this process would send it down the ordinary exit)
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread()])
    with pytest.raises(Ended):
        cli.app()
    assert events == [("atexit",), ("os._exit", 0, "mnistlr 0.1.0\n")]


def test_a_model_without_features_and_a_registered_dataset_load_neither_module(tmp_path):
    from test_hostile_models import small_model

    from mnistlr.learn.persistence import save_model

    save_model(small_model(), tmp_path / "m.joblib")
    probe = ("import sys; from mnistlr.data.registry import get_spec; from mnistlr.learn.persistence import load_model; "
             f"get_spec('mnist'); load_model({str(tmp_path / 'm.joblib')!r}); "
             "print(sorted(m for m in sys.modules if m in ('mnistlr.learn.features', 'mnistlr.data.imported')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
