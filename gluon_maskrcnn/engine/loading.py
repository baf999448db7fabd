"""Load a model for evaluation or demo: a zoo name, optionally with a checkpoint or .params."""
import os
from types import SimpleNamespace

from ..model_zoo import CUSTOM, PRESETS, get_model
from .checkpoint import checkpoint_args, checkpoint_classes
from .custom_model import custom_model_overrides
from .recipes import ARCHITECTURE_KEYS

__all__ = ["load_model", "model_name", "checkpoint_model"]


def model_name(network, use_fpn, norm=None, custom=False):
    """The zoo name of the flags ``--network``, ``--use-fpn``, ``--norm`` and ``custom-model``.

    With SyncBN and FPN, GluonCV's ``mask_rcnn_fpn_syncbn_*`` name when there is one (GluonCV's
    script asks for ``mask_rcnn_fpn_bn_*``, which does not exist).
    """
    if custom:
        return CUSTOM
    network = network.replace("mobilenet1.0", "mobilenet1_0")
    syncbn = "mask_rcnn_fpn_syncbn_%s_coco" % network
    if norm == "syncbn" and use_fpn and syncbn in PRESETS:
        return syncbn
    return "mask_rcnn_%s%s_coco" % ("fpn_" if use_fpn else "", network)


def checkpoint_model(args):
    """(zoo name, get_model keywords) of a training checkpoint's saved ``args`` dict."""
    overrides = {}
    for key in ARCHITECTURE_KEYS + ("rpn_test_pre_nms", "rpn_test_post_nms", "max_dets", "norm"):
        if args.get(key) is not None:
            overrides[key] = args[key]
    custom = bool(args.get("custom_model"))
    if custom:
        overrides = dict(custom_model_overrides(SimpleNamespace(**args)), **overrides)
    return model_name(args["network"], args["use_fpn"], args.get("norm"), custom), overrides


def load_model(model, params=None, ctx=None, **overrides):
    """``model``: a zoo name, a training checkpoint prefix (``runs/x-best``) whose JSON names the
    network and classes, an exported model's prefix (``export_model``'s files, int8 included) or
    an exported ``.onnx`` file (run by ONNX Runtime); the last two are for inference only.
    ``params``: a .params file for a zoo name (or True)."""
    if model.endswith(".onnx") or os.path.isfile(model + "-meta.json"):
        from ..export import load_exported

        return load_exported(model, ctx)
    args = checkpoint_args(model)
    if args is not None:
        name, saved = checkpoint_model(args)
        for key, value in saved.items():
            overrides.setdefault(key, value)
        classes = checkpoint_classes(model)
        if classes is None:  # an older checkpoint: its training dataset names them
            from ..data.coco import COCOInstances

            classes = COCOInstances(args["dataset_root"], args["train_split"]).classes
        net = get_model(name, pretrained=False, pretrained_base=False, classes=classes, ctx=ctx, **overrides)
        net.load_parameters(model + ".params", ctx=ctx)
        return net
    return get_model(model, pretrained=params or True, pretrained_base=False, ctx=ctx, **overrides)
