"""The replayed help (mnistlr.cli.help_cache): the same bytes and status as a rendered one, never
a stale one, and a damaged or missing cache is only a slower run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mnistlr.cli import help_cache

# The console script, run on argv[2:]; writes to the file argv[1] whether Typer was ever loaded.
PROBE = """
import atexit, json, sys
record, *args = sys.argv[1:]
atexit.register(lambda: open(record, "w").write(json.dumps("typer" in sys.modules)))
from mnistlr.cli import app
app(args)
"""


def console(tmp_path, *args: str, cache: str | None = None, **env: str) -> tuple[int, bytes, bytes, bool]:
    """(status, stdout, stderr, whether Typer was loaded) of `mnistlr ARGS` in a fresh process, in colour."""
    record = tmp_path / "typer.json"
    environment = dict(os.environ, COLUMNS="100", TERM="xterm-256color", FORCE_COLOR="1")
    environment.pop("NO_COLOR", None)
    environment.update(env)
    environment["MNISTLR_HELP_CACHE"] = str(tmp_path / "help") if cache is None else cache
    done = subprocess.run([sys.executable, "-c", PROBE, str(record), *args], capture_output=True, env=environment)
    return done.returncode, done.stdout, done.stderr, json.loads(record.read_text())


@pytest.mark.parametrize("args", [["--help"], [], ["train", "--help"], ["predict", "-h"]])
def test_a_replayed_help_is_the_rendered_one_without_typer(tmp_path, args):
    rendered = console(tmp_path, *args)
    replayed = console(tmp_path, *args)
    assert rendered[3] and not replayed[3]                   # rendered by Typer, then replayed
    assert replayed[:3] == rendered[:3]                       # same status, bytes, empty stderr
    assert b"\x1b[" in rendered[1] and b"Usage" in rendered[1] and rendered[2] == b""
    assert rendered[:3] == console(tmp_path, *args, cache="")[:3]  # and the same as with no cache


@pytest.mark.parametrize("args", [["--help"], [], ["export", "--help"]])
def test_a_piped_help_carries_no_padding_rendered_or_replayed(tmp_path, args):
    plain = {"FORCE_COLOR": "", "NO_COLOR": "1", "TERM": "dumb"}
    rendered, replayed = console(tmp_path, *args, **plain), console(tmp_path, *args, **plain)
    assert rendered[3] and not replayed[3] and replayed[:3] == rendered[:3]
    lines = rendered[1].decode().splitlines()
    assert len(lines) > 10 and "Usage: mnistlr" in rendered[1].decode() and b"\x1b[" not in rendered[1]
    assert [line for line in lines if line != line.rstrip()] == []
    assert max(map(len, lines)) == 100                        # the boxes still reach COLUMNS


def test_another_environment_or_width_renders_again(tmp_path):
    first = console(tmp_path, "--help")
    narrow = console(tmp_path, "--help", COLUMNS="60")
    other = console(tmp_path, "--help", SOME_VARIABLE="1")
    assert narrow[3] and other[3]                            # neither replayed the first entry
    assert narrow[1] != first[1] and other[1] == first[1]
    assert console(tmp_path, "--help", COLUMNS="60")[1:] == (narrow[1], b"", False)


def test_errors_are_never_recorded(tmp_path):
    for _ in range(2):
        status, out, err, loaded = console(tmp_path, "predcit", "--help")
        assert status == 2 and b"No such command" in err and loaded
    assert not (tmp_path / "help").exists() or not os.listdir(tmp_path / "help")


def fake_package(root, monkeypatch) -> None:
    (root / "fakehelp").mkdir(parents=True)
    (root / "fakehelp" / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(help_cache, "PACKAGES", ("fakehelp", "no_such_package_here"))


def stored_entry(tmp_path, monkeypatch, argv, text):
    """A fake package to key on, the cache folder in MNISTLR_HELP_CACHE, and one entry for argv: (folder, key)."""
    fake_package(tmp_path / "src", monkeypatch)
    folder = tmp_path / "help"
    monkeypatch.setenv("MNISTLR_HELP_CACHE", str(folder))
    key = help_cache.entry_key(argv, "mnistlr")
    help_cache.store(str(folder), key, 0, text)
    return folder, key


def test_a_changed_source_file_makes_the_entry_stale(tmp_path, monkeypatch, capsys):
    folder, key = stored_entry(tmp_path, monkeypatch, ["--help"], "recorded help\n")
    assert help_cache.replay(["--help"], "mnistlr") == 0 and capsys.readouterr().out == "recorded help\n"
    assert help_cache.replay(["train", "--help"], "mnistlr") is None   # another command line
    source = tmp_path / "src" / "fakehelp" / "__init__.py"
    info = source.stat()
    os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 1))    # touched, same size and bytes
    assert help_cache.replay(["--help"], "mnistlr") is None and capsys.readouterr().out == ""
    os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert help_cache.entry_key(["--help"], "mnistlr") == key
    (tmp_path / "src" / "fakehelp" / "extra.py").write_text("")    # a file added
    assert help_cache.entry_key(["--help"], "mnistlr") != key
    monkeypatch.setenv("SOME_VARIABLE", "1")
    assert "SOME_VARIABLE" in help_cache.entry_key(["--help"], "mnistlr")


def test_a_damaged_entry_or_unusable_folder_is_no_cache(tmp_path, monkeypatch, capsys):
    folder, key = stored_entry(tmp_path, monkeypatch, ["-h"], "text\n")
    path = help_cache.entry_path(str(folder), key)
    digest = help_cache.key_digest
    for damage in ("", "{not json", json.dumps({"key_sha256": digest(key), "status": "0", "text": "x"}),
                   json.dumps({"key_sha256": digest(key + " "), "status": 0, "text": "x"})):
        with open(path, "w") as handle:
            handle.write(damage)
        assert help_cache.replay(["-h"], "mnistlr") is None
    assert capsys.readouterr().out == ""
    blocker = tmp_path / "file"
    blocker.write_text("")
    help_cache.store(str(blocker / "help"), key, 0, "text\n")       # cannot be created: no error
    monkeypatch.setenv("MNISTLR_HELP_CACHE", "")
    assert help_cache.cache_dir() is None


def test_an_entry_holds_no_environment_value(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_SECRET_TOKEN", "s3cr3t-value-9f2c")
    folder, key = stored_entry(tmp_path, monkeypatch, ["--help"], "help\n")
    assert "s3cr3t-value-9f2c" in key
    stored = [path.read_text() for path in folder.iterdir()]
    assert len(stored) == 1 and "s3cr3t-value-9f2c" not in stored[0] and "SOME_SECRET_TOKEN" not in stored[0]


def test_the_cache_keeps_at_most_max_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(help_cache, "MAX_ENTRIES", 3)
    for n in range(5):
        help_cache.store(str(tmp_path), f"key {n}", 0, "text")
        os.utime(help_cache.entry_path(str(tmp_path), f"key {n}"), ns=(n, n))
    kept = sorted(os.listdir(tmp_path))
    assert kept == sorted(os.path.basename(help_cache.entry_path(str(tmp_path), f"key {n}")) for n in (2, 3, 4))


def test_a_command_whose_option_value_is_dash_h_is_never_recorded(tmp_path):
    """`-o -h` names an output file: the run is a command, not help, and must run every time."""
    output = tmp_path / "-h"
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-c", "from mnistlr.cli import app; app()", "train", "-d",
                               "mnist-sample", "--train-limit", "200", "--max-iter", "2", "-q", "-o", "-h"],
                              capture_output=True, env=dict(os.environ, MNISTLR_HELP_CACHE=str(tmp_path / "help")),
                              cwd=tmp_path)
        # no help on stderr: only the warning that --max-iter 2 stopped L-BFGS
        assert done.returncode == 0 and b"Training summary" in done.stdout, done.stderr
        assert done.stderr.startswith(b"mnistlr: warning: L-BFGS reached max_iter=2") and done.stderr.count(b"\n") == 1
        assert output.exists(), attempt
        output.unlink()
    assert not (tmp_path / "help").exists()


def test_a_run_that_reaches_the_binary_stream_is_not_recorded(tmp_path, monkeypatch, capsys):
    import mnistlr.cli.help_formatter as formatter

    monkeypatch.setenv("MNISTLR_HELP_CACHE", str(tmp_path))
    monkeypatch.setattr(formatter, "_renderings", [0])

    def shows_help_in_bytes() -> int:
        formatter._renderings[0] += 1
        sys.stdout.buffer.write(b"")                     # as a writer of bytes would
        return 0

    assert help_cache.run_recorded(["--help"], "mnistlr", shows_help_in_bytes) == 0
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(formatter, "_renderings", [0])

    def shows_help() -> int:
        formatter._renderings[0] += 1
        sys.stdout.write("help\n")
        return 0

    assert help_cache.run_recorded(["--help"], "mnistlr", shows_help) == 0 and len(os.listdir(tmp_path)) == 1


def test_a_reader_that_goes_away_ends_help_with_status_0(tmp_path):
    """`mnistlr --help | head -1` exits 0 quietly, rendered or replayed (Rich and Typer alone exit 1)."""
    environment = dict(os.environ, NO_COLOR="1", MNISTLR_HELP_CACHE=str(tmp_path / "help"))

    def closed_reader() -> tuple[int, bytes]:
        process = subprocess.Popen([sys.executable, "-m", "mnistlr", "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=environment)
        process.stdout.close()  # the reader is gone before the help is written
        return process.wait(timeout=60), process.stderr.read()

    assert closed_reader() == (0, b"")                                          # rendered by Typer
    subprocess.run([sys.executable, "-m", "mnistlr", "--help"], capture_output=True, env=environment, check=True)
    assert os.listdir(tmp_path / "help")                                        # recorded
    assert closed_reader() == (0, b"")                                          # replayed
