"""Load a model for evaluation or demo: a zoo name, optionally with a checkpoint or .params."""
from ..model_zoo import get_model
from .checkpoint import checkpoint_args
from .recipes import ARCHITECTURE_KEYS

__all__ = ["load_model", "model_name"]


def model_name(network, use_fpn):
    """The zoo name of a ``--network`` / ``--use-fpn`` pair."""
    return "mask_rcnn_%s%s_coco" % ("fpn_" if use_fpn else "", network)


def load_model(model, params=None, ctx=None, **overrides):
    """``model``: a zoo name, or a training checkpoint prefix (``runs/x-best``) whose JSON
    names the network and classes. ``params``: a .params file for a zoo name (or True)."""
    args = checkpoint_args(model)
    if args is not None:
        for key in ARCHITECTURE_KEYS + ("rpn_test_pre_nms", "rpn_test_post_nms", "max_dets", "norm"):
            if args.get(key) is not None:
                overrides.setdefault(key, args[key])
        from ..data.coco import COCOInstances

        classes = COCOInstances(args["dataset_root"], args["train_split"]).classes
        net = get_model(model_name(args["network"], args["use_fpn"]), pretrained=False,
                        pretrained_base=False, classes=classes, ctx=ctx, **overrides)
        net.load_parameters(model + ".params", ctx=ctx)
        return net
    return get_model(model, pretrained=params or True, pretrained_base=False, ctx=ctx, **overrides)
