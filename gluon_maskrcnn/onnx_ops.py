"""ONNX translations of the MXNet operators that MXNet 1.9.1's exporter gets wrong or lacks.

Four operators of our inference graphs need one:

- ``_contrib_box_nms``: MXNet's translation runs ONNX ``NonMaxSuppression`` on every box and
  keeps ``topk`` survivors, while MXNet's operator keeps the ``topk`` best-scoring valid boxes
  first and suppresses among those only; the two differ whenever more than ``topk`` boxes are
  valid (the RPN's pre-NMS limit). Ours keeps MXNet's order of operations and its output
  layout (survivors by descending score, then rows of -1).
- ``_not_equal_scalar`` (FPN level selection) has no translation.
- ``_contrib_SyncBatchNorm`` (the SyncBN models) has none either; at inference it is batch
  normalisation with the moving statistics, as ``BatchNorm`` is, whose translation in MXNet
  ignores ``fix_gamma`` (a fixed gamma is 1 whatever the stored value). One translation
  serves both.

A translation follows the protocol of MXNet's exporter: it receives the MXNet node (a dict
with ``name``, ``inputs``, ``attrs``) and keyword arguments of which it reads
``outputs_lookup`` (the ONNX names of earlier nodes' outputs) and ``initializer`` (where
constants go), and returns ONNX nodes whose last output is named as the MXNet node.
"""
import numpy as np

__all__ = ["TRANSLATIONS", "OPSET"]

OPSET = 13  # the newest opset MXNet 1.9.1's translations are written for


class _Builder:
    """Makes the ONNX nodes and constants of one translated MXNet node, with names under its own."""

    def __init__(self, node, kwargs):
        self.name = node["name"]
        self.attrs = node.get("attrs", {})
        lookup = kwargs["outputs_lookup"]
        self.inputs = [lookup[source][index].name for source, index, *_ in node["inputs"]]
        self.dtypes = [lookup[source][index].dtype for source, index, *_ in node["inputs"]]
        self._initializer = kwargs["initializer"]
        self.nodes = []
        self._count = 0

    def const(self, values, dtype=np.int64):
        """A constant tensor (1-D unless ``values`` is a NumPy scalar)."""
        from onnx import numpy_helper

        self._count += 1
        name = "%s_c%d" % (self.name, self._count)
        array = np.asarray(values, dtype=dtype)
        self._initializer.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, inputs, outputs=1, final=None, **attrs):
        """Add one ONNX node; returns its output name (or names, with ``outputs`` > 1).

        ``final``: the node gives the MXNet node's output ``final`` (0, 1, ...), named as the
        exporter expects: the node's name for a one-output operator, with the index appended
        for operators of several outputs (``box_nms`` has two)."""
        from onnx import helper

        names = []
        for _ in range(outputs):
            self._count += 1
            names.append("%s_t%d" % (self.name, self._count))
        if final is not None:
            names = [self.name + ("" if final is True else str(final))]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names


def _flag(attrs, key, default):
    return str(attrs.get(key, default)).lower() in ("true", "1")


def translate_not_equal_scalar(node, **kwargs):
    """``x != scalar`` as 1.0 / 0.0 in ``x``'s dtype, as MXNet returns it."""
    b = _Builder(node, kwargs)
    dtype = b.dtypes[0]
    scalar = b.const(np.array(float(b.attrs["scalar"]), dtype=dtype), dtype)
    from onnx import helper

    equal = b.op("Equal", [b.inputs[0], scalar])
    different = b.op("Not", [equal])
    b.op("Cast", [different], final=True, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    return b.nodes


def translate_batch_norm(node, **kwargs):
    """Inference batch normalisation (moving statistics) of ``BatchNorm`` and
    ``_contrib_SyncBatchNorm``, with gamma = 1 where ``fix_gamma`` says so (MXNet's own
    ``BatchNorm`` translation uses the stored gamma even then)."""
    b = _Builder(node, kwargs)
    if int(b.attrs.get("axis", 1)) != 1:
        raise NotImplementedError("only channel axis 1 is translated")
    data, gamma, beta, mean, var = b.inputs[:5]
    if _flag(b.attrs, "fix_gamma", True):  # both operators' default
        channels = kwargs["weights"][gamma].shape[0]
        gamma = b.const(np.ones(channels, b.dtypes[0]), b.dtypes[0])
    b.op("BatchNormalization", [data, gamma, beta, mean, var], final=True,
         epsilon=float(b.attrs.get("eps", 1e-3)))
    return b.nodes


def _batch_gather(b, data, index):
    """data (B, N, ...) rows at index (B, K) -> (B, K, ...)."""
    return b.op("GatherND", [data, b.op("Unsqueeze", [index, b.const([-1])])], batch_dims=1)


def translate_box_nms(node, **kwargs):
    """MXNet's ``box_nms`` on (B, N, W) rows: keep the valid rows (score > ``valid_thresh``),
    take the ``topk`` best, suppress greedily by IoU > ``overlap_thresh``, and return (B, N, W):
    the survivors by descending score, then rows of -1."""
    b = _Builder(node, kwargs)
    a = b.attrs
    if a.get("in_format", "corner") != "corner" or a.get("out_format", "corner") != "corner":
        raise NotImplementedError("only in_format = out_format = 'corner' is translated")
    id_index = int(a.get("id_index", -1))
    if id_index >= 0 and not _flag(a, "force_suppress", False):
        raise NotImplementedError("per-class suppression (id_index >= 0 with force_suppress=False) "
                                  "is not translated; put each class on its own batch row instead")
    score_index, coord_start = int(a.get("score_index", 1)), int(a.get("coord_start", 2))
    topk = int(a.get("topk", -1))
    valid_thresh = float(a.get("valid_thresh", 0))
    dtype = b.dtypes[0]

    shape = b.op("Shape", [b.inputs[0]])
    rows_shape = b.op("Concat", [b.const([-1]), b.op("Slice", [shape, b.const([-2]), b.const([2 ** 62])])], axis=0)
    data = b.op("Reshape", [b.inputs[0], rows_shape])  # (..., N, W) -> (B, N, W)
    num_rows = b.op("Slice", [rows_shape, b.const([1]), b.const([2])])  # [N]
    scores = b.op("Gather", [data, b.const(np.int64(score_index))], axis=2)  # (B, N)
    valid = b.op("Greater", [scores, b.const(np.array(valid_thresh, dtype), dtype)])
    if id_index >= 0:  # rows of the background id are not valid either
        ids = b.op("Gather", [data, b.const(np.int64(id_index))], axis=2)
        background = b.const(np.array(float(a.get("background_id", -1)), dtype), dtype)
        valid = b.op("And", [valid, b.op("Not", [b.op("Equal", [ids, background])])])
    lowest = b.const(np.array(-np.inf, dtype), dtype)
    ranked = b.op("Where", [valid, scores, lowest])  # (B, N)
    k = num_rows if topk < 0 else b.op("Min", [num_rows, b.const([topk])])  # [K]
    top_scores, top_index = b.op("TopK", [ranked, k], outputs=2, axis=1, largest=1, sorted=1)  # (B, K)
    top_rows = _batch_gather(b, data, top_index)  # (B, K, W)
    top_valid = b.op("Greater", [top_scores, lowest])  # (B, K)

    # NMS on ranks, not scores: strictly decreasing, so ties keep TopK's order; invalid rows
    # get -1 and the threshold 0 drops them whichever way the runtime compares
    count = b.op("Cast", [b.op("Squeeze", [k, b.const([0])])], to=1)  # K as a float scalar
    position = b.op("Range", [b.const(np.float32(0), np.float32), count, b.const(np.float32(1), np.float32)])
    rank_score = b.op("Sub", [count, position])  # (K,): K, K-1, ..., 1
    nms_scores = b.op("Where", [top_valid, rank_score, b.const(np.float32(-1), np.float32)])  # (B, K)
    nms_scores = b.op("Unsqueeze", [nms_scores, b.const([1])])  # (B, K) -> (B, 1, K)
    boxes = b.op("Slice", [top_rows, b.const([coord_start]), b.const([coord_start + 4]), b.const([2])])
    selected = b.op("NonMaxSuppression", [boxes, nms_scores, k,
                                          b.const([float(a.get("overlap_thresh", 0.5))], np.float32),
                                          b.const([0.0], np.float32)])  # (S, 3): batch, class, box
    where = b.op("Gather", [selected, b.const([0, 2])], axis=1)  # (S, 2): batch, box
    ones = b.op("ConstantOfShape", [b.op("Slice", [b.op("Shape", [selected]), b.const([0]), b.const([1])])],
                value=_tensor_value(1.0))
    zeros = b.op("Mul", [b.op("Cast", [top_valid], to=1), b.const(np.float32(0), np.float32)])
    kept = b.op("ScatterND", [zeros, where, ones])  # (B, K): 1 where NMS kept the row

    # survivors first, each group in TopK's order (keys: position, or position + K if dropped)
    dropped = b.op("Sub", [b.const(np.float32(1), np.float32), kept])
    keys = b.op("Add", [position, b.op("Mul", [dropped, count])])  # (B, K)
    _, order = b.op("TopK", [keys, k], outputs=2, axis=1, largest=0, sorted=1)
    ordered = _batch_gather(b, top_rows, order)  # (B, K, W)
    ordered_kept = b.op("GatherElements", [kept, order], axis=1)  # (B, K)
    keep = b.op("Unsqueeze", [b.op("Greater", [ordered_kept, b.const(np.float32(0.5), np.float32)]),
                              b.const([-1])])  # (B, K, 1)
    minus_one = b.const(np.array(-1, dtype), dtype)
    out = b.op("Where", [keep, ordered, minus_one])  # (B, K, W)
    pad_rows = b.op("Sub", [num_rows, k])  # [N - K]
    pads = b.op("Concat", [b.const([0, 0, 0, 0]), pad_rows, b.const([0])], axis=0)
    out = b.op("Pad", [out, pads, minus_one])  # (B, N, W)
    b.op("Reshape", [out, shape], final=0)  # box_nms's output 0 (1 is its hidden record)
    return b.nodes


def _tensor_value(value):
    from onnx import helper

    return helper.make_tensor("value", 1, [1], [value])


TRANSLATIONS = {"_contrib_box_nms": translate_box_nms, "_not_equal_scalar": translate_not_equal_scalar,
                "BatchNorm": translate_batch_norm, "_contrib_SyncBatchNorm": translate_batch_norm}
