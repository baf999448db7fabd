"""Load a model for evaluation or demo: a zoo name, optionally with a checkpoint or .params."""
import json
import os

from ..model_zoo import get_model

__all__ = ["load_model"]


def load_model(model, params=None, ctx=None, **overrides):
    """``model``: a zoo name, or a training checkpoint prefix (``runs/x-best``) whose JSON
    names the network and classes. ``params``: a .params file for a zoo name (or True)."""
    if os.path.exists(model + ".json"):
        with open(model + ".json") as f:
            args = json.load(f)["args"]
        name = "mask_rcnn_%s%s_coco" % ("fpn_" if args["use_fpn"] else "", args["network"])
        for key in ("short", "max_size", "rpn_channels", "rpn_test_pre_nms", "rpn_test_post_nms", "max_dets",
                    "norm"):
            if args.get(key) is not None:
                overrides.setdefault(key, args[key])
        from ..data.coco import COCOInstances

        classes = COCOInstances(args["dataset_root"], args["train_split"]).classes
        net = get_model(name, pretrained=False, pretrained_base=False, classes=classes, ctx=ctx, **overrides)
        net.load_parameters(model + ".params", ctx=ctx)
        return net
    return get_model(model, pretrained=params or True, pretrained_base=False, ctx=ctx, **overrides)
