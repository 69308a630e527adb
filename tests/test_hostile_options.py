"""Options that must never reach the core unchecked: absurd penalties, counts, seeds, feature sizes,
hold-outs too small to exist, sweep ranges past int64, grids and --n-iter beyond anything that can run
(drawn lazily, so memory stays flat), and -j beyond the tasks or cores (capped, said once). Each bad
value: exit 2, one stderr line naming it and the fix, no traceback, no model written.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_hostile_streams import MEMORY_LIMIT, run
from test_reliability import assert_one_line_error

from mnistlr.tuning import spaces

SAMPLE = "-d mnist-sample --per-class 20"
TYPER_RANGE = r"(greater than or equal to|less than or equal to|not in the range)"
# a NaN passes Click's range check (Typer < 0.29) and meets mnistlr's own finite check instead
NAN_CHECK, NAN_FIX = r"must be a finite number (≥|>) 0, got nan", r"(non-negative|positive)"


def bound(n) -> str:
    """The range message naming the limit *n*, as pydantic (Typer 0.29) or Click words it."""
    return rf"(greater than or equal to {n}|less than or equal to {n}|not in the range (x>={n}|{n}<=x|\S*<=x<={n}))"


USAGE = r"see 'mnistlr (train|sweep) --help'"

TRAIN_CASES = [
    # (id, arguments, problem, fix)
    ("C-so-small-l2-overflows", "-C 1e-320", r"--C .* makes the L2 penalty 1/\(C·n_train\) = inf for 200",
     r"give --C ≥ 5e-13, e.g. --C 1"),
    ("C-so-small-l2-is-absurd", "-C 1e-300", r"1/\(C·n_train\) = 5e\+297 .*every weight would be 0", r"--C 1"),
    ("C-nan", "-C nan", r"--C must be a finite number > 0, got nan", r"positive value"),
    ("C-inf", "-C inf", r"--C must be a finite number > 0, got inf", r"positive value"),
    ("C-zero", "-C 0", r"--C must be > 0", r"positive value"),
    ("C-negative", "-C -1", r"--C.*-1 is not in the range x>=0", USAGE),
    ("l2-negative", "--l2 -1", r"--l2.*-1 is not in the range x>=0", USAGE),
    ("l2-nan", "--l2 nan", r"--l2 must be a finite number ≥ 0, got nan", r"non-negative"),
    ("l2-huge", "--l2 1e300", r"--l2 1e\+300 is more than 1e\+10: every weight would be 0", r"smaller --l2"),
    ("l2-huge-summed", "--loss-scale sum --l2 1e300", r"--l2 1e\+300 is more than", r"smaller --l2"),
    ("l1-nan", "--l1 nan", rf"--l1.*({bound(0)}|{NAN_CHECK})", rf"({USAGE}|{NAN_FIX})"),
    ("l1-huge", "--l1 1e11", r"--l1 1e\+11 is more than 1e\+10", r"smaller --l1"),
    ("lr-nan", "--solver gd --lr nan", r"--lr must be a finite number > 0, got nan", r"positive value"),
    ("lr-inf", "--solver gd --lr inf", r"--lr must be a finite number > 0, got inf", r"positive value"),
    ("lr-zero", "--solver gd --lr 0", r"--lr must be > 0", r"positive value"),
    ("accel-lbfgs", "--accel nesterov", r"--accel nesterov is momentum for --solver gd, not lbfgs",
     r"add --solver gd"),
    ("tol-nan", "--tol nan", rf"--tol.*({bound(0)}|{NAN_CHECK})", rf"({USAGE}|{NAN_FIX})"),
    ("anneal-inf", "--solver gd --anneal inf", r"--anneal must be a finite number > 0, got inf", r"positive value"),
    ("anneal-negative", "--solver gd --anneal -1", r"--anneal must be a finite number > 0, got -1", r"positive value"),
    ("tol-negative", "--tol -1", r"--tol must be a finite number > 0, got -1", r"positive value"),
    ("per-class-1-gd", "-d mnist-sample --per-class 1 --solver gd",
     r"--per-class 1 leaves 10 images, one per class: none can be held out, and --solver gd stops early",
     r"--per-class 2 or more"),
    ("per-class-1-sgd", "-d mnist-sample --per-class 1 --solver sgd", r"--solver sgd stops early on a hold-out",
     r"--per-class 2 or more"),
    ("per-class-1-l2-auto", "-d mnist-sample --per-class 1 --l2 auto", r"--l2 auto scores its path on a hold-out",
     r"--per-class 2 or more"),
    ("per-class-1-val-size", "-d mnist-sample --per-class 1 --val-size 3", r"a hold-out was asked for",
     r"--per-class 2 or more"),
    ("per-class-0", "-d mnist-sample --per-class 0", rf"--per-class.*{bound(1)}", USAGE),
    ("val-size-beyond-the-data", "--val-size 100000000000000000000", r"leaves no training data \(200 images",
     r"smaller than 200"),
    ("val-fraction-0", "--val-fraction 0", r"--val-fraction must be strictly between 0 and 1, got 0\.0", r"--val-fraction 0\.1"),
    ("val-fraction-1", "--val-fraction 1", r"--val-fraction must be strictly between 0 and 1, got 1\.0", r"--val-fraction 0\.1"),
    ("val-fraction-1.5", "--val-fraction 1.5", rf"--val-fraction.*{TYPER_RANGE}", USAGE),
    ("val-fraction-nan", "--val-fraction nan", rf"--val-fraction.*({TYPER_RANGE}|must be a finite number strictly "
     r"between 0 and 1, got nan)", rf"({USAGE}|--val-fraction 0\.1)"),
    ("epochs-10**12", "--solver gd --epochs 1000000000000", r"--epochs must be a whole number from 1 to 1,000,000",
     r"--epochs 100"),
    ("epochs-0", "--solver gd --epochs 0", rf"--epochs.*{bound(1)}", USAGE),
    ("max-iter-10**20", "--max-iter 100000000000000000000", r"--max-iter must be a whole number from 1 to 1,000,000",
     r"--max-iter 100"),
    ("patience-10**7", "--solver gd --patience 10000000", r"--patience must be a whole number from 1 to 1,000,000",
     r"--patience 3"),
    ("batch-size-0", "--solver sgd --batch-size 0", rf"--batch-size.*{bound(1)}", USAGE),
    ("batch-size-2**31", "--solver sgd --batch-size 2147483648", r"--batch-size must be a whole number from 1 to 2,147,483,647",
     r"--batch-size 256"),
    ("seed-negative", "--seed -1", rf"--seed.*{bound(0)}", USAGE),
    ("seed-past-32-bits", "--seed 4294967296", rf"--seed.*{bound(4294967295)}", USAGE),
    ("rff-99999999999", "--features rff:99999999999", r"rff's D must be from 1 to 65,536, got 99,999,999,999",
     r"--features deskew,pca:50,rff:5000"),
    ("pca-0", "--features pca:0", r"pca's K must be from 1 to 65,536, got 0", r"steps: deskew"),
    ("poly2-of-too-many", "--features pca:400,poly2", r"poly2 of 400 components makes more than 65,536 features",
     r"steps: deskew"),
]


@pytest.mark.parametrize("args, problem, fix", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_a_bad_training_option_is_one_line(cli, tmp_path, args, problem, fix):
    data = "" if args.startswith("-d ") else SAMPLE + " "
    result = cli("train", *f"{data}{args} -q -o".split(), tmp_path / "m.joblib")
    assert_one_line_error(result, 2, problem, fix)
    assert not (tmp_path / "m.joblib").exists() and list(tmp_path.glob(".*")) == []


GRID_5_OF_1000 = [f"--param={name}=" + ",".join(f"{(k + 1) * 1e-6:.6g}" for k in range(1000))
                  for name in ("l2", "l1", "lr", "tol", "anneal")]

SWEEP_CASES = [
    ("int-range-past-int64", "--param epochs=int:1:99999999999999999999999 --solver gd",
     r"99,999,999,999,999,999,999,999 is more than epochs can be \(1,000,000\)", r"accepted forms"),
    ("logint-range-past-int64", "--param max_iter=logint:1:99999999999999999999",
     r"is more than max_iter can be \(1,000,000\)", r"accepted forms"),
    ("int-list-past-the-limit", "--solver sgd --param batch_size=1,99999999999999",
     r"99,999,999,999,999 is more than batch_size can be \(2,147,483,647\)", r"accepted forms"),
    ("l2-range-to-1e300", "--param l2=log:1e-300:1e300", r"1e\+300 is more than l2 can be", r"accepted forms"),
    ("features-range-past-the-limit", "--param features=rff:int:10:9999999999",
     r"9,999,999,999 is more than rff can be \(65,536\)", r"accepted forms"),
    ("nystroem-range-past-the-limit", "--param features=nystroem:int:10:20000",
     r"20,000 is more than nystroem can be \(10,000\)", r"accepted forms"),
    ("int-range-not-whole", "--param epochs=int:1:1e30 --solver gd", r"'1e30' is not a whole number",
     r"accepted forms"),
    ("n-iter-past-the-limit", "--param l2=log:1e-4:1e-2 --n-iter 10000000000000",
     r"--n-iter must be from 1 to 1,000,000,000,000, got 10,000,000,000,000", r"--n-iter 20"),
    ("n-iter-0", "--param l2=log:1e-4:1e-2 --n-iter 0", rf"--n-iter.*{bound(1)}", USAGE),
    ("C-range-whose-l2-overflows", "--param C=log:1e-320:1",
     r"parameters C=\S+: --C .* makes the L2 penalty 1/\(C·n_train\) = inf for 100 training images",
     r"give --C ≥ 1e-12"),
    ("C-list-whose-l2-is-absurd", "--param C=1e-300,1", r"parameters C=1e-300: .* = 1e\+298", r"--C 1"),
    ("l1-range-with-ridge", "-m ridge --param l1=log:1e-5:1e-3",
     r"parameters l1=1e-05: --l1 does not apply to ridge", r"--model softmax or logistic"),
]


@pytest.mark.parametrize("args, problem, fix", [c[1:] for c in SWEEP_CASES], ids=[c[0] for c in SWEEP_CASES])
def test_a_bad_sweep_option_is_one_line(cli, tmp_path, args, problem, fix):
    result = cli("sweep", *SAMPLE.split(), "--cv", "2", "-q", *args.split())
    assert_one_line_error(result, 2, problem, fix)


def test_a_grid_beyond_anything_that_can_run_is_refused(cli):
    result = cli("sweep", *SAMPLE.split(), "--cv", "2", "-q", *GRID_5_OF_1000)
    assert_one_line_error(result, 2, r"the grid has 1,000,000,000,000,000 combinations, more than 1,000,000,000,000",
                          r"give ranges and --n-iter")


def test_candidates_are_made_one_at_a_time_and_by_index():
    specs = spaces.parse_params(["l2=log:1e-6:1e-1", "epochs=int:1:50"])
    mode, cands = spaces.candidates(specs, n_iter=300_000_000, seed=7)
    assert mode == "random" and len(cands) == 300_000_000
    last = cands[299_999_999]
    assert last == cands[-1] == spaces.candidates(specs, 300_000_000, 7)[1][299_999_999]
    assert cands[:3] == [cands[0], cands[1], cands[2]] and len({json.dumps(c) for c in cands[:50]}) == 50
    grid = spaces.candidates(spaces.parse_params(["l2=1,2,3", "init=zeros,normal"]), 1, 0)[1]
    assert list(grid) == [{"l2": a, "init": b} for a in (1.0, 2.0, 3.0) for b in ("zeros", "normal")]


def test_hundreds_of_millions_of_trials_are_drawn_lazily(tmp_path):
    """Under a 1.5 GiB address-space limit (a list of 3·10⁸ candidates alone would take ~100 GB),
    a tiny budget stops the search after its first wave and reports the size it was asked for."""
    result = run(["sweep", *SAMPLE.split(), "--per-class", "10", "--cv", "2", "-q", "-j", "1", "--json",
                  "--param", "l2=log:1e-4:1e-2", "--n-iter", "300000000", "--budget", "0.01"],
                 limit=MEMORY_LIMIT, timeout=300, env={"MNISTLR_DATA": str(tmp_path)})
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n_candidates"] == 300_000_000 and report["budget_stopped"]
    assert 1 <= report["n_completed"] <= 4
    assert result.err.count("\n") == 1 and "ended the search" in result.err and "Traceback" not in result.err


def test_jobs_far_above_the_tasks_or_cores_are_capped_and_said_once(cli):
    args = [*SAMPLE.split(), "--per-class", "10", "--cv", "2", "--param", "l2=1e-3,1e-2", "--json", "-q"]
    one = cli("sweep", *args, "-j", "1")
    many = cli("sweep", *args, "-j", str(10**30))
    assert one.code == many.code == 0, many.err
    notes = many.err.strip().splitlines()
    assert len(notes) == 1 and "Traceback" not in many.err, many.err
    assert notes[0].startswith(f"mnistlr: -j {10**30:,} is more than the ") and "at a time" in notes[0]
    a, b = json.loads(one.out), json.loads(many.out)
    assert b["n_jobs"] <= 4 and b["notes"] == [notes[0].removeprefix("mnistlr: ")]
    assert one.err == "" and a["notes"] == []
    # the same trials, scores and ranks whatever -j
    assert [(t["params"], t["fold_scores"], t["rank"]) for t in a["trials"]] == \
           [(t["params"], t["fold_scores"], t["rank"]) for t in b["trials"]]


def test_the_address_space_limit_of_these_tests_is_real():
    """The lazy-draw test proves something only if the child's limit bites: check it does."""
    code = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
            f"x = bytearray({2 * MEMORY_LIMIT})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "MemoryError" in done.stderr


@pytest.mark.parametrize("args, where", [(("train", "-d", "mnist-sample", "-o"), "mnistlr train"),
                                         (("predict", "m.joblib", "-o"), "mnistlr predict"),
                                         (("-o",), "mnistlr")])
def test_an_option_missing_its_value_points_to_its_commands_help(cli, args, where):
    # Click words a value missing at the end of the line as the group's error: the pointer still names the command
    result = cli(*args)
    assert result.code == 2 and result.out == ""
    assert result.err.strip().endswith(f"(see '{where} --help')") and result.err.count("\n") == 1
