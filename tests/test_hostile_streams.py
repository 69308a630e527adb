"""Hostile streams, environments and inputs, in real processes: standard output on a full
device or closed, an ASCII-only terminal, odd NUMBA_* and MNISTLR_DATA values, signals during
`predict -o`, control characters in file names, decompression bombs (under an address-space
limit), devices, FIFOs and link loops where data belongs, and the parse cache's key.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CliResult
from test_hostile_models import small_model
from test_reliability import assert_one_line_error

from mnistlr.io.idx import read_idx, write_idx
from mnistlr.learn.persistence import save_model

# What the `mnistlr` console script runs (app() without arguments: it ends the process itself)
CONSOLE_SCRIPT = "import sys; from mnistlr.cli import app; sys.argv[0] = 'mnistlr'; app()"
# Under this address-space limit numpy, numba and the CLI still start (they map ~1 GiB).
MEMORY_LIMIT = 3 << 29


def run(args, *, env=None, stdin=None, stdout=subprocess.PIPE, shell_prefix: str | None = None,
        limit: int | None = None, timeout: float = 120) -> CliResult:
    """The console script `mnistlr ARGS` in a fresh process (optionally under RLIMIT_AS=*limit*)."""
    code = CONSOLE_SCRIPT
    if limit:
        code = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); " + code
    command = [sys.executable, "-c", code, *map(str, args)]
    if shell_prefix:
        command = ["sh", "-c", f'{shell_prefix} "$@"', "sh", *command]
    environment = dict(os.environ, NO_COLOR="1") | (env or {})
    done = subprocess.run(command, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.PIPE, env=environment, timeout=timeout)
    out = done.stdout.decode("utf-8", "replace") if isinstance(done.stdout, bytes) else ""
    return CliResult(done.returncode, out, done.stderr.decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("streams")
    save_model(small_model(), d / "m.joblib")
    rng = np.random.default_rng(0)
    write_idx(d / "img.gz", rng.integers(0, 256, size=(6, 4, 4)).astype(np.uint8))
    write_idx(d / "lab.gz", np.array([0, 1, 2, 0, 1, 2], np.uint8))
    return d


# ---------------------------------------------------------------- standard output

STDOUT_COMMANDS = [["--help"], ["inspect", "{d}/m.joblib"], ["fetch", "--list"]]


@pytest.mark.parametrize("args", STDOUT_COMMANDS, ids=lambda a: a[0])
def test_stdout_on_a_full_device(args, d):
    with open("/dev/full", "wb") as full:
        result = run([a.format(d=d) for a in args], stdout=full)
    assert_one_line_error(result, 1, r"cannot write to standard output: No space left on device",
                          r"check where it is redirected")


@pytest.mark.parametrize("args", STDOUT_COMMANDS[:2], ids=lambda a: a[0])
def test_stdout_closed(args, d):
    result = run([a.format(d=d) for a in args], stdout=None, shell_prefix="exec >&-;")
    assert_one_line_error(result, 1, r"cannot write to standard output: Bad file descriptor",
                          r"check where it is redirected")


def test_closed_stdout_never_lends_its_descriptor_to_an_output(d, tmp_path):
    """With descriptor 1 closed, the model file opened later must not become 'stdout'."""
    out = tmp_path / "m.joblib"
    result = run(["train", "--train-images", d / "img.gz", "--train-labels", d / "lab.gz", "-q", "--json",
                  "-o", out], stdout=None, shell_prefix="exec >&-;")
    assert result.code == 1
    from mnistlr.learn.persistence import load_model

    assert load_model(out).W.shape == (16, 3), "the model file holds the model, not the summary"


@pytest.mark.parametrize("args", [["train", "--help"],
                                  ["evaluate", "{d}/m.joblib", "--images", "{d}/img.gz", "--labels",
                                   "{d}/lab.gz", "-q"]], ids=lambda a: a[0])
def test_ascii_only_terminal(args, d):
    result = run([a.format(d=d) for a in args], env={"PYTHONIOENCODING": "ascii"})
    assert result.code == 0, result.err
    assert result.err == "" and result.out.isascii() and result.out


def test_ascii_only_error_line(d):
    sample = Path(__file__).parents[1] / "mnistlr" / "data" / "sample" / "mnist-sample-t10k-images-idx3-ubyte.gz"
    result = run(["predict", d / "m.joblib", sample], env={"PYTHONIOENCODING": "ascii"})
    assert_one_line_error(result, 1, r"input images are 28x28 but the model expects 4x4", r"shape")


# ---------------------------------------------------------------- environment

@pytest.mark.parametrize("name,value,pattern", [
    ("NUMBA_NUM_THREADS", "abc", r"NUMBA_NUM_THREADS='abc' is not a whole number"),
    ("NUMBA_NUM_THREADS", "0", r"NUMBA_NUM_THREADS='0'"),
    ("NUMBA_NUM_THREADS", "100000", r"NUMBA_NUM_THREADS='100000'"),  # numba itself segfaults
    ("NUMBA_NUM_THREADS", "", r"NUMBA_NUM_THREADS=''"),
    ("NUMBA_NUM_THREADS", "-2", r"NUMBA_NUM_THREADS='-2'"),
    ("NUMBA_THREADING_LAYER", "bogus", r"NUMBA_THREADING_LAYER='bogus' is not a numba threading"),
])
def test_odd_numba_environment(name, value, pattern, d, cli, monkeypatch):
    monkeypatch.setenv(name, value)
    result = cli("train", "--train-images", d / "img.gz", "--train-labels", d / "lab.gz", "-q",
                 "-o", d / "never.joblib")
    assert_one_line_error(result, 2, pattern, r"unset it")
    assert not (d / "never.joblib").exists()


@pytest.mark.parametrize("value,pattern", [
    ("/dev/null", r"is not fetched|not a directory|cannot"),
    ("x" * 5000, r"is not fetched|File name too long|cannot"),
    ("/proc/self/nonexistent", r"is not fetched"),
])
def test_odd_data_directory(value, pattern, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTLR_DATA", value)
    result = cli("train", "-d", "mnist", "-q", "-o", tmp_path / "never.joblib")
    assert_one_line_error(result, 1, pattern, r"mnistlr fetch|check|choose|point MNISTLR_DATA at a directory")


def test_undecodable_bytes_in_the_data_directory_are_escaped(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(os.environb, b"MNISTLR_DATA", bytes(tmp_path) + b"/caf\xe9\x1b[2J")
    result = cli("train", "-d", "mnist", "-q", "-o", tmp_path / "m.joblib")
    line = assert_one_line_error(result, 1, r"is not fetched", r"mnistlr fetch")
    assert "\x1b" not in line and r"\x1b" in line and r"\udce9" in line


def test_control_characters_in_a_file_name_are_escaped(d, tmp_path, cli):
    evil = tmp_path / "evil\x1b]0;pwned\x07\x1b[2J.csv"
    evil.write_text("not,pixels\n")
    result = cli("predict", d / "m.joblib", evil)
    line = assert_one_line_error(result, 1, r"evil", r"give")
    assert "\x1b" not in line and "\x07" not in line and r"\x1b]0;pwned\x07" in line


# ---------------------------------------------------------------- signals

@pytest.mark.parametrize("signum,status,word", [(signal.SIGTERM, 143, "terminated"),
                                                (signal.SIGHUP, 129, "hung up")])
def test_signal_during_predict_to_a_file_leaves_nothing(signum, status, word, d, tmp_path):
    """predict -o reading standard input: stopped half-way, it leaves no .part and no output."""
    out = tmp_path / "pred.csv"
    code = CONSOLE_SCRIPT
    proc = subprocess.Popen([sys.executable, "-c", code, "predict", str(d / "m.joblib"), "-", "-o", str(out),
                             "--batch-size", "1"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, NO_COLOR="1"))
    # an IDX header promising 100,000 images, then 5,000 of them (more than predict's first
    # look at its input): predict writes those and waits for the rest
    proc.stdin.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 100_000, 4, 4) + bytes(80_000))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".pred.csv.*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".pred.csv.*.part")), "predict never started writing"
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1].decode()
    assert_one_line_error(CliResult(proc.returncode, "", err), status, rf"{word} \(SIG\w+\); nothing partial",
                          r"run the same command again")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bombs and unbounded reads

def _gzip_bomb(path: Path, n_images: int) -> Path:
    """~1.4 MB of gzip declaring *n_images* images of 32×32 and expanding to 300 MiB of zeros."""
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(path, "wb") as handle:
        handle.write(deflate.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", n_images, 32, 32)))
        for _ in range(300):
            handle.write(deflate.compress(zeros))
        handle.write(deflate.flush())
    return path


@pytest.fixture(scope="module")
def idx_bomb(tmp_path_factory) -> Path:
    """Declares 2 GB, more than its 1.4 MB could ever expand to."""
    return _gzip_bomb(tmp_path_factory.mktemp("idxbomb") / "bomb.gz", 2_000_000)


def test_idx_gzip_bomb_declaring_too_much(idx_bomb, d, cli):
    result = cli("train", "--train-images", idx_bomb, "--train-labels", d / "lab.gz", "-q",
                 "-o", d / "never.joblib")
    assert_one_line_error(result, 1, r"bomb\.gz: (header promises 2000000×32×32 bytes, more than a gzip file "
                          r"of [\d,]+ bytes can expand to|truncated)", r"fetch or copy it again")


def test_idx_gzip_bomb_within_a_memory_limit(tmp_path, d):
    """Declares 1.2 GB (a 1.4 MB gzip could hold that): refused for memory, or as truncated at
    300 MiB, never more than the declared size held once, always one line."""
    bomb = _gzip_bomb(tmp_path / "bomb.gz", 1_200_000)
    result = run(["train", "--train-images", bomb, "--train-labels", d / "lab.gz", "-q",
                  "-o", d / "never.joblib"], limit=MEMORY_LIMIT)
    assert_one_line_error(result, 1, r"bomb\.gz: (not enough memory for the 1,228,800,000 bytes|truncated)",
                          r"free memory|fetch or copy")


def test_idx_gzip_bomb_as_prediction_input_within_a_memory_limit(idx_bomb, d):
    result = run(["predict", d / "m.joblib", idx_bomb, "-o", d / "never.csv"], limit=MEMORY_LIMIT)
    assert_one_line_error(result, 1, r"images are 32×32 but the model expects 4×4", r"shape")


def test_idx_header_larger_than_its_gzip_can_hold(tmp_path):
    path = tmp_path / "liar.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 60_000_000, 28, 28) + bytes(99)))
    with pytest.raises(Exception, match=r"liar\.gz: (header promises .* more than a gzip file|truncated)"):
        read_idx(path)


@pytest.mark.parametrize("make,pattern", [
    (lambda p: os.symlink("/dev/zero", p), r"is a device, FIFO or socket, not a file of images"),
    (lambda p: (os.symlink(str(p) + "2", p), os.symlink(p, str(p) + "2")),
     r"loop of symbolic links|Too many levels of symbolic links"),
], ids=["dev-zero", "symlink-loop"])
def test_not_a_file_as_training_images(make, pattern, d, tmp_path, cli):
    make(tmp_path / "images")
    result = cli("train", "--train-images", tmp_path / "images", "--train-labels", d / "lab.gz",
                 "-o", tmp_path / "never.joblib")
    assert_one_line_error(result, 1, pattern, r"give|point|fetch or copy|check the file")
    assert not (tmp_path / "never.joblib").exists()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width×height greyscale pixels but holds one empty row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + \
        chunk(b"IEND", b"")


def test_huge_png_is_refused_before_decoding_within_a_memory_limit(d, tmp_path):
    """150 megapixels in a few bytes (the issue's 146 KB PNG took 2 GB and leaked a warning)."""
    pytest.importorskip("PIL")
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(12_247, 12_247))
    result = run(["predict", d / "m.joblib", path], limit=MEMORY_LIMIT)
    assert_one_line_error(result, 1, r"huge\.png: image is .*(megapixels|too large)", r"scale it down")


@pytest.mark.parametrize("side", [9_000, 60_000])
def test_huge_png_is_refused_before_decoding(side, d, tmp_path, cli):
    pytest.importorskip("PIL")
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(side, side))
    result = cli("predict", d / "m.joblib", path)
    assert_one_line_error(result, 1, r"huge\.png: image is .*(megapixels|too large)", r"scale it down")


def test_endless_csv_line_is_refused_with_bounded_memory(d, tmp_path):
    path = tmp_path / "endless.csv.gz"
    first = ",".join(["0"] * 16) + "\n"
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(deflate.compress(first.encode()))
        for _ in range(200):  # 200 MiB of "0," with no newline
            handle.write(deflate.compress(b"0," * (1 << 19)))
        handle.write(deflate.flush())
    result = run(["predict", d / "m.joblib", path], limit=MEMORY_LIMIT)
    assert_one_line_error(result, 1, r"line 2 is longer than [\d,]+ characters", r"one image per row")


def test_cache_is_not_fooled_by_same_size_and_mtime(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.zeros(10, np.uint8))
    np.testing.assert_array_equal(read_idx(path, cache=True), 0)
    stamp = path.stat()
    replacement = tmp_path / "new.gz"
    write_idx(replacement, np.ones(10, np.uint8))
    assert replacement.stat().st_size == stamp.st_size
    os.replace(replacement, path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    np.testing.assert_array_equal(read_idx(path, cache=True), 1)


# ---------------------------------------------------------------- non-UTF-8 output

@pytest.fixture(scope="module")
def gd_model(tmp_path_factory) -> Path:
    """A gd model of the sample: its card has ≤, ‖…‖, η₀ and a sparkline of several epochs."""
    from mnistlr.data.registry import load_dataset
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    X, y = load_dataset("mnist-sample", "train")
    path = tmp_path_factory.mktemp("encodings") / "gd.joblib"
    save_model(fit_model(X, y, TrainOptions(solver="gd", per_class=20, epochs=4, patience=10),
                         dataset="mnist-sample"), path)
    return path


def run_encoded(args, env: dict) -> tuple[int, str, str]:
    """`mnistlr ARGS` with stdout in the encoding *env* gives it: status, stdout decoded strictly
    in that encoding (UTF-8 bytes on an ASCII stdout fail here), stderr."""
    done = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=300,
                          env=dict(os.environ, NO_COLOR="1", MNISTLR_HELP_CACHE="") | env)
    encoding = "latin-1" if env.get("PYTHONIOENCODING") == "latin-1" else "ascii"
    return done.returncode, done.stdout.decode(encoding), done.stderr.decode(encoding)


def blocks(text: str) -> list[list[str]]:
    """The runs of non-blank lines of *text*."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip():
            block.append(line)
        elif block:
            out.append(block)
            block = []
    return out


def assert_laid_out(text: str) -> None:
    """Every key/value block has its values in one column, no table row is wider than its header
    rule, and nothing was replaced by '?' (a character without a look-alike)."""
    import re

    assert "?" not in text and "Â" not in text and "â" not in text, text
    for block in blocks(text):
        rows = [re.match(r"^  (\S+(?: \S+)*)  +(\S.*)$", line) for line in block]
        if all(rows) and len(rows) > 1:
            assert len({m.start(2) for m in rows}) == 1, "\n".join(block)
        rules = [line for line in block if re.fullmatch(r" ?-{10,} ?", line)]
        if rules:
            assert all(len(line.rstrip()) <= len(rules[0]) for line in block), "\n".join(block)


ENCODINGS = [{"PYTHONIOENCODING": "ascii"}, {"PYTHONIOENCODING": "latin-1"},
             {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}]


@pytest.mark.parametrize("env", ENCODINGS, ids=["ascii", "latin-1", "LC_ALL=C"])
def test_non_utf8_output_keeps_its_layout_and_has_look_alikes(env, gd_model, tmp_path):
    code, out, err = run_encoded(["inspect", gd_model], env)
    assert code == 0 and err == "", err
    assert_laid_out(out)
    assert re.search(r"\|w\| <= [\d.]+, \|\|W\|\| = ", out) and "auto (eta0 = " in out
    assert re.search(r"training loss +[_.,\-~=*#]{4} ", out)   # the sparkline
    images = Path(__file__).parents[1] / "mnistlr" / "data" / "sample"
    code, out, err = run_encoded(["evaluate", gd_model, "--images", images / "mnist-sample-t10k-images-idx3-ubyte.gz",
                                  "--labels", images / "mnist-sample-t10k-labels-idx1-ubyte.gz"], env)
    assert code == 0 and err == "", err
    assert_laid_out(out)
    assert "true -> predicted" in out
    code, out, err = run_encoded(["sweep", "-d", "mnist-sample", "--per-class", "10", "--param", "l2=1e-4,1e-2",
                                  "--cv", "2", "--max-iter", "5", "-q"], env)
    assert code == 0, err
    assert_laid_out(out)
    assert re.search("best: .* " + ("\u00b1" if env.get("PYTHONIOENCODING") == "latin-1" else r"\+/-"), out)
    code, out, err = run_encoded(["train", "--help"], env)
    assert code == 0 and "eta(t)=eta0/(1+t/T)" in out.replace("\n", "").replace("|", "").replace(" ", "")
    assert len({len(line) for line in out.splitlines() if line.startswith(("|", "+"))}) == 1   # the panels' edges
