"""ONNX export of a whole Mask R-CNN inference graph, and running it with ONNX Runtime.

The graph is the one :func:`gluon_maskrcnn.export.export_model` writes for MXNet (portable
operators only), translated by MXNet 1.9.1's own exporter at opset 13, the newest its
translations are written for, with our translations of the four operators it gets wrong or lacks
(:mod:`gluon_maskrcnn.onnx_ops`). Batch, height and width stay dynamic. The file's metadata
carries the class names and resize settings, so :class:`OnnxModel` needs nothing else.
"""
import contextlib
import json
import os
import tempfile

import mxnet as mx
import numpy as np

from .errors import UserError
from .files import atomic_write
from .internals import mxnet_onnx_graph, onnx_translations
from .onnx_ops import OPSET, TRANSLATIONS

__all__ = ["OnnxExportError", "export_onnx", "graph_to_onnx", "untranslatable_layers", "OnnxModel",
           "OUTPUT_NAMES"]

OUTPUT_NAMES = ("ids", "scores", "bboxes", "masks")
INSTALL_HINT = "pip install gluon_maskrcnn[onnx] (onnx<1.17 and onnxruntime)"


class OnnxExportError(UserError):
    """A layer of the network has no ONNX translation, or its translation refused it."""


def _require(module):
    try:
        return __import__(module)
    except ImportError:
        raise UserError("ONNX export and inference need the '%s' package: %s" % (module, INSTALL_HINT))


def _mxnet_output_names(sym):
    """The ONNX names MXNet's exporter gives the symbol's outputs (``x_output`` -> ``x``,
    ``x_output2`` -> ``x2``)."""
    names = []
    for name in sym.list_outputs():
        head, _, tail = name.rpartition("_output")
        names.append(head + tail if head and (tail == "" or tail.isdigit()) else name)
    return names


def untranslatable_layers(sym):
    """[(operator, layer name)] of the graph's operators that have no ONNX translation."""
    known = set(TRANSLATIONS)
    for table in onnx_translations().values():
        known.update(table)
    nodes = json.loads(sym.tojson())["nodes"]
    return [(n["op"], n["name"]) for n in nodes if n["op"] != "null" and n["op"] not in known]


def _naming_failures(op, translate):
    def translate_or_explain(node, **kwargs):
        try:
            return translate(node, **kwargs)
        except Exception as err:  # the exporter's own errors name neither the layer nor the op
            raise OnnxExportError("cannot export operator %s of layer '%s' to ONNX: %s"
                                  % (op, node["name"], err)) from err
    return translate_or_explain


@contextlib.contextmanager
def _our_translations():
    """MXNet's registry with ours added at opset 13 and every translation's errors naming the
    operator and layer; restored afterwards."""
    registry = onnx_translations()
    saved = {opset: dict(table) for opset, table in registry.items()}
    try:
        for table in registry.values():
            for op, translate in list(table.items()):
                table[op] = _naming_failures(op, translate)
        registry.setdefault(OPSET, {}).update({op: _naming_failures(op, t) for op, t in TRANSLATIONS.items()})
        yield
    finally:
        registry.clear()
        registry.update(saved)


def graph_to_onnx(sym, params, input_shape=(1, 3, 512, 512), output_names=None, metadata=None):
    """An ONNX ModelProto of ``sym``, whose one input is ``data``.

    ``params``: {name: NDArray} without ``arg:``/``aux:`` prefixes. ``input_shape`` is the
    shape MXNet infers the graph's shapes with; a (B, C, H, W) input keeps B, H and W dynamic in
    the file. ``output_names`` renames the outputs in the symbol's order. Raises
    :class:`OnnxExportError` naming the operator and the layer.
    """
    _require("onnx")
    from onnx import helper

    missing = untranslatable_layers(sym)
    if missing:
        layers = ", ".join("%s (layer '%s')" % pair for pair in missing[:5])
        raise OnnxExportError("no ONNX translation for %d layer(s): %s%s" % (
            len(missing), layers, ", ..." if len(missing) > 5 else ""))
    with _our_translations():
        dynamic = ("batch", input_shape[1], "height", "width") if len(input_shape) == 4 else input_shape
        graph = mxnet_onnx_graph(sym, params, tuple(input_shape), OPSET, tuple(dynamic))
    _drop_weights_from_inputs(graph)
    if output_names:
        _rename_outputs(graph, _mxnet_output_names(sym), output_names)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gluon_maskrcnn")
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    return model


def _drop_weights_from_inputs(graph):
    """MXNet's exporter lists every weight as a graph input too, which tells runtimes that
    the caller may replace it: ONNX Runtime then neither folds nor fuses them (batch norm into
    convolution, say). The weights stay initializers; ``data`` stays the one input."""
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)


def _rename_outputs(graph, current, wanted):
    """Make the graph's outputs ``wanted``, in that order (MXNet's exporter orders them by node)."""
    from onnx import helper

    by_name = {out.name: out for out in graph.output}
    renamed = []
    for old, new in zip(current, wanted):
        graph.node.append(helper.make_node("Identity", [old], [new], name=new))
        info = by_name[old]
        renamed.append(helper.make_tensor_value_info(new, info.type.tensor_type.elem_type, None))
    del graph.output[:]
    graph.output.extend(renamed)


def export_onnx(net, path, size=(800, 1333)):
    """Write ``net``'s inference graph to the ONNX file ``path``; returns ``path``.

    ``size`` (H, W) is the input MXNet traces and infers shapes with; the file accepts any
    batch, height and width (up to the anchors' alloc size, as the MXNet graph does).
    """
    from .export import export_model

    _require("onnx")
    with tempfile.TemporaryDirectory(prefix="gm-onnx-") as folder:
        prefix = os.path.join(folder, "graph")
        export_model(net, prefix, size)
        sym = mx.sym.load(prefix + "-symbol.json")
        params = {key.split(":", 1)[1]: value for key, value in mx.nd.load(prefix + "-0000.params").items()}
    metadata = dict(classes=json.dumps(list(net.classes)), short=json.dumps(net.short),
                    max_size=json.dumps(net.max_size), outputs=json.dumps(list(OUTPUT_NAMES)))
    model = graph_to_onnx(sym, params, (1, 3) + tuple(size), OUTPUT_NAMES, metadata)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(model.SerializeToString())

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, write)
    return path


class OnnxModel:
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU, used like the network:
    ``model(x)`` with ``x`` (B, 3, H, W) returns ``(ids, scores, bboxes, masks)`` as NDArrays;
    ``classes``, ``short`` and ``max_size`` come from the file's metadata.

    ``threads``: ONNX Runtime's intra-op threads (default: its own choice, one per core).
    """

    def __init__(self, path, threads=None):
        ort = _require("onnxruntime")
        if not os.path.isfile(path):
            raise UserError("no ONNX file %s" % path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # the exporter leaves unused constants: no warning per constant
        self.path = path
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in ("classes", "short", "max_size") if key not in meta]
        if missing:
            raise UserError("%s has no %s in its metadata: export it with gluon_maskrcnn's export_model"
                            % (path, ", ".join(missing)))
        self.classes = json.loads(meta["classes"])
        self.short, self.max_size = json.loads(meta["short"]), json.loads(meta["max_size"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = list(OUTPUT_NAMES)

    def run_numpy(self, x):
        """(ids, scores, bboxes, masks) as NumPy arrays for x (B, 3, H, W)."""
        x = x.asnumpy() if isinstance(x, mx.nd.NDArray) else np.asarray(x)
        return tuple(self.session.run(self.output_names, {self.input_name: x.astype(np.float32)}))

    def __call__(self, x):
        return tuple(mx.nd.array(out, dtype=out.dtype) for out in self.run_numpy(x))
