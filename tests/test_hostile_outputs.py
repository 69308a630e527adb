"""Outputs that are not plain files: devices, FIFOs, sockets, symbolic links, standard output,
and outputs that are the command's own inputs. Regular files are replaced atomically; a link's
target is replaced and the link kept; character devices and FIFOs are written through; the rest
is refused with one line, before any work, leaving everything as it was.

Device nodes are made in the test's own folder (mknod, as root), never the machine's /dev.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shlex
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_hostile_models import small_model
from test_reliability import assert_one_line_error, snapshot

import mnistlr.io.atomic
from mnistlr.io.idx import write_idx
from mnistlr.learn.persistence import load_model, save_model

CHOOSE = r"choose another output path|give a (regular )?file name|start the reader|point the link"


@pytest.fixture
def files(tmp_path) -> Path:
    d = tmp_path / "files"
    d.mkdir()
    save_model(small_model(), d / "m.joblib")
    rng = np.random.default_rng(0)
    write_idx(d / "img.gz", rng.integers(0, 256, size=(6, 4, 4)).astype(np.uint8))
    write_idx(d / "lab.gz", np.array([0, 1, 2, 0, 1, 2], np.uint8))
    return d


def _device(path: Path, kind: int, major: int, minor: int) -> Path:
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("making device nodes needs root (CAP_MKNOD)")
    return path


def _predict(cli, files: Path, output) -> object:
    return cli("predict", files / "m.joblib", files / "img.gz", "-o", output, "-q")


def test_character_device_is_written_through_and_stays_a_device(files, tmp_path, cli):
    null = _device(tmp_path / "null", stat.S_IFCHR, 1, 3)
    result = _predict(cli, files, null)
    assert result.code == 0, result.err
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["files", "null"]  # no .part left beside it


def test_full_device_is_one_line(files, tmp_path, cli):
    full = _device(tmp_path / "full", stat.S_IFCHR, 1, 7)
    assert_one_line_error(_predict(cli, files, full), 1, r"no space left on device", r"free some disk space")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_block_device_is_refused(files, tmp_path, cli):
    block = _device(tmp_path / "disk", stat.S_IFBLK, 7, 250)
    assert_one_line_error(_predict(cli, files, block), 1, r"is a block device; refusing", CHOOSE)
    assert stat.S_ISBLK(os.lstat(block).st_mode)


def test_socket_is_refused(files, tmp_path, cli):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert_one_line_error(_predict(cli, files, path), 1, r"socket or other special file", CHOOSE)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def _fifo_reader(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    """A thread reading *fifo* to the writer's hang-up, already counted as its reader when this
    returns (a writer that checks for one finds it); received gets the bytes read."""
    received: list[bytes] = []
    opened = threading.Event()

    def read() -> None:
        # a reader waiting before the writer comes; poll reports data, then the hang-up
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        opened.set()
        chunks = []
        while select.select([fd], [], [], 30)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        received.append(b"".join(chunks))

    reader = threading.Thread(target=read)
    reader.start()
    assert opened.wait(30), "the reader did not open the FIFO"
    return reader, received


def test_fifo_with_a_reader_gets_the_rows(files, tmp_path, cli):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader, received = _fifo_reader(fifo)
    result = _predict(cli, files, fifo)
    reader.join(30)
    assert result.code == 0, result.err
    assert received and received[0].startswith(b"index,label\n") and received[0].count(b"\n") == 7
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_fifo_without_a_reader_fails_at_once(files, tmp_path, cli):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    assert_one_line_error(_predict(cli, files, fifo), 1, r"a FIFO that no process is reading", CHOOSE)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_symlink_target_is_replaced_and_the_link_kept(files, tmp_path, cli):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    result = _predict(cli, files, link)
    assert result.code == 0, result.err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text().startswith("index,label\n")
    assert stat.S_IMODE(real.stat().st_mode) == 0o600, "the target's permissions were kept"
    assert sorted(os.listdir(tmp_path)) == ["files", "link.csv", "real.csv"]


def test_dangling_symlink_creates_its_target(files, tmp_path, cli):
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "new.csv")
    assert _predict(cli, files, link).code == 0
    assert link.is_symlink() and (tmp_path / "new.csv").read_text().startswith("index,label")


def test_symlink_loop_is_one_line(files, tmp_path, cli):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert_one_line_error(_predict(cli, files, tmp_path / "a"), 1, r"loop of symbolic links", CHOOSE)


# (id, command line with {d} = the files folder, what must be named); all exit 2 before any work
OWN_INPUTS = [
    ("predict-over-its-model", "predict {d}/m.joblib {d}/img.gz -o {d}/m.joblib", r"m\.joblib"),
    ("predict-over-its-input", "predict {d}/m.joblib {d}/img.gz -o {d}/img.gz", r"img\.gz"),
    ("predict-over-a-link-to-its-input", "predict {d}/m.joblib {d}/img.gz -o {d}/link-to-img",
     r"img\.gz"),
    ("predict-over-a-hard-link", "predict {d}/m.joblib {d}/img.gz -o {d}/hard-img", r"img\.gz"),
    ("train-over-its-labels", "train --train-images {d}/img.gz --train-labels {d}/lab.gz "
     "-o {d}/lab.gz", r"lab\.gz"),
    ("train-over-its-images", "train --train-images {d}/img.gz --train-labels {d}/lab.gz "
     "-o {d}/link-to-img", r"img\.gz"),
    ("train-over-the-dataset", "train --dataset mnist --data-dir {d}/data "
     "-o {d}/data/mnist/train-labels-idx1-ubyte.gz", r"train-labels"),
    ("sweep-results-over-its-images", "sweep --train-images {d}/img.gz --train-labels {d}/lab.gz "
     "--param l2=1e-3,1e-2 --cv 2 --results {d}/img.gz", r"img\.gz"),
    ("sweep-results-over-its-model", "sweep --train-images {d}/img.gz --train-labels {d}/lab.gz "
     "--param l2=1e-3,1e-2 --cv 2 -o {d}/out.joblib --results {d}/out.joblib --refit", r"out\.joblib"),
    ("evaluate-figure-over-its-model", "evaluate {d}/m.joblib --images {d}/img.gz --labels {d}/lab.gz "
     "--plot {d}/figs", r"m\.joblib"),
]


@pytest.mark.parametrize("case_id,args,named", OWN_INPUTS, ids=[c[0] for c in OWN_INPUTS])
def test_output_that_is_an_input_is_refused(case_id, args, named, files, cli):
    (files / "link-to-img").symlink_to(files / "img.gz")
    os.link(files / "img.gz", files / "hard-img")
    (files / "out.joblib").write_bytes(b"precious")
    (files / "figs").mkdir()
    (files / "figs" / "confusion.png").symlink_to(files / "m.joblib")
    mnist = files / "data" / "mnist"
    mnist.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (mnist / name).write_bytes((files / ("img.gz" if "images" in name else "lab.gz")).read_bytes())
    before = snapshot(files)
    result = cli(*args.format(d=files).split())
    assert_one_line_error(result, 2, r"is also an input of this command.*" + named, r"choose another output")
    assert snapshot(files) == before


def test_dash_is_refused_where_a_file_is_needed(files, cli):
    result = cli("train", "--train-images", files / "img.gz", "--train-labels", files / "lab.gz", "-o", "-")
    assert_one_line_error(result, 2, r"'-' \(standard output\) cannot take this file", r"give a file name")


def test_dash_is_standard_output_for_predict(files, cli):
    result = cli("predict", files / "m.joblib", files / "img.gz", "-o", "-")
    assert result.code == 0 and result.out.startswith("index,label\n")


def test_full_disk_during_plot_leaves_no_figure_and_no_folder(files, tmp_path, cli, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mnistlr.io.atomic.os, "fsync", full)
    result = cli("evaluate", files / "m.joblib", "--images", files / "img.gz", "--labels", files / "lab.gz",
                 "--plot", tmp_path / "new" / "figs")
    monkeypatch.undo()
    assert_one_line_error(result, 1, r"no space left on device; nothing was written", r"free some disk")
    assert not (tmp_path / "new").exists()


def test_figures_are_written_together(files, tmp_path, cli):
    result = cli("evaluate", files / "m.joblib", "--images", files / "img.gz", "--labels", files / "lab.gz",
                 "--plot", tmp_path / "figs", "-q")
    assert result.code == 0, result.err
    assert sorted(os.listdir(tmp_path / "figs")) == ["confusion.png", "learning_curves.png", "roc.png",
                                                    "weights.png"]


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """*command* run by sh in *cwd*, with `mnistlr` this interpreter's console entry."""
    mnistlr_cmd = f"{shlex.quote(sys.executable)} -m mnistlr"
    return subprocess.run(["sh", "-c", command.replace("mnistlr ", mnistlr_cmd + " ")], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, NO_COLOR="1"))


def test_dev_stdout_appends_where_the_shell_redirected_it(files):
    (files / "log.txt").write_text("line1\nline2\n")
    done = _shell("mnistlr predict m.joblib img.gz -q -o /dev/stdout >> log.txt", files)
    assert done.returncode == 0, done.stderr
    lines = (files / "log.txt").read_text().splitlines()
    assert lines[:3] == ["line1", "line2", "index,label"] and len(lines) == 2 + 1 + 6
    done = _shell("{ echo HEADER; mnistlr predict m.joblib img.gz -q -o /dev/fd/1; echo FOOTER; } > all.csv", files)
    assert done.returncode == 0, done.stderr
    lines = (files / "all.csv").read_text().splitlines()
    assert lines[0] == "HEADER" and lines[1] == "index,label" and lines[-1] == "FOOTER"
    assert not [p for p in os.listdir(files) if p.endswith(".part")]


def test_dev_stdout_into_a_pipe_gets_the_rows(files):
    done = _shell("mnistlr predict m.joblib img.gz -q -o /dev/stdout | cat", files)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines()[0] == "index,label" and len(done.stdout.splitlines()) == 7


def test_a_model_into_a_pipe_is_the_whole_model(files):
    # the model pickler asks the file for its position (array padding): a pipe has none
    done = _shell("mnistlr train --train-images img.gz --train-labels lab.gz -m ridge -q -o /dev/stdout "
                  "| cat > piped.joblib && mnistlr train --train-images img.gz --train-labels lab.gz -m ridge "
                  "-q -o saved.joblib", files)
    assert done.returncode == 0 and "Illegal seek" not in done.stderr, done.stderr
    piped, saved = load_model(files / "piped.joblib"), load_model(files / "saved.joblib")
    assert (piped.W == saved.W).all() and (piped.classes == saved.classes).all()


def test_a_model_on_stdout_is_all_stdout_carries(files):
    # the summary, the ranked table: on stderr when the file the command writes is stdout itself
    done = _shell("mnistlr train --train-images img.gz --train-labels lab.gz -m ridge -q -o /dev/stdout "
                  "> out.joblib && mnistlr train --train-images img.gz --train-labels lab.gz -m ridge -q "
                  "-o /dev/fd/1 --json | cat > json.joblib && mnistlr sweep --train-images img.gz "
                  "--train-labels lab.gz -m ridge --param l2=1,10 --cv 2 -q --results /dev/stdout > trials.csv",
                  files)
    assert done.returncode == 0, done.stderr
    assert "Training summary" in done.stderr and '"model": "ridge"' in done.stderr and "Grid search" in done.stderr
    for name in ("out.joblib", "json.joblib"):
        data = (files / name).read_bytes()
        assert b"Training summary" not in data and b'"model": "ridge"' not in data
        assert data.endswith(b".") and load_model(files / name).kind == "ridge"   # pickle's STOP, then nothing
    assert (files / "trials.csv").read_text().splitlines()[0].startswith("rank,trial,param_l2")
    assert "Grid search" not in (files / "trials.csv").read_text()


def test_new_files_follow_the_umask(files):
    done = _shell("umask 077 && mnistlr predict m.joblib img.gz -q -o p.csv && "
                  "umask 022 && mnistlr predict m.joblib img.gz -q -o q.csv", files)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(files / "p.csv").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files / "q.csv").st_mode) == 0o644


def test_train_refuses_an_output_it_cannot_write_before_reading_its_data(files, cli):
    # the training files do not exist: the output's missing folder must be named first
    result = cli("train", "--train-images", files / "absent.gz", "--train-labels", files / "lab.gz",
                 "-o", files / "nodir" / "m.joblib")
    assert_one_line_error(result, 1, r"nodir does not exist", r"create it first")


def test_sweep_refuses_one_file_for_the_model_and_the_results(files, cli):
    result = cli("sweep", "--train-images", files / "img.gz", "--train-labels", files / "lab.gz",
                 "--param", "l2=1e-3,1e-2", "--cv", "2", "-o", files / "same", "--results", files / "same")
    assert_one_line_error(result, 2, r"--output and --results are the same file", r"different names")
    assert not (files / "same").exists()


def test_an_export_into_a_fifo_reports_no_size_of_its_own(files, tmp_path, cli):
    fifo = tmp_path / "weights.csv"
    os.mkfifo(fifo)
    # the reader has opened the FIFO before the export looks for one (a thread still on its way
    # to a blocking open() lost that race on a loaded CI machine)
    reader, received = _fifo_reader(fifo)
    result = cli("export", files / "m.joblib", "-o", fifo, "--json")
    reader.join(30)
    assert result.code == 0, result.err
    # the FIFO's size (0) is not the export's: no figure rather than a wrong one
    assert json.loads(result.out)["bytes"] is None
    assert cli("export", files / "m.joblib", "-o", tmp_path / "file.csv").code == 0
    assert received == [(tmp_path / "file.csv").read_bytes()]
