"""4-bit ONNX: Linear weights as ONNX Runtime's `MatMulNBits`, embeddings as `GatherBlockQuantized`.

A packed artifact is small on disk but runs in torch on float weights; ONNX Runtime's int8 export
is fast but re-rounds a 4-bit model to 8 bits. This rewrite of an fp32 ONNX export keeps both:
ONNX Runtime's CPU kernels multiply by 4-bit weights stored as 4 bits.

Where the model's compression record holds k-bit codes (`quantize`, `gptq`: symmetric codes with
one fp16-exact scale per group of `group` weights along a row), the rewrite writes *those* codes
and scales, so the ONNX model computes with exactly the artifact's dequantized weights: a
Linear whose codes have at most 4 bits becomes an exact 4-bit `MatMulNBits`. Any other constant
MatMul weight (an fp32 run; 5-8 bit codes) goes through ONNX Runtime's own round-to-nearest
`MatMulNBitsQuantizer` (symmetric, blocks of `RTN_BLOCK`): smaller, but no longer the artifact's
exact values.

Embeddings: a table stored as codes is written as those codes (`GatherBlockQuantized`, 4 bits
for codes of at most 4 bits, else 8): a lookup of packed rows times their scales, exact, and the
table stays as small as the artifact's codes. A float table without codes becomes 8-bit codes
(rounded to nearest here, `grid.quantize_tensor`): embeddings are looked up, not multiplied, so
the kernel speed does not depend on them, and 8 bits keep them near the float model where the
ONNX Runtime int8 export also keeps 8. Tables under `MIN_TABLE` values (token types, a head's
word-shape table) stay in float: a few KiB, not worth any rounding.

The contrib ops' layout (onnxruntime docs/ContribOperators.md; checked against the CPU kernels
by `tests/unit/test_export_nbits.py`): for a weight W (N, K) with blocks of `b` along K,
`MatMulNBits` takes B uint8 (N, ceil(K/b), b*bits/8), each byte holding two 4-bit values (the
lower k in the low nibble), and scales float (N, ceil(K/b)); without a `zero_points` input a
value q stands for `(q - 2^(bits-1)) * scale`, so a symmetric code c is stored as
`c + 2^(bits-1)`. `GatherBlockQuantized` on uint8 data uses the same convention along its
`quantize_axis` (the row). `b` must be a power of two from 16 up: an artifact group that is not
one is split into blocks of its largest such divisor, each with the group's scale (still exact).

Float constants left over (a codebook's centroids, a low-rank basis) that the artifact stores in
fp16 are written in fp16 with a `Cast` back to float: exact (their values are fp16 numbers), half
the bytes on disk; ONNX Runtime folds the cast once when it loads the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occamtune.compress.grid import QuantCodes, group_of, quantize_tensor

RTN_BLOCK = 32  # ONNX Runtime's round-to-nearest block for weights without codes
MIN_TABLE = 4096  # float lookup tables smaller than this stay in float
# float constants of fewer values stay fp32 (a bias or a norm: under 4 KiB, where the Cast node
# would cost about as much as it saves); a 4-bit matrix's scales are more
MIN_HALF = 1024
MIN_REMAP = 4096  # id maps of fewer entries stay as they are
MS_DOMAIN = "com.microsoft"


@dataclass
class NbitsReport:
    """What the rewrite did, node by node kind.

    Attributes:
        exact: MatMuls (by output name) written from the model's own 4-bit codes (the
            artifact's exact weights).
        rounded: MatMuls rounded to 4 bits by ONNX Runtime's quantizer (no codes of <= 4 bits).
        tables_exact: lookup tables written from the model's own codes.
        tables_int8: float lookup tables rounded to 8-bit codes here.
        remaps: a trimmed vocabulary's id maps written as the bits of which ids it kept.
        halved: other float constants written in fp16 (their values are fp16 numbers: exact).
        widened: 4-bit MatMuls set to run on int8 kernels (`widen_to_int8`).
        shared: lookup tables that read a 4-bit MatMul's codes (a tied output layer's).
        filled: constants of one repeated number written as `ConstantOfShape`.
    """

    exact: list[str] = field(default_factory=list)
    rounded: list[str] = field(default_factory=list)
    tables_exact: list[str] = field(default_factory=list)
    tables_int8: list[str] = field(default_factory=list)
    remaps: list[str] = field(default_factory=list)
    halved: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items()}


def _key(values: np.ndarray) -> tuple[tuple[int, ...], str]:
    """A float tensor's identity: its shape and a digest of its fp32 bytes."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return values.shape, hashlib.sha1(values.tobytes()).hexdigest()


def _index(codes: Mapping[str, QuantCodes]) -> dict[tuple, QuantCodes]:
    """The codes by the (rows, cols) fp32 values they stand for: the ONNX export renames
    tensors (and stores a Linear's weight transposed), but keeps their values bit for bit."""
    return {_key(q.values().numpy()): q for q in codes.values() if q.codes.dim() == 2}


def _block(group: int) -> int | None:
    """The largest power of two in [16, 256] dividing `group` (the kernels' block sizes)."""
    for b in (256, 128, 64, 32, 16):
        if group % b == 0:
            return b
    return None


def pack_codes(quant: QuantCodes, bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The codes (R, C) as the contrib ops store them, in blocks of `block` along C.

    Returns:
        packed: uint8 (R, n_blocks, block * bits / 8), code c stored as c + 2^(bits-1).
        scales: float32 (R, n_blocks).
        block: the block length.
    """
    block = _block(quant.group)
    assert block is not None, f"group {quant.group} has no power-of-two divisor in [16, 256]"
    assert quant.bits <= bits, f"{quant.bits}-bit codes do not fit in {bits} bits"
    rows, cols = quant.codes.shape
    n_blocks = -(-cols // block)
    scales = quant.scales.float().repeat_interleave(quant.group // block, dim=1)[:, :n_blocks]
    zero = 1 << (bits - 1)
    q = np.full((rows, n_blocks * block), zero, dtype=np.uint8)  # the padding stands for 0
    q[:, :cols] = (quant.codes.numpy().astype(np.int16) + zero).astype(np.uint8)
    q = q.reshape(rows, n_blocks, block)
    if bits == 4:
        q = q[..., 0::2] | (q[..., 1::2] << 4)  # two per byte, the first in the low nibble
    return np.ascontiguousarray(q), np.ascontiguousarray(scales.numpy()), block


def to_nbits(source: str | Path, target: str | Path, codes: Mapping[str, QuantCodes],
             accuracy_level: int = 0, int8_kernels: bool = False) -> NbitsReport:
    """Rewrite the fp32 ONNX model `source` into `target` with 4-bit Linear weights.

    Args:
        codes: the model's k-bit codes by tensor name (its compression record's); the MatMul
            weights and lookup tables equal to one of them are written as those codes.
        accuracy_level: `MatMulNBits`' compute type: 0 (default) multiplies in fp32 by the
            dequantized weights (the artifact's numbers); 4 quantizes the activations to int8
            per block (faster on CPUs with int8 dot products, no longer exact).
        int8_kernels: then run the 4-bit MatMuls on int8 kernels (`widen_to_int8`).
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    graph = model.graph
    index, report = _index(codes), NbitsReport()
    _fold_transposed_weights(graph, index)
    inits = {i.name: i for i in graph.initializer}
    nodes, added = [], {}
    for node in graph.node:
        new = _rewrite(node, inits, index, accuracy_level, added, report)
        nodes.append(new if new is not None else node)
    report.shared = _share_packed_tables(nodes, added)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added.values())
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    before = {n.output[0] for n in graph.node if n.op_type == "MatMul"}
    rtn = MatMulNBitsQuantizer(model, bits=4, block_size=RTN_BLOCK, is_symmetric=True,
                               accuracy_level=accuracy_level or None,
                               op_types_to_quantize=("MatMul",))
    rtn.process()  # weights still float: ONNX Runtime's round to nearest; drops unused initializers
    model = rtn.model.model
    after = {n.output[0] for n in model.graph.node if n.op_type == "MatMul"}
    report.rounded = sorted(before - after)
    report.halved = _halve_exact(model.graph)
    report.remaps = _remaps_as_bits(model.graph)
    report.filled = _fills(model.graph)
    if int8_kernels:
        report.widened = widen_to_int8(model)
    _short_names(model.graph)
    onnx.save(model, str(target))
    return report


def _fold_transposed_weights(graph: Any, index: dict[tuple, QuantCodes]) -> None:
    """`MatMul(x, Transpose(W))` with W a 2-D float constant that the model stores as codes
    (in `index`) becomes `MatMul(x, W^T)` with W^T a constant of its own, so that the rewrite
    sees the weight and writes those codes: an output layer tied to the word embeddings reads
    the (V, H) table through a Transpose, and would otherwise stay a float matrix beside the
    table's 4-bit codes (most of a small generator's bytes). A float W without codes keeps its
    Transpose: rounded to 4 bits here, a tied output layer would lose what its 8-bit table
    keeps. W stays for its other readers (the embedding's Gather); once it has none, the
    quantizer's clean-up drops it."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    dropped = set()
    for node in graph.node:
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), [1, 0])
        weight = inits[node.input[0]]
        users = readers.get(node.output[0], [])
        if (len(weight.dims) != 2 or perm != [1, 0] or weight.data_type != TensorProto.FLOAT
                or node.output[0] in outputs or not users
                or any(u.op_type != "MatMul" or u.input[0] == node.output[0] for u in users)):
            continue
        value = numpy_helper.to_array(weight)
        if _key(value) not in index:
            continue
        graph.initializer.append(numpy_helper.from_array(value.T.copy(), node.output[0]))
        dropped.add(id(node))
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)


def _digest(init: Any) -> tuple[int, str]:
    from onnx import numpy_helper

    value = numpy_helper.to_array(init)
    return value.shape[0], hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()


def _share_packed_tables(nodes: list[Any], added: dict[str, Any]) -> list[str]:
    """Store a lookup table once where a 4-bit `MatMulNBits` reads the same codes: a tied output
    layer (`_fold_transposed_weights`) and the word embeddings, written twice by `_rewrite`
    (the vocabulary twice on disk, most of a small generator's step graph). `pack_codes` lays
    both out alike, row by row in blocks, so the lookup reads the MatMul's (N, blocks, block / 2)
    codes through a `Reshape` to (N, bytes a row), which ONNX Runtime folds when it loads the
    file, and its scales. `nodes` and `added` change in place; returns the tables' names."""
    from onnx import helper, numpy_helper

    matmuls = {}
    for node in nodes:
        if node.op_type == "MatMulNBits" and node.input[1] in added:
            matmuls[_digest(added[node.input[1]]), _digest(added[node.input[2]])] = node
    out, shared, reshaped = [], [], set()
    for node in nodes:
        hit = (matmuls.get((_digest(added[node.input[0]]), _digest(added[node.input[2]])))
               if node.op_type == "GatherBlockQuantized" and node.input[0] in added else None)
        attrs = {a.name: a.i for a in node.attribute}
        if hit is not None and attrs["bits"] == 4 and attrs["block_size"] == next(
                a.i for a in hit.attribute if a.name == "block_size"):
            table, rows = node.input[0], f"{node.input[0]}_of_{hit.input[1]}"
            if rows not in reshaped:
                shape = np.array(added[table].dims, dtype=np.int64)
                added[rows + "_shape"] = numpy_helper.from_array(shape, rows + "_shape")
                out.append(helper.make_node("Reshape", [hit.input[1], rows + "_shape"], [rows]))
                reshaped.add(rows)
                shared.append(table)
            node.input[0], node.input[2] = rows, hit.input[2]
        out.append(node)
    read = {name for node in out for name in node.input}
    for name in [name for name in added if name not in read]:
        del added[name]
    nodes[:] = out
    return shared


def _fills(graph: Any) -> list[str]:
    """Write each constant of at least MIN_HALF values that are all one number (a trimmed
    vocabulary's logits for the ids it never writes: one float per id of the full vocabulary) as
    `ConstantOfShape` of that number, which ONNX Runtime folds when it loads the file; returns
    their names."""
    from onnx import numpy_helper

    g, filled = _Nodes("fill_"), []
    inputs = {i.name for i in graph.input}  # an initializer that is also an input stays one
    for init in list(graph.initializer):
        if init.name not in inputs and _uniform(numpy_helper.to_array(init)):
            graph.initializer.remove(init)
            g.nodes.append(_fill(g, numpy_helper.to_array(init), init.name))
            filled.append(init.name)
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        array = numpy_helper.to_array(value) if node.op_type == "Constant" and value is not None else None
        if array is None or not _uniform(array):
            g.nodes.append(node)
            continue
        g.nodes.append(_fill(g, array, node.output[0]))
        filled.append(node.output[0])
    del graph.node[:]
    graph.node.extend(g.nodes)
    return filled


def _uniform(value: np.ndarray) -> bool:
    return value.size >= MIN_HALF and bool((value == value.flat[0]).all())


def _fill(g: _Nodes, value: np.ndarray, out: str) -> Any:
    from onnx import helper, numpy_helper

    return helper.make_node("ConstantOfShape", [g.const(np.array(value.shape, dtype=np.int64))],
                            [out], value=numpy_helper.from_array(value.reshape(-1)[:1]))


def _halve_exact(graph: Any) -> list[str]:
    """Write each float32 initializer of at least MIN_HALF values whose values are all fp16
    numbers as fp16, behind a `Cast` to float under its old name; returns their names."""
    import onnx
    from onnx import numpy_helper

    halved, casts = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_HALF:
            continue
        value = numpy_helper.to_array(init)
        half = value.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), value):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}_fp16"))
        casts.append(onnx.helper.make_node("Cast", [f"{name}_fp16"], [name],
                                           to=onnx.TensorProto.FLOAT, name=f"{name}_cast"))
        halved.append(name)
    nodes = [*casts, *graph.node]  # before every reader: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return halved


def _rewrite(node: Any, inits: dict[str, Any], index: dict[tuple, QuantCodes], accuracy_level: int,
             added: dict[str, Any], report: NbitsReport) -> Any | None:
    """The node that replaces `node` (None: keep it), its new initializers put in `added`."""
    from onnx import numpy_helper

    if node.op_type == "MatMul" and node.input[1] in inits:
        weight = numpy_helper.to_array(inits[node.input[1]])  # (K, N): the Linear's W^T
        if weight.dtype != np.float32 or weight.ndim != 2:
            return None
        quant = index.get(_key(weight.T))
        if quant is None or quant.bits > 4 or _block(quant.group) is None:
            return None
        report.exact.append(node.output[0])
        return _matmul_nbits(node, quant, accuracy_level, added)
    if node.op_type == "Gather" and node.input[0] in inits and _axis(node) == 0:
        table = numpy_helper.to_array(inits[node.input[0]])  # (V, H)
        if table.dtype != np.float32 or table.ndim != 2:
            return None
        quant = index.get(_key(table))
        if quant is not None and _block(quant.group) is not None:
            report.tables_exact.append(node.input[0])
        elif table.size >= MIN_TABLE:
            codes, scales = quantize_tensor(torch.from_numpy(table.copy()), 8, RTN_BLOCK)
            quant = QuantCodes(codes, scales, 8, group_of(table.shape[1], RTN_BLOCK))
            if _block(quant.group) is None:
                return None
            report.tables_int8.append(node.input[0])
        else:
            return None
        return _gather_quantized(node, quant, added)
    return None


def _axis(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _matmul_nbits(node: Any, quant: QuantCodes, accuracy_level: int, added: dict[str, Any]) -> Any:
    from onnx import helper, numpy_helper

    packed, scales, block = pack_codes(quant, 4)  # (N, n_blocks, block / 2), (N, n_blocks)
    n, k = quant.codes.shape
    name = f"{node.input[1]}_nbits"
    added[name + "_B"] = numpy_helper.from_array(packed, name + "_B")
    added[name + "_scales"] = numpy_helper.from_array(scales, name + "_scales")
    extra = {"accuracy_level": accuracy_level} if accuracy_level else {}
    return helper.make_node("MatMulNBits", [node.input[0], name + "_B", name + "_scales"],
                            list(node.output), name=f"{node.name}_nbits", domain=MS_DOMAIN,
                            K=k, N=n, bits=4, block_size=block, **extra)


def _gather_quantized(node: Any, quant: QuantCodes, added: dict[str, Any]) -> Any:
    from onnx import helper, numpy_helper

    bits = 4 if quant.bits <= 4 else 8
    packed, scales, block = pack_codes(quant, bits)
    rows, cols = quant.codes.shape
    # the kernel reads a table row as one run of ceil(cols * bits / 8) bytes
    data = packed.reshape(rows, -1)[:, :-(-cols * bits // 8)]
    name = f"{node.input[0]}_q{bits}"
    if name + "_data" not in added:  # a table shared by several lookups is stored once
        added[name + "_data"] = numpy_helper.from_array(np.ascontiguousarray(data), name + "_data")
        added[name + "_scales"] = numpy_helper.from_array(scales, name + "_scales")
    return helper.make_node("GatherBlockQuantized", [name + "_data", node.input[1], name + "_scales"],
                            list(node.output), name=f"{node.name}_q{bits}", domain=MS_DOMAIN,
                            gather_axis=0, quantize_axis=1, block_size=block, bits=bits)


class _Nodes:
    """The nodes of a graph rewrite, in order, with what they add: each constant (a Constant
    node, one per distinct value) and node output named by `prefix` and a counter (`_short_names`
    shortens every name at the end)."""

    def __init__(self, prefix: str) -> None:
        self.nodes: list[Any] = []
        self.prefix = prefix
        self._consts: dict[tuple, str] = {}

    def _name(self) -> str:
        return f"{self.prefix}{len(self.nodes)}"

    def const(self, value: Any) -> str:
        from onnx import helper, numpy_helper

        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self._consts:
            name = self._consts[key] = self._name()
            self.nodes.append(helper.make_node("Constant", [], [name],
                                               value=numpy_helper.from_array(value, name)))
        return self._consts[key]

    def op(self, kind: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = out or self._name()
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def digits(self, byte: str, bits: int, count: int) -> str:
        """(..., count) float: the `count` lowest `bits`-bit digits of the float byte values
        `byte`, lowest first: floor(b / 2^(bits j)) - 2^bits floor(b / 2^(bits (j + 1))). Float
        arithmetic, exact on bytes: the bitwise ops need opset 18, the exporter may write 17."""
        base = (2.0 ** (bits * np.arange(count + 1))).astype(np.float32)
        whole = self.op("Floor", [self.op("Div", [self.op("Unsqueeze", [byte, self.const(np.array([-1]))]),
                                                  self.const(base)])])  # (..., count + 1)
        last = self.const(np.array([-1]))
        low = self.op("Slice", [whole, self.const(np.array([0])), self.const(np.array([count])), last])
        high = self.op("Slice", [whole, self.const(np.array([1])), self.const(np.array([count + 1])),
                                 last])
        return self.op("Sub", [low, self.op("Mul", [high, self.const(np.float32(2 ** bits))])])


def widen_to_int8(model: Any) -> list[str]:
    """Make every 4-bit `MatMulNBits` of `model` (an onnx ModelProto, changed in place) run on
    ONNX Runtime's int8 kernels while its weights stay 4-bit on disk; returns their outputs.

    `MatMulNBits` multiplies at about fp32 GEMM speed per FLOP once a batch holds more than a few
    rows, while the int8 `DynamicQuantizeMatMul` uses the CPU's int8 dot products. So each one
    becomes the pattern ONNX Runtime's dynamic quantizer writes (DynamicQuantizeLinear ->
    MatMulInteger -> Cast -> Mul, which its graph optimizer fuses into `DynamicQuantizeMatMul`),
    and its int8 weight is computed from the 4-bit codes by nodes whose inputs are all constants:
    ONNX Runtime folds them once when it loads the model, so the file keeps the 4-bit codes and
    memory holds int8. The 4-bit weights are rounded again to int8 with one scale per output
    column (steps at least 127/7 times finer than a 4-bit group's); the activations are rounded
    to uint8 per tensor, as the int8 export does: no longer the artifact's exact numbers.

    The nibbles are unpacked by float arithmetic (`_Nodes.digits`).
    """
    from onnx import TensorProto, helper

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    g, widened = _Nodes("w8_"), []
    for node in model.graph.node:
        attrs = {a.name: a.i for a in node.attribute}
        if (node.op_type != "MatMulNBits" or node.domain != MS_DOMAIN or attrs.get("bits") != 4
                or len([i for i in node.input if i]) != 3):
            g.nodes.append(node)
            continue
        widened.append(node.output[0])
        k, n, block = attrs["K"], attrs["N"], attrs["block_size"]
        n_blocks = -(-k // block)
        byte = g.op("Cast", [node.input[1]], to=TensorProto.FLOAT)  # (N, n_blocks, block / 2)
        pairs = g.digits(byte, 4, 2)  # (N, n_blocks, block / 2, 2): the low nibble first
        codes = g.op("Sub", [g.op("Reshape", [pairs, g.const(np.array([n, n_blocks, block]))]),
                             g.const(np.float32(8))])
        scale = g.op("Reshape", [node.input[2], g.const(np.array([n, n_blocks, 1]))])
        weight = g.op("Slice", [g.op("Reshape", [g.op("Mul", [codes, scale]),
                                                 g.const(np.array([n, n_blocks * block]))]),
                                g.const(np.array([0])), g.const(np.array([k])),
                                g.const(np.array([1]))])  # (N, K)
        magnitude = g.op("Abs", [weight])
        absmax = (g.op("ReduceMax", [magnitude], axes=[1], keepdims=1) if opset < 18 else
                  g.op("ReduceMax", [magnitude, g.const(np.array([1]))], keepdims=1))
        step = g.op("Max", [g.op("Div", [absmax, g.const(np.float32(127))]),
                            g.const(np.float32(np.finfo(np.float32).tiny))])  # (N, 1)
        rounded = g.op("Clip", [g.op("Round", [g.op("Div", [weight, step])]),
                                g.const(np.float32(-127)), g.const(np.float32(127))])
        w8 = g.op("Transpose", [g.op("Cast", [rounded], to=TensorProto.INT8)], perm=[1, 0])  # (K, N)
        w_scale = g.op("Reshape", [step, g.const(np.array([n]))])
        a8, a_scale, a_zero = (f"{g.prefix}{len(g.nodes)}_{i}" for i in range(3))
        g.nodes.append(helper.make_node("DynamicQuantizeLinear", [node.input[0]],
                                        [a8, a_scale, a_zero]))
        acc = g.op("MatMulInteger", [a8, w8, a_zero, g.const(np.zeros(n, dtype=np.int8))])
        g.op("Mul", [g.op("Cast", [acc], to=TensorProto.FLOAT), g.op("Mul", [a_scale, w_scale])],
             out=node.output[0])
    del model.graph.node[:]
    model.graph.node.extend(g.nodes)
    return widened


def remap_kept(remap: np.ndarray) -> np.ndarray | None:
    """The kept-id mask of a trimmed vocabulary's id map with fallback rows (`vocab.remap_of`:
    kept ids in order to rows 0..k-1, the others in order to rows k..V-1), or None when `remap`
    is not one."""
    n = remap.size
    if remap.ndim != 1 or not np.array_equal(np.sort(remap), np.arange(n)):
        return None
    order = np.argsort(remap)  # the old id of each row
    falls = np.flatnonzero(np.diff(order) < 0)
    if falls.size > 1:
        return None
    k = int(falls[0]) + 1 if falls.size else n
    kept = remap < k
    return kept if np.array_equal(remap[~kept], k + np.arange(n - k)) else None


def _remaps_as_bits(graph: Any) -> list[str]:
    """Write each trimmed vocabulary's id map (int32 per id of the full vocabulary, e.g. 122 KB
    for BERT's 30,522) as one bit per id and the nodes that count the map back out of them
    (CumSum), which ONNX Runtime folds once when it loads the model; returns the maps' names."""
    from onnx import TensorProto, numpy_helper

    def kept_of(value: Any) -> np.ndarray | None:
        if (value is None or value.data_type != TensorProto.INT32 or len(value.dims) != 1
                or value.dims[0] < MIN_REMAP):
            return None
        return remap_kept(numpy_helper.to_array(value))

    g, done = _Nodes("vb_"), []
    # the TorchScript exporter writes a map as a Constant node, torch.export as an initializer
    # (its nodes then go first, before any node reads it)
    inputs = {i.name for i in graph.input}  # an initializer that is also an input stays
    maps = [(init.name, kept) for init in graph.initializer
            if init.name not in inputs and (kept := kept_of(init)) is not None]
    inits = [i for i in graph.initializer if i.name not in dict(maps)]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    rest = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        kept = kept_of(value) if node.op_type == "Constant" else None
        if kept is None:
            rest.append(node)
        else:
            maps.append((node.output[0], kept))
    for out, kept in maps:
        bits = np.packbits(kept.astype(np.uint8), bitorder="little").reshape(-1, 1)
        byte = g.op("Cast", [g.const(bits)], to=TensorProto.FLOAT)  # (V/8, 1)
        flat = g.op("Reshape", [g.digits(byte, 1, 8), g.const(np.array([-1]))])
        kept_f = g.op("Slice", [flat, g.const(np.array([0])),
                                g.const(np.array([kept.size]))])  # (V,) 1.0 where kept
        one, axis = g.const(np.float32(1)), g.const(np.array(0))
        dropped = g.op("Sub", [one, kept_f])
        row_kept = g.op("Sub", [g.op("CumSum", [kept_f, axis]), one])
        row_dropped = g.op("Add", [g.op("CumSum", [dropped, axis]),
                                   g.const(np.float32(kept.sum() - 1))])
        row = g.op("Add", [g.op("Mul", [kept_f, row_kept]), g.op("Mul", [dropped, row_dropped])])
        g.op("Cast", [row], out=out, to=TensorProto.INT32)
        done.append(out)
    del graph.node[:]
    graph.node.extend(g.nodes + rest)
    return done


def _short_names(graph: Any) -> None:
    """Name every tensor inside the graph by a short number and drop the node names: the
    exporters' names (module paths, 30-60 characters, each written where a tensor is made and
    again where it is read) are about 2% of a 4-bit BERT's file. The graph's inputs and outputs
    keep theirs; a graph with subgraphs (If, Loop) is left as it is."""
    from onnx import AttributeProto

    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        return
    keep = {v.name for v in (*graph.input, *graph.output)}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names):x}")

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        node.name = node.doc_string = ""
        del node.metadata_props[:]  # torch.export's per node: its module path, class, stack
        node.input[:] = [short(i) for i in node.input]
        node.output[:] = [short(o) for o in node.output]
    del graph.value_info[:]
