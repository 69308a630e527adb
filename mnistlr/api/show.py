"""`show`: look at data before training and at a model's mistakes after.

Three modes, one function (`show`):
- overview: image count and shape, label counts and shares (train and test side by side for
  a registered dataset), pixel statistics, and a few example images of each class;
- image (`index`): one image with its label (and, with a model, its prediction);
- errors (`model` + `errors`): the test images the model misclassifies with the highest
  confidence, and which true → predicted pairs they fall in.

The result's `info` is plain JSON-ready data (what `--json` prints); `panels` holds the raw
pixels (uint8, (rows, cols)) to draw, grouped in rows with a heading and a title per image.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from mnistlr.errors import DataError, UsageError

DEFAULT_PER_CLASS = 3   # three cropped 28×28 digits per class fit an 80-column terminal
DEFAULT_TOP = 10
_CHUNK = 4096           # images per bincount chunk (keeps the int64 temporary small)


@dataclasses.dataclass
class Panel:
    """One row of pictures: a heading (e.g. the class label), images (rows, cols) raw pixels
    0–255, and a title per image (may hold a newline)."""

    heading: str
    images: list
    titles: list[str]


@dataclasses.dataclass
class ShowResult:
    """mode: "overview" | "image" | "errors"; info: JSON-ready; panels: pictures to draw;
    figure: the PNG written (or None)."""

    mode: str
    info: dict[str, Any]
    panels: list[Panel]
    figure: str | None = None


# ---- data ----------------------------------------------------------------------------------

def load_source(dataset: str | None, split: str, images: Path | None, labels: Path | None,
                data_dir: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    """Images uint8 (n, rows, cols), labels (n,) and where they came from."""
    from mnistlr.data import registry

    if images is not None:
        X, y = registry.load_source(images, labels, split, data_dir)
        source = {"images": str(images), "labels": None if labels is None else str(labels)}
    else:
        X, y = registry.load_dataset(dataset, split, data_dir)
        source = {"dataset": dataset, "split": split}
    if len(X) == 0:
        raise DataError(f"{_where(source)} holds no images", "give a file with at least one image")
    return X, y, source


def _where(source: dict[str, Any]) -> str:
    if "dataset" in source:
        return f"the {source['split']} split of {source['dataset']}"
    return Path(source["images"]).name


def class_names(dataset: str | None, data_dir: Path | None = None) -> dict[int, str]:
    """Label → name for a registered dataset whose classes have names other than the digits."""
    from mnistlr.data.registry import get_spec

    if dataset is None:
        return {}
    names = get_spec(dataset, data_dir).classes
    if list(names) == [str(k) for k in range(len(names))]:
        return {}
    return dict(enumerate(names))


def pixel_stats(images) -> dict[str, float]:
    """Mean, std, share of zero pixels, min and max of uint8 images (n, rows, cols), exactly
    (from a histogram of the 256 values, counted in chunks)."""
    import numpy as np

    flat = images.reshape(len(images), -1)
    hist = np.zeros(256, np.int64)
    for start in range(0, len(flat), _CHUNK):
        hist += np.bincount(flat[start:start + _CHUNK].ravel(), minlength=256)
    values = np.arange(256, dtype=np.int64)
    n = int(hist.sum())
    # μ = Σ v·h_v / n;  σ² = Σ v²·h_v / n − μ²
    mean = int(hist @ values) / n
    var = max(int(hist @ (values * values)) / n - mean * mean, 0.0)
    seen = np.flatnonzero(hist)
    return {"mean": mean, "std": var ** 0.5, "zero_share": int(hist[0]) / n,
            "min": int(seen[0]), "max": int(seen[-1])}


def label_counts(labels, all_labels) -> list[dict[str, Any]]:
    """[{label, count, share}] for each of *all_labels* (sorted)."""
    import numpy as np

    n = len(labels)
    return [{"label": int(k), "count": int(c), "share": int(c) / n if n else 0.0}
            for k, c in ((k, np.count_nonzero(labels == k)) for k in all_labels)]


def pick_examples(labels, per_class: int, seed: int | None) -> dict[int, list[int]]:
    """Label → indices of up to *per_class* images: the first ones, or a seeded choice (sorted)."""
    import numpy as np

    rng = None if seed is None else np.random.default_rng(seed)
    picked = {}
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        if rng is not None:
            where = np.sort(rng.choice(where, size=min(per_class, len(where)), replace=False))
        picked[int(label)] = [int(i) for i in where[:per_class]]
    return picked


# ---- modes ---------------------------------------------------------------------------------

def overview(dataset: str | None, split: str, images: Path | None, labels: Path | None,
             data_dir: Path | None, per_class: int, seed: int | None) -> ShowResult:
    """Counts, shapes, label shares and pixel statistics of every split, examples of *split*."""
    import numpy as np

    from mnistlr.data.registry import get_spec

    parts: dict[str, tuple[Any, Any]] = {}
    if images is not None:
        X, y, source = load_source(None, split, images, labels, data_dir)
        parts["file"] = (X, y)
    else:
        spec = get_spec(dataset, data_dir)
        for name in (s for s in ("train", "test") if f"{s}-images" in spec.files):
            X_s, y_s, _ = load_source(dataset, name, None, None, data_dir)
            parts[name] = (X_s, y_s)
        X, y = parts[split] if split in parts else load_source(dataset, split, None, None, data_dir)[:2]
        source = {"dataset": dataset, "split": split,
                  "description": spec.description}
    all_labels = np.unique(np.concatenate([p[1] for p in parts.values()]))
    splits = {name: {"n_images": int(len(X_s)), "image_shape": [int(d) for d in X_s.shape[1:]],
                     "pixels": pixel_stats(X_s), "labels": label_counts(y_s, all_labels)}
              for name, (X_s, y_s) in parts.items()}
    names = class_names(dataset, data_dir)
    examples = pick_examples(y, per_class, seed)
    info = {"mode": "overview", "source": source, "splits": splits,
            "classes": [{"label": int(k), "name": names.get(int(k), str(int(k)))} for k in all_labels],
            "examples": {"per_class": per_class, "seed": seed,
                         "indices": {str(k): v for k, v in examples.items()}}}
    panels = [Panel(str(k), [X[i] for i in idx], [f"#{i}" for i in idx]) for k, idx in examples.items()]
    return ShowResult("overview", info, panels)


def check_index(index: int, n_images: int, source: dict[str, Any]) -> None:
    """UsageError naming the valid range unless 0 ≤ index < n_images."""
    if not 0 <= index < n_images:
        raise UsageError(f"--index {index} is out of range: {_where(source)} has {n_images:,} images",
                         f"give an index from 0 to {n_images - 1}")


def one_image(X, y, source: dict[str, Any], index: int, model=None) -> ShowResult:
    """Image *index* with its label (and the model's prediction and probabilities)."""
    check_index(index, len(X), source)
    label = int(y[index])
    what = f"{source['split']} image" if "dataset" in source else "image"
    info = {"mode": "image", "source": source, "index": index, "label": label,
            "image_shape": [int(d) for d in X.shape[1:]], "pixels": X[index].tolist()}
    title = f"label {label}, {what} {index}"
    if model is not None:
        P = model.predict_proba(X[index:index + 1])[0]
        predicted = int(model.predict(X[index:index + 1])[0])
        column = {int(c): i for i, c in enumerate(model.classes)}
        info |= {"predicted": predicted, "probability": float(P[column[predicted]]),
                 "probability_true": float(P[column[label]]) if label in column else None,
                 "proba": {str(int(c)): float(p) for c, p in zip(model.classes, P, strict=True)}}
    return ShowResult("image", info, [Panel("", [X[index]], [title])])


def confident_errors(model, X, y, top: int, only_model_classes: bool = False) -> dict[str, Any]:
    """The *top* misclassified images, most confident (highest predicted probability) first.

    Images whose label the model does not know are refused, as by `evaluate`, or with
    *only_model_classes* left out. Returns {n_images, n_errors, accuracy, left_out, errors:
    [{index, label, predicted, probability, probability_true}], pairs: [{true, predicted,
    count, total}]} (count among the listed, total among all errors).
    """
    import numpy as np

    from mnistlr.evaluation.metrics import model_class_rows

    keep = model_class_rows(y, model.classes, only_model_classes)
    S = model.decision_function(X[keep])
    P, predicted = model.proba_from_scores(S), model.labels_from_scores(S)
    truth = y[keep].astype(np.int64)
    wrong = np.flatnonzero(predicted != truth)
    column = {int(c): i for i, c in enumerate(model.classes)}
    col_pred = np.array([column[int(v)] for v in predicted[wrong]], np.int64)
    col_true = np.array([column[int(v)] for v in truth[wrong]], np.int64)
    confidence = P[wrong, col_pred]
    # most confident first; ties by image index
    order = np.lexsort((keep[wrong], -confidence))[:top]
    errors = [{"index": int(keep[wrong[j]]), "label": int(truth[wrong[j]]),
               "predicted": int(predicted[wrong[j]]), "probability": float(confidence[j]),
               "probability_true": float(P[wrong[j], col_true[j]])} for j in order]
    total = Counter(zip(truth[wrong].tolist(), predicted[wrong].tolist(), strict=True))
    listed = Counter((e["label"], e["predicted"]) for e in errors)
    pairs = [{"true": t, "predicted": p, "count": c, "total": total[(t, p)]}
             for (t, p), c in sorted(listed.items(), key=lambda kv: (-kv[1], -total[kv[0]], kv[0]))]
    return {"n_images": int(len(keep)), "n_errors": int(len(wrong)),
            "accuracy": 1.0 - len(wrong) / len(keep), "left_out": int(len(y) - len(keep)),
            "errors": errors, "pairs": pairs}


def format_p(p: float, equals: str = "") -> str:
    """A probability to 4 decimals that never rounds a non-certain value up to 1."""
    return "> 0.9999" if 0.99995 <= p < 1 else f"{equals}{p:.4f}"


def model_errors(model, model_path: Path, X, y, source: dict[str, Any], top: int,
                 only_model_classes: bool = False) -> ShowResult:
    """The errors mode: `confident_errors` plus one panel of the listed images."""
    try:
        found = confident_errors(model, X, y, top, only_model_classes)
    except DataError as exc:   # the labels against the model's: name the data
        raise DataError(f"{_where(source)}: {exc.message}", exc.hint) from None
    info = {"mode": "errors", "model": str(model_path), "kind": model.kind, "source": source} | found
    titles = [f"#{e['index']}\n{e['label']}→{e['predicted']} {format_p(e['probability'])}"
              for e in found["errors"]]
    return ShowResult("errors", info, [Panel("", [X[e["index"]] for e in found["errors"]], titles)])


# ---- the command ---------------------------------------------------------------------------

def _check_options(dataset, images, labels, split, index, model, errors, only_model_classes=False,
                   top=DEFAULT_TOP, per_class=DEFAULT_PER_CLASS, seed=None) -> None:
    """UsageErrors for the combinations that make no sense, and for options the view does not read."""
    if labels is not None and images is None:
        raise UsageError("--labels goes with --images", "give the images too, or a DATASET")
    if images is not None and dataset is not None:
        raise UsageError("--images and DATASET both name the data", "give only one")
    if errors and model is None:
        raise UsageError("--errors needs a model", "add --model MODEL")
    if model is not None and not errors and index is None:
        raise UsageError("--model is used with --errors or --index", "add --errors to list its mistakes")
    if errors and index is not None:
        raise UsageError("--errors and --index are two different views", "give only one")
    if only_model_classes and not errors:
        raise UsageError("`only_model_classes` goes with `errors`", "add `errors`, or leave it out")
    if top != DEFAULT_TOP and not errors:
        raise UsageError("`top` counts the mistakes of `errors`", "add `errors`, or leave it out")
    unread = [f"`{name}`" for name, given in (("per_class", per_class != DEFAULT_PER_CLASS),
                                              ("seed", seed is not None)) if given]
    if unread and (errors or index is not None):
        raise UsageError(f"{' and '.join(unread)} choose{'s' if len(unread) == 1 else ''} the overview's example "
                         f"images, not read with `{'errors' if errors else 'index'}`", "leave it out" if len(unread) == 1 else "leave them out")
    if images is None and dataset is None and model is None:
        raise UsageError("no data named", "give a DATASET (e.g. mnist-sample) or --images and --labels")


def show(dataset: str | None = None, *, split: str | None = None, images: Path | None = None,
         labels: Path | None = None, data_dir: Path | None = None, index: int | None = None,
         model: Path | None = None, errors: bool = False, top: int = DEFAULT_TOP,
         per_class: int = DEFAULT_PER_CLASS, seed: int | None = None,
         plot: Path | None = None, only_model_classes: bool = False) -> ShowResult:
    """Run `mnistlr show`; see the module docstring for the modes. *split* defaults to test for
    errors and to train otherwise; with a model and no data named, the model's dataset is used.
    With *plot*, the same pictures are written as a PNG figure. Images whose label the model does
    not know are an error in the errors mode, as in `evaluate`, unless *only_model_classes*."""
    from mnistlr.data.registry import get_spec

    _check_options(dataset, images, labels, split, index, model, errors, only_model_classes, top, per_class, seed)
    if plot is not None:
        _check_plot_path(Path(plot))
    if dataset is not None:
        get_spec(dataset, data_dir)
    if top < 1 or per_class < 1:
        raise UsageError("--top and --per-class must be at least 1", "give a positive whole number")
    fitted = _load_model(model)
    if fitted is not None and dataset is None and images is None:
        dataset = _model_dataset(fitted)
    split = split or ("test" if errors or images is not None else "train")
    if index is None and not errors:
        result = overview(dataset, split, images, labels, data_dir, per_class, seed)
    else:
        X, y, source = load_source(dataset, split, images, labels, data_dir)
        result = (model_errors(fitted, model, X, y, source, top, only_model_classes) if errors
                  else one_image(X, y, source, index, fitted))
    if plot is not None:
        result.figure = str(write_figure(result, plot))
    return result


def write_figure(result: ShowResult, path: Path) -> Path:
    """The PNG of `--plot`: the same pictures as the terminal, with fuller titles."""
    from mnistlr.evaluation.figures import plot_image_columns, plot_image_grid

    info = result.info
    where = _where(info["source"])
    if result.mode == "overview":
        ex = info["examples"]
        how = (f"the first {ex['per_class']}" if ex["seed"] is None
               else f"{ex['per_class']} random (seed {ex['seed']})")
        names = {str(c["label"]): c["name"] for c in info["classes"]}
        columns = [(p.heading if names[p.heading] == p.heading else f"{p.heading}: {names[p.heading]}",
                    p.images, p.titles) for p in result.panels]
        return plot_image_columns(columns, path, f"{where}: {how} images of each class\n"
                                                 "(above each image: its index, for --index)")
    if result.mode == "image":
        panel = result.panels[0]
        title = panel.titles[0]
        if "predicted" in info:
            title += f"\nmodel: {info['predicted']} with p {format_p(info['probability'], '= ')}"
        return plot_image_grid(panel.images, [title], path, where, large=True)
    titles = [f"#{e['index']}: {e['label']} → {e['predicted']}\np {format_p(e['probability'], '= ')}"
              for e in info["errors"]]
    title = (f"{Path(info['model']).name} on {where}: {info['n_errors']:,} mistakes in "
             f"{info['n_images']:,} images\nthe {len(titles)} most confident (title: index: true → predicted, "
             "probability of the prediction)")
    if not titles:
        title = f"{Path(info['model']).name} on {where}: no mistakes in {info['n_images']:,} images"
    return plot_image_grid(result.panels[0].images, titles, path, title)


def _check_plot_path(path: Path) -> None:
    """Fail before any work when the figure cannot be written (no matplotlib, no folder)."""
    import errno

    from mnistlr.evaluation.figures import require_matplotlib
    from mnistlr.io.atomic import describe_os_error

    require_matplotlib("writing the 'show' figure (--plot)")
    if path.is_dir():
        raise describe_os_error(path, IsADirectoryError(errno.EISDIR, "is a directory"))
    if not path.parent.is_dir():
        raise describe_os_error(path, FileNotFoundError(errno.ENOENT, "no such directory"))


def _load_model(path: Path | None):
    if path is None:
        return None
    from mnistlr.learn.persistence import load_model

    return load_model(path)


def _model_dataset(model) -> str:
    name = model.meta.get("dataset")
    if name is None:
        raise UsageError("the model does not record a dataset name (it was trained on files or arrays, not a named dataset)",
                         "give a DATASET or --images PATH --labels PATH")
    return name
