"""Export a trained model for deployment, and load it back without this package's classes.

``export_model(net, "out/mask_rcnn")`` writes ``out/mask_rcnn-symbol.json`` and
``out/mask_rcnn-0000.params`` (MXNet's standard pair, loadable by ``SymbolBlock.imports`` in
any MXNet front end), plus ``out/mask_rcnn-meta.json`` with what inference needs besides the
graph: class names and the resize settings. :func:`load_exported` reads all three and returns
a block that :func:`gluon_maskrcnn.predict` accepts.
"""
import contextlib
import json
import os

import mxnet as mx

from .errors import UserError
from .files import atomic_write
from .inference import network_context
from .modeling.warmup import forward_once

__all__ = ["export_model", "load_exported", "ExportedModel"]


def export_model(net, prefix, size=(800, 1333), format="mxnet", portable=True):
    """Hybridize ``net``, trace it on a ``(1, 3, *size)`` input and write the three files.

    Returns the file names. The graph is not tied to ``size``: it runs on any input size. With
    ``portable`` (the default) it is made of MXNet's own operators only (``net.fast_ops`` is off
    while tracing), so it runs wherever MXNet does. ``portable=False`` keeps
    :mod:`gluon_maskrcnn.ops`'s faster CPU operators for ROIAlign and the proposal NMS when
    they are built (the meta file then says ``extension_ops``): the export runs on the CPU, and
    loads where gluon_maskrcnn is installed (:func:`load_exported` loads the operators).

    ``format="onnx"`` writes one file, ``prefix.onnx``, instead (see
    :mod:`gluon_maskrcnn.onnx_export`): the same graph, class names and resize settings.

    ``net`` may also be an :class:`~gluon_maskrcnn.export.ExportedModel`, such as the int8 network of
    :func:`gluon_maskrcnn.quantization.quantize`: its graph is written as it is, and the meta
    file records ``int8``.
    """
    if isinstance(net, ExportedModel):
        return _export_graph(net, prefix, format)
    if format == "onnx":
        from .onnx_export import export_onnx

        if not portable:
            raise UserError("an ONNX graph is made of standard operators only: portable=False "
                            "applies to format='mxnet'")
        return [export_onnx(net, prefix + ".onnx", size)]
    if format != "mxnet":
        raise UserError("unknown export format %r: use 'mxnet' or 'onnx'" % (format,))
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with net.portable_ops() if portable else contextlib.nullcontext():
        net.hybridize(static_alloc=True)
        forward_once(net, size)  # on the network's context: the extension operators only where they run
        net.export(prefix, portable=portable)
        extension_ops = net.traced_with_extension_ops
    return _write_meta(prefix, dict(classes=list(net.classes), short=net.short, max_size=net.max_size,
                                    outputs=list(net.INFER_OUTPUTS)), extension_ops)


def _write_meta(prefix, meta, extension_ops):
    """Write ``prefix-meta.json`` (``extension_ops`` recorded when True); the export's three file names."""
    if extension_ops:
        meta = dict(meta, extension_ops=True)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1)

    atomic_write(prefix + "-meta.json", write)
    return [prefix + "-symbol.json", prefix + "-0000.params", prefix + "-meta.json"]


def _export_graph(model, prefix, format):
    """Write an already exported (or quantized) graph again, with its meta file."""
    if format != "mxnet":
        raise UserError("%s exports as MXNet symbol files only (format='mxnet'), not %r"
                        % ("an int8 network" if model.int8 else "an exported model", format))
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    # a block writes the parameters of the cached graph it has run: run it once
    model(mx.nd.zeros((1, 3, 128, 128), ctx=network_context(model)))
    model.graph.export(prefix)
    return _write_meta(prefix, dict(classes=model.classes, short=model.short, max_size=model.max_size,
                                    outputs=["ids", "scores", "bboxes", "masks"], int8=model.int8),
                       model.extension_ops)


class ExportedModel(mx.gluon.HybridBlock):
    """An exported graph with its class names and resize settings.

    ``model(x)`` with ``x`` (B, 3, H, W) returns ``(ids, scores, bboxes, masks)`` as the
    original network does; ``classes``, ``short`` and ``max_size`` are read from the meta file,
    ``int8`` says whether the graph is quantized (CPU only), and ``extension_ops`` whether it
    uses :mod:`gluon_maskrcnn.ops`'s CPU operators (CPU only).
    """

    def __init__(self, block, classes, short, max_size, int8=False, extension_ops=False):
        super().__init__(prefix="exported_")
        self.graph = block
        self.classes, self.short, self.max_size = list(classes), short, max_size
        self.int8 = bool(int8)
        self.extension_ops = bool(extension_ops)
        if self.int8:
            # buffers planned once per input shape: FPN R50 int8 at 800x1216 ran 2.66 s a
            # call with MXNet's default graph settings, 2.26 s with these
            block.hybridize(static_alloc=True, static_shape=True)

    def hybrid_forward(self, F, x):
        return self.graph(x)


def load_exported(prefix, ctx=None):
    """Load what :func:`~gluon_maskrcnn.export.export_model` wrote: an :class:`~gluon_maskrcnn.export.ExportedModel` for a prefix, or an
    :class:`~gluon_maskrcnn.onnx_export.OnnxModel` (ONNX Runtime) for a ``.onnx`` file."""
    import warnings

    if prefix.endswith(".onnx"):
        from .onnx_export import OnnxModel

        return OnnxModel(prefix)
    if not os.path.isfile(prefix + "-meta.json"):
        raise UserError("no exported model at %s (expected %s-meta.json, -symbol.json and -0000.params, "
                        "or a .onnx file)" % (prefix, prefix))
    ctx = ctx or mx.cpu()
    with open(prefix + "-meta.json") as f:
        meta = json.load(f)
    if meta.get("int8") and ctx.device_type != "cpu":
        raise UserError("%s is an int8 model, which runs on the CPU (oneDNN) only, not on %s" % (prefix, ctx))
    if meta.get("extension_ops"):
        _load_extension_ops(prefix, ctx)
    with warnings.catch_warnings():  # MXNet warns about the graph's constant anchors
        warnings.simplefilter("ignore")
        block = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                             prefix + "-0000.params", ctx=ctx)
    return ExportedModel(block, meta["classes"], meta["short"], meta["max_size"], int8=meta.get("int8", False),
                         extension_ops=meta.get("extension_ops", False))


def _load_extension_ops(prefix, ctx):
    """Load :mod:`gluon_maskrcnn.ops` for an export that uses them; a UserError if they cannot run."""
    from . import ops

    if ctx.device_type != "cpu":
        raise UserError("%s uses gluon_maskrcnn's CPU operators (exported with portable=False), which do not "
                        "run on %s: export it with portable=True" % (prefix, ctx))
    if not ops.load():
        raise UserError("%s uses gluon_maskrcnn's CPU operators (exported with portable=False), which cannot "
                        "be loaded here (%s): export it with portable=True" % (prefix, ops.unavailable_reason()))
