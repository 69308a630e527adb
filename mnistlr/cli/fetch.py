"""`mnistlr fetch`: download or import datasets, verified; `--list` shows what is where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli.base import (
    DataDirOpt,
    JsonOpt,
    QuietOpt,
    command,
    complete_dataset,
)


def _status_text(status: dict) -> str:
    if status["bundled"]:
        return "bundled"
    if status.get("failed"):
        return f"bad checksum ({len(status['failed'])} of {len(status['files'])})"
    if status.get("imported") and status["files_present"]:
        size = sum(f["bytes"] or 0 for f in status["files"].values())
        return f"imported ({size / 1e6:.1f} MB)" if status["present"] else "imported, files missing"
    if status["present"]:
        return "present"
    if status["files_present"]:
        return f"partial ({status['files_present']} of {len(status['files'])} files)"
    return "missing"


def _print_list(statuses: list[dict], data_dir: Path) -> None:
    from rich import box
    from rich.table import Table

    from mnistlr.cli.base import stdout_console

    table = Table(title=f"datasets (data directory: {data_dir})", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("dataset", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("description", overflow="fold", max_width=28)  # paths get the room
    for status in statuses:
        where = status["where"]
        if not status["present"] and status["local_source"]:
            where += f" (will import {status['local_source']})"
        table.add_row(status["name"], _status_text(status), where, status["description"])
    stdout_console().print(table)


def _summary(result: dict) -> str:
    if result["status"] in ("bundled", "imported"):
        return f"{result['name']}: {result['message']}"
    counts: dict[str, int] = {}
    for f in result["files"]:
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    done = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"{result['name']}: {result['status']} in {result['where']} ({done})"


@command(
    "fetch",
    ("list every dataset, whether it is present locally and where", "mnistlr fetch --list"),
    ("download MNIST from its public mirrors into the data directory", "mnistlr fetch mnist"),
    ("import the four .gz files of a dataset from a local folder",
     "mnistlr fetch fashion-mnist --source /usr/share/datasets/fashion-mnist"),
)
def fetch_command(
    datasets: Annotated[list[str] | None, typer.Argument(
        metavar="DATASET", show_default=False, autocompletion=complete_dataset,
        help="Datasets to fetch (default: mnist); see --list.")] = None,
    list_: Annotated[bool, typer.Option(
        "--list", "-l", help="List every dataset, whether it is present locally and where; fetch nothing.", metavar="")] = False,
    mirror: Annotated[list[str] | None, typer.Option(
        "--mirror", metavar="URL", show_default=False,
        help="http(s) base URL to fetch from (the file name is appended); repeatable; replaces the "
             "built-in mirrors. Local files: --source.")] = None,
    source: Annotated[Path | None, typer.Option(
        "--source", metavar="DIR", file_okay=False,
        help="Import the .gz files from this local folder instead of downloading.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Fetch again even when the files are present and verify.", metavar="")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.1, metavar="SECONDS", show_default=False,
        help="Give up on a mirror when one read waits longer, or one whole file takes longer, than "
             "this (default: 30 s per read, 10 min per file).")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, max=10, help="Retries per mirror after a timeout or a broken connection.")] = 2,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Download datasets into the data directory and verify their checksums.

    Each file is verified (the published MD5, or the SHA-256 of its contents) before it gets
    its final name, so an interrupted or failed fetch never leaves a file that looks complete;
    an interrupted download resumes where it stopped. fashion-mnist is imported from
    /usr/share/datasets/fashion-mnist when that folder exists (apt-get install
    dataset-fashion-mnist). mnist-sample is bundled with mnistlr and needs no fetch.
    """
    from mnistlr.api.fetch import fetch, list_datasets
    from mnistlr.cli.base import stdout_console
    from mnistlr.data.registry import get_spec, resolve_data_dir

    names = list(datasets or [])
    for name in names:
        get_spec(name, data_dir)  # unknown names fail (exit 2) before anything happens
    if list_:
        statuses = list_datasets(data_dir, names or None)
        if json_:
            typer.echo(json.dumps({"data_dir": str(resolve_data_dir(data_dir)),
                                   "datasets": statuses}, indent=2))
        else:
            _print_list(statuses, resolve_data_dir(data_dir))
        return
    from mnistlr.cli.progress import FetchProgress

    with FetchProgress(quiet) as reporter:
        results = fetch(names or ["mnist"], data_dir, mirrors=mirror, source=source, force=force,
                        timeout=timeout, retries=retries, progress=reporter)
    if json_:
        typer.echo(json.dumps({"datasets": results}, indent=2))
        return
    console = stdout_console()
    for result in results:
        console.print(_summary(result), markup=False, soft_wrap=True)
