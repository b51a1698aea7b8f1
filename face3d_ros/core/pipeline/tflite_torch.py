"""Convert a float TFLite flatbuffer into a static :class:`torch.nn.Module`.

The converter reads the flatbuffer with the ``tflite`` package (tensors, buffers, operators,
operator codes) and emits a :class:`torch.fx.GraphModule`: straight-line generated Python code
that calls torch operators in NCHW, with every weight folded into a parameter-free buffer at load
time. No dictionary lookups or Python interpretation of the graph happen per call.

Steps of :func:`convert_tflite`
-------------------------------
1. Parse tensors (shape, type, constant data) and operators (builtin code, options).
2. Fold constants: every operator whose inputs are all constant (``DEQUANTIZE`` of fp16 weights)
   is evaluated once in numpy; its outputs become fp32 constants.
3. Walk the operators in order and emit torch calls. Rank-4 activations are held as NCHW (the
   TFLite graph is NHWC); other ranks keep the TFLite layout. Weights are re-laid out:
   ``CONV_2D`` OHWI -> OIHW, ``DEPTHWISE_CONV_2D`` 1HW(C*M) -> (C*M)1HW with ``groups=C``.
4. TFLite ``SAME`` padding (extra row/column at the bottom/right when the total is odd) becomes
   the conv's symmetric padding where possible, else an explicit ``F.pad`` before it.
5. The graph inputs are NCHW for rank 4 (``(B, C, H, W)``); the outputs are returned in the
   TFLite layout and order (``(B, H, W, C)`` for rank 4), batch size free.

Supported builtin operators: ``ADD``, ``CONCATENATION``, ``CONV_2D``, ``DEPTHWISE_CONV_2D``,
``DEQUANTIZE``, ``MAX_POOL_2D``, ``AVERAGE_POOL_2D``, ``PAD``, ``PRELU``, ``RELU``, ``RELU6``,
``RESHAPE``, ``RESIZE_BILINEAR``, ``LOGISTIC``; fused activations NONE, RELU, RELU_N1_TO_1, RELU6.
Anything else raises :class:`NotImplementedError` naming the operator and the model.

One module (over 400 lines): the parser, the constant folding and the per-operator emitters
are one converter.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F

__all__ = ["TfliteTensor", "TfliteGraph", "parse_tflite", "convert_tflite"]

# TFLite TensorType -> numpy dtype (schema.fbs order).
_TENSOR_DTYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
    7: np.int16, 9: np.int8, 10: np.float64,
}
# NHWC axis -> NCHW axis for rank-4 tensors.
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)


@dataclass(frozen=True)
class TfliteTensor:
    """One tensor of the graph: ``shape`` in the TFLite (NHWC) layout, ``data`` when constant."""

    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    data: Optional[np.ndarray]


@dataclass(frozen=True)
class TfliteOp:
    """One operator: builtin name, tensor indices in and out, the raw options table."""

    name: str
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    options: object


@dataclass(frozen=True)
class TfliteGraph:
    """The first subgraph of a model file, parsed."""

    model_name: str
    tensors: Tuple[TfliteTensor, ...]
    ops: Tuple[TfliteOp, ...]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]


def _builtin_names() -> Dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int)}


def parse_tflite(path: Union[str, Path]) -> TfliteGraph:
    """Parse the first subgraph of the ``.tflite`` file at ``path``.

    Raises ValueError when the file is not a TFLite flatbuffer or has no subgraph.
    """
    import tflite

    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ValueError(f"{path} is not a TFLite flatbuffer (missing 'TFL3' identifier)")
    model = tflite.Model.GetRootAsModel(raw, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError(f"{path} holds no subgraph")
    names = _builtin_names()
    graph = model.Subgraphs(0)

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        dtype = _TENSOR_DTYPES.get(t.Type())
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data: Optional[np.ndarray] = None
        buf = model.Buffers(t.Buffer())
        if buf is not None:
            if buf.DataLength() > 0:
                blob = buf.DataAsNumpy().tobytes()
            elif buf.Offset() > 1:  # large models keep data after the flatbuffer
                blob = raw[buf.Offset():buf.Offset() + buf.Size()]
            else:
                blob = b""
            if blob:
                if dtype is None:
                    raise NotImplementedError(
                        f"{path.name}: constant tensor {t.Name().decode()!r} has unsupported "
                        f"TFLite type {t.Type()}")
                data = np.frombuffer(blob, dtype=dtype).reshape(shape).copy()
        tensors.append(TfliteTensor(i, t.Name().decode(), shape, np.dtype(dtype or np.float32),
                                    data))

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        # Codes above 127 live only in builtin_code; old files fill only the deprecated field.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, f"builtin#{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.CustomCode().decode()}"
        ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
        outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        ops.append(TfliteOp(name, ins, outs, op.BuiltinOptions()))
    return TfliteGraph(path.stem, tuple(tensors), tuple(ops),
                       tuple(int(x) for x in graph.InputsAsNumpy()),
                       tuple(int(x) for x in graph.OutputsAsNumpy()))


def _options(op: TfliteOp, cls_name: str) -> Any:
    """The builtin options table of ``op`` as an instance of ``tflite.<cls_name>``."""
    import tflite

    opts = getattr(tflite, cls_name)()
    table: Any = op.options
    if table is None:
        return None
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> Tuple[int, int]:
    """TFLite SAME padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    eff = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


class _Emitter:
    """Builds the fx graph: one node per TFLite operator (plus layout helpers)."""

    def __init__(self, graph: TfliteGraph) -> None:
        self.g = graph
        self.root = torch.nn.Module()
        self.fx = torch.fx.Graph()
        self.values: Dict[int, torch.fx.Node] = {}
        self.consts: Dict[int, np.ndarray] = {
            t.index: t.data for t in graph.tensors if t.data is not None}
        self.n_buffers = 0
        # Tensors that may be overwritten in place: freshly allocated by their producer and
        # read by exactly one operator (not a graph output).
        uses: Dict[int, int] = {}
        for op in graph.ops:
            for i in op.inputs:
                uses[i] = uses.get(i, 0) + 1
        for i in graph.outputs:
            uses[i] = uses.get(i, 0) + 2
        self.uses = uses
        self.owned: set = set()

    # -- helpers --------------------------------------------------------------------------
    def fail(self, op: TfliteOp, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"model {self.g.model_name!r}: operator {op.name} {what} is not supported by the "
            "TFLite-to-torch converter")

    def shape(self, idx: int) -> Tuple[int, ...]:
        return self.g.tensors[idx].shape

    def const(self, idx: int) -> np.ndarray:
        return self.consts[idx]

    def buffer(self, array: np.ndarray, hint: str) -> torch.fx.Node:
        name = f"c{self.n_buffers}_{hint}"
        self.n_buffers += 1
        self.root.register_buffer(name, torch.from_numpy(np.ascontiguousarray(array)))
        return self.fx.get_attr(name)

    def value(self, op: TfliteOp, idx: int) -> torch.fx.Node:
        if idx in self.values:
            return self.values[idx]
        if idx in self.consts:
            arr = self.const(idx).astype(np.float32)
            if arr.ndim == 4:
                arr = arr.transpose(0, 3, 1, 2)
            node = self.buffer(arr, "const")
            self.values[idx] = node
            return node
        raise self.fail(op, f"input tensor {self.g.tensors[idx].name!r} (not yet computed)")

    def call(self, fn, *args, **kwargs) -> torch.fx.Node:
        return self.fx.call_function(fn, tuple(args), kwargs)

    def activation(self, op: TfliteOp, node: torch.fx.Node, code: int) -> torch.fx.Node:
        if code == 0:
            return node
        if code == 1:
            return self.call(torch.relu_, node)
        if code == 2:
            return self.call(torch.clamp_, node, -1.0, 1.0)
        if code == 3:
            return self.call(torch.clamp_, node, 0.0, 6.0)
        raise self.fail(op, f"with fused activation code {code}")

    # -- operators ------------------------------------------------------------------------
    def conv(self, op: TfliteOp, depthwise: bool) -> torch.fx.Node:
        cls = "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions"
        opt = _options(op, cls)
        x = self.value(op, op.inputs[0])
        if op.inputs[1] not in self.consts:
            raise self.fail(op, "with a non-constant filter")
        w = self.const(op.inputs[1]).astype(np.float32)
        in_shape = self.shape(op.inputs[0])
        c_in = in_shape[3]
        if depthwise:
            # (1, KH, KW, C*M) -> (C*M, 1, KH, KW), groups = C.
            w = w.transpose(3, 0, 1, 2)
            groups = c_in
            mult = opt.DepthMultiplier() or 1
            if w.shape[0] != c_in * mult:
                raise self.fail(op, f"with {w.shape[0]} outputs for {c_in} inputs x {mult}")
        else:
            w = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
            groups = c_in // w.shape[1]
        bias = None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = self.const(op.inputs[2]).astype(np.float32)
        stride = (opt.StrideH(), opt.StrideW())
        dil = (opt.DilationHFactor() or 1, opt.DilationWFactor() or 1)
        kh, kw = w.shape[2], w.shape[3]
        padding = (0, 0)
        if opt.Padding() == 0:  # SAME
            ph = _same_pads(in_shape[1], kh, stride[0], dil[0])
            pw = _same_pads(in_shape[2], kw, stride[1], dil[1])
            if ph[0] == ph[1] and pw[0] == pw[1]:
                padding = (ph[0], pw[0])
            else:
                x = self.call(F.pad, x, (pw[0], pw[1], ph[0], ph[1]))
        bn = self.buffer(bias, "b") if bias is not None else None
        if (kh, kw) == (1, 1) and stride == (1, 1) and groups == 1 and padding == (0, 0):
            # Pointwise conv as a GEMM over the NHWC view: no im2col, no layout copies when
            # the activations are channels_last.
            wn = self.buffer(w[:, :, 0, 0], "w")
            y = self.call(torch.permute, x, (0, 2, 3, 1))
            y = self.call(F.linear, y, wn, bn)
            y = self.call(torch.permute, y, (0, 3, 1, 2))
        else:
            wn = self.buffer(w, "w")
            y = self.call(F.conv2d, x, wn, bn, stride, padding, dil, groups)
        return self.activation(op, y, opt.FusedActivationFunction())

    def pool(self, op: TfliteOp, kind: str) -> torch.fx.Node:
        opt = _options(op, "Pool2DOptions")
        x = self.value(op, op.inputs[0])
        k = (opt.FilterHeight(), opt.FilterWidth())
        s = (opt.StrideH(), opt.StrideW())
        in_shape = self.shape(op.inputs[0])
        pad = (0, 0)
        if opt.Padding() == 0:
            ph = _same_pads(in_shape[1], k[0], s[0], 1)
            pw = _same_pads(in_shape[2], k[1], s[1], 1)
            if ph != (0, 0) or pw != (0, 0):
                if kind == "avg":  # TFLite averages over valid pixels only
                    raise self.fail(op, "with non-zero SAME padding")
                if ph[0] == ph[1] and pw[0] == pw[1] and 2 * max(ph[0], pw[0]) <= min(k):
                    pad = (ph[0], pw[0])
                else:
                    x = self.call(F.pad, x, (pw[0], pw[1], ph[0], ph[1]), "constant",
                                  float("-inf"))
        fn = F.max_pool2d if kind == "max" else F.avg_pool2d
        y = self.call(fn, x, k, s, pad)
        return self.activation(op, y, opt.FusedActivationFunction())

    def reshape(self, op: TfliteOp) -> torch.fx.Node:
        x = self.value(op, op.inputs[0])
        src = self.shape(op.inputs[0])
        dst = self.shape(op.outputs[0])
        if len(src) == 4 and (src[1] * src[2] == 1 or src[3] == 1):
            x = self.call(torch.flatten, x, 1)  # NCHW and NHWC element orders agree
        elif len(src) == 4:
            x = self.call(torch.permute, x, (0, 2, 3, 1))  # NCHW -> NHWC element order
        y = self.call(torch.reshape, x, (-1,) + tuple(dst[1:]))
        if len(dst) == 4:
            y = self.call(torch.permute, y, (0, 3, 1, 2))
        return y

    def pad(self, op: TfliteOp) -> torch.fx.Node:
        x = self.value(op, op.inputs[0])
        pads = self.const(op.inputs[1]).astype(np.int64).reshape(-1, 2)
        if pads.shape[0] == 4:
            pads = pads[[0, 3, 1, 2]]  # rows N, C, H, W of the torch tensor
        if pads[0].any():
            raise self.fail(op, "on the batch dimension")
        flat: List[int] = []
        for before, after in pads[::-1][:-1]:  # F.pad wants the last dimension first
            flat += [int(before), int(after)]
        while len(flat) >= 2 and flat[-1] == 0 and flat[-2] == 0:
            flat = flat[:-2]
        return self.call(F.pad, x, tuple(flat)) if flat else x

    def concat(self, op: TfliteOp) -> torch.fx.Node:
        opt = _options(op, "ConcatenationOptions")
        rank = len(self.shape(op.outputs[0]))
        axis = opt.Axis() % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        xs = [self.value(op, i) for i in op.inputs]
        y = self.call(torch.cat, xs, axis)
        return self.activation(op, y, opt.FusedActivationFunction())

    def resize_bilinear(self, op: TfliteOp) -> torch.fx.Node:
        opt = _options(op, "ResizeBilinearOptions")
        x = self.value(op, op.inputs[0])
        out_hw = tuple(int(v) for v in self.const(op.inputs[1]))
        align = bool(opt.AlignCorners())
        half = bool(opt.HalfPixelCenters())
        if align or half:
            return self.call(F.interpolate, x, size=out_hw, mode="bilinear",
                             align_corners=align)
        # Legacy TF sampling (src = dst * in / out): separable interpolation matrices.
        in_h, in_w = self.shape(op.inputs[0])[1:3]
        ry = self.buffer(_legacy_resize_matrix(in_h, out_hw[0]), "ry")
        rx = self.buffer(_legacy_resize_matrix(in_w, out_hw[1]).T.copy(), "rx")
        y = self.call(torch.matmul, ry, x)
        return self.call(torch.matmul, y, rx)

    def prelu(self, op: TfliteOp) -> torch.fx.Node:
        x = self.value(op, op.inputs[0])
        alpha = self.const(op.inputs[1]).astype(np.float32)
        channels = self.shape(op.inputs[0])[-1]
        if alpha.size == channels or alpha.size == 1:
            return self.call(F.prelu, x, self.buffer(alpha.reshape(-1), "alpha"))
        # Spatially varying slopes: broadcast in NCHW.
        a = np.broadcast_to(alpha, self.shape(op.inputs[0])[1:]).transpose(2, 0, 1)
        an = self.buffer(a[None].copy(), "alpha")
        pos = self.call(F.relu, x)
        neg = self.call(torch.clamp, x, None, 0.0)
        return self.call(operator.add, pos, self.call(operator.mul, an, neg))

    def add(self, op: TfliteOp) -> torch.fx.Node:
        opt = _options(op, "AddOptions")
        a, b = (self._broadcast_operand(op, i, op.inputs[1 - k])
                for k, i in enumerate(op.inputs[:2]))
        out_shape = self.shape(op.outputs[0])
        if self.inplace_ok(op.inputs[0], out_shape):
            y = self.call(torch.Tensor.add_, a, b)
        elif self.inplace_ok(op.inputs[1], out_shape):
            y = self.call(torch.Tensor.add_, b, a)
        else:
            y = self.call(torch.add, a, b)
        return self.activation(op, y, opt.FusedActivationFunction() if opt else 0)

    def inplace_ok(self, idx: int, out_shape: Tuple[int, ...]) -> bool:
        return idx in self.owned and self.uses.get(idx, 0) == 1 and self.shape(idx) == out_shape

    def relu(self, op: TfliteOp, lo: float, hi: Optional[float]) -> torch.fx.Node:
        x = self.value(op, op.inputs[0])
        if self.inplace_ok(op.inputs[0], self.shape(op.outputs[0])):
            return self.call(torch.clamp_, x, lo, hi)
        return self.call(torch.clamp, x, lo, hi)

    def _broadcast_operand(self, op: TfliteOp, idx: int, other: int) -> torch.fx.Node:
        """A constant of lower rank than a rank-4 partner, broadcast to NCHW."""
        if idx in self.consts and idx not in self.values and len(self.shape(other)) == 4:
            arr = self.const(idx).astype(np.float32)
            if arr.ndim < 4:
                arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(0, 3, 1, 2)
                return self.buffer(arr, "const")
        return self.value(op, idx)

    # -- driver ---------------------------------------------------------------------------
    def fold_constants(self) -> None:
        for op in self.g.ops:
            if op.name == "DEQUANTIZE" and op.inputs[0] in self.consts:
                src = self.g.tensors[op.inputs[0]]
                if src.dtype != np.float16:
                    raise self.fail(op, f"of {src.dtype} data (only fp16 weights)")
                self.consts[op.outputs[0]] = self.consts[op.inputs[0]].astype(np.float32)

    def run(self) -> torch.fx.GraphModule:
        self.fold_constants()
        for idx in self.g.inputs:
            t = self.g.tensors[idx]
            self.values[idx] = self.fx.placeholder(_identifier(t.name, f"input{idx}"))
        handlers = {
            "CONV_2D": lambda op: self.conv(op, False),
            "DEPTHWISE_CONV_2D": lambda op: self.conv(op, True),
            "MAX_POOL_2D": lambda op: self.pool(op, "max"),
            "AVERAGE_POOL_2D": lambda op: self.pool(op, "avg"),
            "RESHAPE": self.reshape,
            "PAD": self.pad,
            "CONCATENATION": self.concat,
            "RESIZE_BILINEAR": self.resize_bilinear,
            "PRELU": self.prelu,
            "ADD": self.add,
            "RELU": lambda op: self.relu(op, 0.0, None),
            "RELU6": lambda op: self.relu(op, 0.0, 6.0),
            "LOGISTIC": lambda op: self.call(torch.sigmoid, self.value(op, op.inputs[0])),
        }
        for op in self.g.ops:
            if all(o in self.consts for o in op.outputs):
                continue  # folded
            handler = handlers.get(op.name)
            if handler is None:
                raise self.fail(op, "")
            self.values[op.outputs[0]] = handler(op)
            if op.name not in ("RESHAPE", "PAD"):  # those may return views of their input
                self.owned.add(op.outputs[0])
        outs = []
        for idx in self.g.outputs:
            node = self.values[idx]
            if len(self.shape(idx)) == 4:
                node = self.call(torch.permute, node, (0, 2, 3, 1))
            outs.append(node)
        self.fx.output(tuple(outs))
        self.fx.eliminate_dead_code()
        gm = torch.fx.GraphModule(self.root, self.fx, class_name=_identifier(
            self.g.model_name, "TfliteModel"))
        gm.eval()
        return gm


def _identifier(name: str, fallback: str) -> str:
    ident = "".join(ch if ch.isalnum() else "_" for ch in name)
    return ident if ident and not ident[0].isdigit() else fallback


def _legacy_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights of TF's legacy sampling (no align, no half pixel)."""
    m = np.zeros((n_out, n_in), np.float32)
    scale = n_in / n_out
    for i in range(n_out):
        src = i * scale
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def convert_tflite(path: Union[str, Path]) -> torch.fx.GraphModule:
    """Convert the float ``.tflite`` model at ``path`` into an eval-mode torch module.

    The module takes the graph inputs in order (rank-4 ones as NCHW float32, any batch size)
    and returns a tuple of the graph outputs in TFLite order and layout. All weights are fp32
    buffers (fp16 weights are dequantized at load time); move it with ``.to(device)``.
    """
    return _Emitter(parse_tflite(path)).run()


def output_names(path: Union[str, Path]) -> Sequence[str]:
    """Names of the graph outputs of ``path``, in the order :func:`convert_tflite` returns."""
    g = parse_tflite(path)
    return [g.tensors[i].name for i in g.outputs]
