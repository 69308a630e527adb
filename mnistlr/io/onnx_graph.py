"""The ONNX export of a model (the `onnx` extra): one graph, preprocessing folded in.

Input ``images``: uint8 or float32, shaped (n, rows, cols) or (n, rows·cols), both chosen at
export (ONNX requires a graph input to have one element type and one rank; the graph body is
the same, so export twice for both). Float32 images follow the scale part of the one pixel rule
(`mnistlr.io.pixels`): a batch whose largest value is at most 1 is multiplied by 255 (the
graph cannot refuse values the rule refuses: check them before, or use uint8).
Feature maps (a model's `--features` pipeline, given as plain arrays by `feature_maps`) come
between the pixels and the scores: ("affine", W, b) is x·W + b summed in float64 and rounded to
float32, ("cos", c) is cos(x)·c, ("poly2",) appends the products x_i·x_j (i ≤ j), in float32, and
("rbf", L, gamma, unit) is exp(−gamma·‖x·unit − l_j‖²) for the rows l_j of L, kept in float64,
and ("round_rows", B) rounds each row to B bits of its own largest |x| (the rows rff's float32
projection takes after pca).
Outputs: ``label`` (n,) int64 and ``probabilities`` (n, n_classes) float32, as
`mnistlr predict --proba` computes them: scores s = x·W_raw + b_raw summed in float64 and
rounded to float32; softmax (softmax, ridge), σ and 1 − σ (binary logistic) or σ_k / Σ σ
(one-vs-rest); the label is classes[argmax s] (classes[s > 0] for one output).
"""

from __future__ import annotations

import os
from typing import Any

from mnistlr.errors import MissingExtraError, UsageError
from mnistlr.io.atomic import atomic_write

INPUT_TYPES = ("uint8", "float32")
INPUT_LAYOUTS = ("images", "flat")   # (n, rows, cols) or (n, rows·cols)
# (NumPy and onnx are imported when a graph is built: the command line reads these choices)
OPSET = 17
IR_VERSION = 8   # read by onnxruntime 1.10 and later


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("onnx", "onnx", "exporting to ONNX") from None
    return onnx


def _pixels(h: Any, nodes: list, input_type: str, n_features: int) -> str:
    """Nodes turning the input into raw pixels (n, n_features) float64; returns the name."""
    nodes.append(h.make_node("Reshape", ["images", "flat_shape"], ["flat"]))
    if input_type == "uint8":
        nodes.append(h.make_node("Cast", ["flat"], ["x64"], to=h.TensorProto.DOUBLE))
        return "x64"
    # x_raw = 255·x when max x ≤ 1 (the [0, 1] scale), else x (in float32, as the readers do)
    nodes += [h.make_node("ReduceMax", ["flat"], ["top"], keepdims=0),
              h.make_node("LessOrEqual", ["top", "one"], ["unit_scale"]),
              h.make_node("Where", ["unit_scale", "c255", "one"], ["factor"]),
              h.make_node("Mul", ["flat", "factor"], ["x32"]),
              h.make_node("Cast", ["x32"], ["x64"], to=h.TensorProto.DOUBLE)]
    return "x64"


def _outputs(h: Any, nodes: list, kind: str, n_outputs: int) -> None:
    """Nodes from float32 scores ``s`` to ``probabilities`` and ``label``."""
    if kind == "logistic":
        # σ(s) = 1/(1+e^−s) from e^−|s|, as the model computes it (onnxruntime's Sigmoid is an
        # approximation that loses the relative precision of small σ, which one-vs-rest divides)
        nodes += [h.make_node("Abs", ["s"], ["abs_s"]), h.make_node("Neg", ["abs_s"], ["minus_abs"]),
                  h.make_node("Exp", ["minus_abs"], ["e"]), h.make_node("Add", ["one", "e"], ["one_e"]),
                  h.make_node("Div", ["one", "one_e"], ["sig_pos"]), h.make_node("Div", ["e", "one_e"], ["sig_neg"]),
                  h.make_node("GreaterOrEqual", ["s", "zero"], ["nonneg"]),
                  h.make_node("Where", ["nonneg", "sig_pos", "sig_neg"], ["sig"])]
        if n_outputs == 1:
            # p₀ = 1 − σ(s), p₁ = σ(s)
            nodes += [h.make_node("Sub", ["one", "sig"], ["p0"]),
                      h.make_node("Concat", ["p0", "sig"], ["probabilities"], axis=1)]
        else:
            # p_k = σ(s_k) / Σ_j σ(s_j)
            nodes += [h.make_node("ReduceSum", ["sig", "axis1"], ["total"], keepdims=1),
                      h.make_node("Div", ["sig", "total"], ["probabilities"])]
    else:
        # p_k = e^{s_k} / Σ_j e^{s_j}
        nodes.append(h.make_node("Softmax", ["s"], ["probabilities"], axis=1))
    if n_outputs == 1:
        nodes += [h.make_node("Greater", ["s", "zero"], ["positive"]),
                  h.make_node("Cast", ["positive"], ["index2d"], to=h.TensorProto.INT64),
                  h.make_node("Reshape", ["index2d", "minus_one"], ["index"])]
    else:
        nodes.append(h.make_node("ArgMax", ["s"], ["index"], axis=1, keepdims=0))
    nodes.append(h.make_node("Gather", ["classes", "index"], ["label"], axis=0))


def _feature_nodes(h: Any, nodes: list, constants: dict, x64: str, maps: list, np: Any) -> str:
    """Nodes applying the feature *maps* to raw pixels *x64* (float64); returns the float64 features."""
    x32 = None
    for i, step in enumerate(maps):
        if x32 is not None and step[0] in ("affine", "rbf"):
            nodes.append(h.make_node("Cast", [x32], [f"f{i}_x64"], to=h.TensorProto.DOUBLE))
            x64 = f"f{i}_x64"
        if step[0] == "affine":
            # z = x·W + b in float64, rounded to float32
            constants[f"f{i}_W"], constants[f"f{i}_b"] = np.asarray(step[1], np.float64), np.asarray(step[2], np.float64)
            nodes += [h.make_node("MatMul", [x64, f"f{i}_W"], [f"f{i}_xw"]),
                      h.make_node("Add", [f"f{i}_xw", f"f{i}_b"], [f"f{i}_z64"]),
                      h.make_node("Cast", [f"f{i}_z64"], [f"f{i}_z"], to=h.TensorProto.FLOAT)]
        elif step[0] == "rbf":
            x64, x32 = _rbf_nodes(h, nodes, constants, x64, step, f"f{i}", np), None
            continue
        elif step[0] == "round_rows":
            _round_rows_nodes(h, nodes, constants, x32, int(step[1]), f"f{i}", np)
        elif step[0] == "cos":
            # φ = cos(z)·c
            constants[f"f{i}_c"] = np.array(step[1], np.float32)
            nodes += [h.make_node("Cos", [x32], [f"f{i}_cos"]), h.make_node("Mul", [f"f{i}_cos", f"f{i}_c"], [f"f{i}_z"])]
        elif step[0] == "poly2":
            # [z, z_i·z_j for i ≤ j]
            k = int(step[1])
            left, right = np.triu_indices(k)
            constants[f"f{i}_left"], constants[f"f{i}_right"] = left.astype(np.int64), right.astype(np.int64)
            nodes += [h.make_node("Gather", [x32, f"f{i}_left"], [f"f{i}_zl"], axis=1),
                      h.make_node("Gather", [x32, f"f{i}_right"], [f"f{i}_zr"], axis=1),
                      h.make_node("Mul", [f"f{i}_zl", f"f{i}_zr"], [f"f{i}_pairs"]),
                      h.make_node("Concat", [x32, f"f{i}_pairs"], [f"f{i}_z"], axis=1)]
        else:
            raise ValueError(f"unknown feature map {step[0]!r}")
        x32 = f"f{i}_z"
    if x32 is None:
        return x64
    nodes.append(h.make_node("Cast", [x32], ["features64"], to=h.TensorProto.DOUBLE))
    return "features64"


def _round_rows_nodes(h: Any, nodes: list, constants: dict, x32: str, bits: int, name: str, np: Any) -> None:
    """Nodes rounding each row of *x32* (n, d) float32 on its own grid, as the model's projection
    does: x = q·2^(E−B), q = round(x·2^(B−E)) to even, 2^(E−1) ≤ max|x| < 2^E (1 for a zero row);
    E from log2, then moved by one where a power of two shows it off. Writes f"{name}_z"."""
    n = name
    constants |= {f"{n}_0": np.array(0.0, np.float64), f"{n}_1": np.array(1.0, np.float64),
                  f"{n}_2": np.array(2.0, np.float64), f"{n}_ln2": np.array(np.log(2.0), np.float64),
                  f"{n}_bits": np.array(float(bits), np.float64)}
    node = h.make_node
    nodes += [node("Cast", [x32], [f"{n}_x"], to=h.TensorProto.DOUBLE),
              node("Abs", [f"{n}_x"], [f"{n}_abs"]),
              node("ReduceMax", [f"{n}_abs"], [f"{n}_top0"], axes=[1], keepdims=1),
              node("Greater", [f"{n}_top0", f"{n}_0"], [f"{n}_inked"]),
              node("Where", [f"{n}_inked", f"{n}_top0", f"{n}_1"], [f"{n}_top"]),
              # E₀ = ⌊log2 top⌋ + 1, then E = E₀ + 1 where 2^E₀ ≤ top, E − 1 where 2^(E−1) > top
              node("Log", [f"{n}_top"], [f"{n}_ln"]), node("Div", [f"{n}_ln", f"{n}_ln2"], [f"{n}_log2"]),
              node("Floor", [f"{n}_log2"], [f"{n}_fl"]), node("Add", [f"{n}_fl", f"{n}_1"], [f"{n}_e0"]),
              node("Pow", [f"{n}_2", f"{n}_e0"], [f"{n}_p0"]),
              node("LessOrEqual", [f"{n}_p0", f"{n}_top"], [f"{n}_low"]),
              node("Add", [f"{n}_e0", f"{n}_1"], [f"{n}_e0up"]),
              node("Where", [f"{n}_low", f"{n}_e0up", f"{n}_e0"], [f"{n}_e1"]),
              node("Sub", [f"{n}_e1", f"{n}_1"], [f"{n}_e1dn"]),
              node("Pow", [f"{n}_2", f"{n}_e1dn"], [f"{n}_p1"]),
              node("Greater", [f"{n}_p1", f"{n}_top"], [f"{n}_high"]),
              node("Where", [f"{n}_high", f"{n}_e1dn", f"{n}_e1"], [f"{n}_e"]),
              # x ↦ round(x·2^(B−E))·2^(E−B)
              node("Sub", [f"{n}_bits", f"{n}_e"], [f"{n}_a"]), node("Pow", [f"{n}_2", f"{n}_a"], [f"{n}_scale"]),
              node("Mul", [f"{n}_x", f"{n}_scale"], [f"{n}_xs"]), node("Round", [f"{n}_xs"], [f"{n}_q"]),
              node("Div", [f"{n}_q", f"{n}_scale"], [f"{n}_xq"]),
              node("Cast", [f"{n}_xq"], [f"{n}_z"], to=h.TensorProto.FLOAT)]


def _rbf_nodes(h: Any, nodes: list, constants: dict, x64: str, step: tuple, name: str, np: Any) -> str:
    """Nodes of ("rbf", L, gamma, unit) on *x64* (n, n_in) float64; returns the (n, D) float64 kernels."""
    _, L, gamma, unit = step
    L = np.asarray(L, np.float64)
    constants |= {f"{name}_unit": np.array(unit, np.float64), f"{name}_Lt": np.ascontiguousarray(L.T),
                  f"{name}_ll": np.einsum("ij,ij->i", L, L), f"{name}_m2": np.array(-2.0, np.float64),
                  f"{name}_0": np.array(0.0, np.float64), f"{name}_mg": np.array(-float(gamma), np.float64)}
    # ‖x·u − l‖² = ‖x·u‖² + ‖l‖² − 2(x·u)·l, clipped at 0;  k = exp(−γ‖x·u − l‖²)
    nodes += [h.make_node("Mul", [x64, f"{name}_unit"], [f"{name}_xs"]),
              h.make_node("ReduceSumSquare", [f"{name}_xs"], [f"{name}_xx"], axes=[1], keepdims=1),
              h.make_node("MatMul", [f"{name}_xs", f"{name}_Lt"], [f"{name}_xl"]),
              h.make_node("Mul", [f"{name}_xl", f"{name}_m2"], [f"{name}_m2xl"]),
              h.make_node("Add", [f"{name}_m2xl", f"{name}_xx"], [f"{name}_s1"]),
              h.make_node("Add", [f"{name}_s1", f"{name}_ll"], [f"{name}_sq"]),
              h.make_node("Max", [f"{name}_sq", f"{name}_0"], [f"{name}_sq0"]),
              h.make_node("Mul", [f"{name}_sq0", f"{name}_mg"], [f"{name}_e"]),
              h.make_node("Exp", [f"{name}_e"], [f"{name}_k"])]
    return f"{name}_k"


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"`{option}` '{value}' is not one of {', '.join(choices)}",
                         f"use one of {', '.join(choices)}")


def onnx_model(kind: str, W_raw: Any, b_raw: Any, classes: Any,
               image_shape: tuple[int, int], input_type: str = "uint8", layout: str = "images",
               feature_maps: list | tuple = ()) -> Any:
    """The onnx.ModelProto of a model of *kind* with weights W_raw (n_features, n_outputs),
    b_raw (n_outputs,) on raw pixels, or on the output of *feature_maps* (see above), and labels
    *classes* (n_classes,), for images of *input_type* ("uint8" or "float32") shaped as *layout*
    says: "images" (n, rows, cols) or "flat" (n, rows·cols)."""
    import numpy as np

    _check_choice("input_type", input_type, INPUT_TYPES)
    _check_choice("input_layout", layout, INPUT_LAYOUTS)
    onnx = _onnx()
    h, numpy_helper = onnx.helper, onnx.numpy_helper
    n_outputs = W_raw.shape[1]
    rows, cols = image_shape
    constants = {
        "flat_shape": np.array([-1, rows * cols], np.int64), "W": np.asarray(W_raw, np.float64),
        "bias": np.asarray(b_raw, np.float64), "classes": np.asarray(classes, np.int64),
        "one": np.array(1.0, np.float32), "zero": np.array(0.0, np.float32),
        "c255": np.array(255.0, np.float32), "axis1": np.array([1], np.int64),
        "minus_one": np.array([-1], np.int64),
    }
    nodes: list = []
    x = _feature_nodes(h, nodes, constants, _pixels(h, nodes, input_type, rows * cols), list(feature_maps), np)
    # s = x·W_raw + b_raw in float64, rounded to float32
    nodes += [h.make_node("MatMul", [x, "W"], ["xw"]), h.make_node("Add", ["xw", "bias"], ["s64"]),
              h.make_node("Cast", ["s64"], ["s"], to=h.TensorProto.FLOAT)]
    _outputs(h, nodes, kind, n_outputs)
    elem = h.TensorProto.UINT8 if input_type == "uint8" else h.TensorProto.FLOAT
    shape = ["n", rows, cols] if layout == "images" else ["n", rows * cols]
    graph = h.make_graph(
        nodes, f"mnistlr_{kind}",
        inputs=[h.make_tensor_value_info("images", elem, shape)],
        outputs=[h.make_tensor_value_info("label", h.TensorProto.INT64, ["n"]),
                 h.make_tensor_value_info("probabilities", h.TensorProto.FLOAT, ["n", len(classes)])],
        initializer=[numpy_helper.from_array(v, name) for name, v in constants.items()
                     if any(name in node.input for node in nodes)])
    proto = h.make_model(graph, producer_name="mnistlr", opset_imports=[h.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    h.set_model_props(proto, {"kind": kind, "classes": ",".join(map(str, np.asarray(classes).tolist())),
                              "image_shape": f"{rows}x{cols}", "input_type": input_type,
                              "input_layout": layout})
    onnx.checker.check_model(proto)
    return proto


def write_onnx(path: str | os.PathLike, proto: Any) -> None:
    """Write the ONNX model *proto* to *path*, atomically."""
    data = proto.SerializeToString()
    with atomic_write(path, "wb") as handle:
        handle.write(data)
