"""`mnistlr inspect`: a saved model's card, and its weight images drawn in the terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mnistlr.cli.base import JsonOpt, ModelArg, command


@command(
    "inspect",
    ("the model card", "mnistlr inspect sample.joblib"),
    ("each class's weight image drawn in the terminal", "mnistlr inspect sample.joblib --weights"),
    ("the card as one JSON object", "mnistlr inspect sample.joblib --json"),
)
def inspect_command(
    model: ModelArg,
    weights: Annotated[bool, typer.Option(
        "--weights", "-w", help="Draw each class's weight image (red: evidence for, blue: against).", metavar="")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a saved model's card, and optionally its weight images.

    Kind, solver, hyperparameters, preprocessing, training data and time, stop reason, final
    metrics, loss history as a sparkline, file format and library versions.
    """
    from mnistlr.api.inspect import inspect

    result = inspect(model, weights=weights)
    if json_out:
        typer.echo(json.dumps(result.card))
        return
    from mnistlr.cli.base import stdout_console
    from mnistlr.cli.render import model_card_renderables

    console = stdout_console()
    for renderable in model_card_renderables(result.card):
        console.print(renderable)
    if result.weights:
        _print_weights(console, result.weights)
    if weights and result.card.get("weights_note"):
        note = result.card["weights_note"]
        console.print(f"Weight images {note}" if result.weights else note[0].upper() + note[1:])


def _print_weights(console, images: list) -> None:
    """The weight images side by side, cropped to the pixels any class uses and shrunk (area
    average) so that they fit the terminal in at most three rows, with a legend."""
    import numpy as np

    from mnistlr.cli.render import (
        crop_box,
        fit_size,
        image_grid,
        resize,
        wants_color,
        weight_legend,
    )

    titles = [title for title, _ in images]
    arrays = [w for _, w in images]
    vmax = max(float(np.abs(w).max()) for w in arrays) or 1.0
    rows, cols = crop_box(arrays, threshold=0.02 * vmax)
    arrays = [np.asarray(w[rows, cols], np.float64) for w in arrays]
    width = min(console.width, 100)
    size = fit_size(len(arrays), arrays[0].shape[1], width)
    if size < arrays[0].shape[1]:
        # keep the aspect ratio: rows scale like columns
        height = max(1, round(arrays[0].shape[0] * size / arrays[0].shape[1]))
        arrays = [resize(w, height, size) for w in arrays]
        vmax = max(float(np.abs(w).max()) for w in arrays) or 1.0
    color = wants_color(console)
    console.print("Weight images", style="bold")
    console.print(image_grid(arrays, titles, diverging=True, color=color, vmax=vmax, width=width))
    pair = tuple(titles[0].split(" vs ")) if len(titles) == 1 and " vs " in titles[0] else None
    console.print(weight_legend(vmax, color, pair))
