"""GluonCV's ``get_model`` keywords, translated into our preset entries.

Every keyword GluonCV's Mask R-CNN builders and its ``MaskRCNN`` / ``FasterRCNN`` constructors
take is either translated (same meaning) or refused with a message that names it and says
what to use instead. ``tests/model_zoo/test_gluoncv_keywords.py`` walks GluonCV's signatures.
"""
import numbers

from ..errors import UserError

__all__ = ["translate", "norm_kind", "KeywordError", "TRANSLATED", "REFUSED", "IGNORED"]

# GluonCV keyword -> our preset entry, where only the name differs
RENAMED = {"rcnn_max_dets": "max_dets", "clip": "box_clip", "rpn_channel": "rpn_channels",
           "alloc_size": "anchor_alloc_size", "ratios": "anchor_ratios",
           "num_fpn_filters": "fpn_channels", "num_box_head_conv": "box_head_convs",
           "num_box_head_conv_filters": "box_head_conv_channels",
           "num_box_head_dense_filters": "box_hidden", "base_network_name": "backbone"}

# accepted, with nothing to change: what they control is fixed or implied in our models
IGNORED = {
    "minimal_opset": "our graphs always hold the training targets and export without them",
    "dataset": "only names the model; classes come from `classes`",
    "name": "only names the model",
}

# refused: (why, what to use instead)
REFUSED = {
    "features": "get_model builds the backbone from the name; to wire your own blocks, build "
                "gluon_maskrcnn.MaskRCNN(features, top_features, box_features, classes, ...)",
    "top_features": "see `features`: build gluon_maskrcnn.MaskRCNN(...) directly",
    "box_features": "see `features`: build gluon_maskrcnn.MaskRCNN(...) directly",
    "additional_output": "our networks return the training outputs by name in train_mode "
                         "(net(x, gt_boxes, gt_labels).rois etc.); no extra output is needed",
}

# translated by a function of their own (see translate)
SPECIAL = ("post_nms", "min_stage", "max_stage", "roi_mode", "strides", "base_size", "scales",
           "target_roi_scale", "norm_layer", "norm_kwargs", "sym_norm_layer", "sym_norm_kwargs",
           "transfer")

TRANSLATED = tuple(RENAMED) + SPECIAL


class KeywordError(UserError, TypeError):
    """A GluonCV keyword our models cannot honour; the message says what to use instead."""


def norm_kind(layer):
    """Our norm name of a GluonCV ``norm_layer`` value: a Gluon class, a symbol function, None
    or one of our names (``"frozen"``, ``"bn"``, ``"syncbn"``). GluonCV's ``nn.BatchNorm`` means
    frozen BatchNorm (its builders freeze it)."""
    if layer is None or layer in ("frozen", "bn", "syncbn"):
        return layer
    name = getattr(layer, "__name__", "").lower()
    if "syncbatchnorm" in name:
        return "syncbn"
    if name == "batchnorm":
        return "frozen"
    raise KeywordError("norm_layer %r is not supported: use mxnet.gluon.nn.BatchNorm (frozen), "
                       "mxnet.gluon.contrib.nn.SyncBatchNorm, or the names 'frozen', 'bn', 'syncbn'"
                       % (layer,))


def _anchor_sizes(cfg, base_size, scales):
    """Anchor sizes from GluonCV's base size and scales: one per level (FPN) or all at one."""
    sizes = tuple(float(base_size) * s for s in scales)
    sizes = tuple(int(s) if float(s).is_integer() else s for s in sizes)
    return tuple((s,) for s in sizes) if cfg["fpn"] else (sizes,)


def _check_stages(cfg, key, value):
    expected = {"min_stage": 2 if cfg["fpn"] else 4, "max_stage": 6 if cfg["fpn"] else 4}[key]
    if int(value) != expected:
        raise KeywordError("%s=%r: this model's feature levels are fixed (%s=%d); choose an FPN "
                           "or C4 name instead" % (key, value, key, expected))


def translate(cfg, kwargs):
    """Our preset overrides for GluonCV keywords ``kwargs`` on preset ``cfg``.

    Keys that are already preset entries pass through unchanged. Returns (overrides,
    get_model extras): extras holds ``pretrained`` for ``transfer``.
    """
    out, extras = {}, {}
    special = {}
    for key, value in kwargs.items():
        if key in SPECIAL:
            special[key] = value
        elif key in cfg:
            out[key] = value
        elif key in RENAMED:
            out[RENAMED[key]] = value
        elif key in IGNORED:
            continue
        elif key in REFUSED:
            raise KeywordError("keyword %r is not supported: %s" % (key, REFUSED[key]))
        else:
            raise KeywordError("unknown preset keys: %r is neither a preset entry (see "
                               "gluon_maskrcnn.model_zoo.PRESETS) nor a GluonCV keyword" % key)
    if "roi_size" in out and "mask_roi_size" not in out:
        # GluonCV's masks are roi_size x target_roi_scale: the mask size follows the ROI size
        ratio = cfg["mask_roi_size"][0] / cfg["roi_size"][0]
        out["mask_roi_size"] = tuple(int(round(side * ratio)) for side in out["roi_size"])
    merged = dict(cfg, **out)
    for key in ("min_stage", "max_stage"):
        if key in special:
            _check_stages(merged, key, special[key])
    if special.get("roi_mode", "align") != "align":
        raise KeywordError("roi_mode=%r is not supported: our models pool with ROIAlign "
                           "(roi_mode='align')" % special["roi_mode"])
    if "post_nms" in special and special["post_nms"] is not None and special["post_nms"] > 0:
        out["max_dets"] = min(int(special["post_nms"]), int(merged["max_dets"]))
    if "strides" in special:
        strides = special["strides"]
        strides = (strides,) if isinstance(strides, numbers.Number) else tuple(strides)
        if tuple(strides) != tuple(merged["strides"]):
            raise KeywordError("strides=%r: this model's feature strides are %r" % (strides, merged["strides"]))
    if "base_size" in special or "scales" in special:
        base = special.get("base_size", 16)
        scales = special.get("scales") or tuple(s[0] / base for s in merged["anchor_sizes"])
        out["anchor_sizes"] = _anchor_sizes(merged, base, scales)
    if "target_roi_scale" in special:  # the mask head's output is fixed by the architecture
        scale = merged["mask_roi_size"][0] / merged["roi_size"][0]
        if special["target_roi_scale"] != scale:
            raise KeywordError("target_roi_scale=%r: this model's masks are %g times its ROI size "
                               "(the mask head's deconvolution doubles FPN ROIs; C4's res5 halves "
                               "them first)" % (special["target_roi_scale"], scale))
    _translate_norms(special, out)
    if special.get("transfer"):
        if special["transfer"] != "coco":
            raise KeywordError("transfer=%r: only 'coco' weights exist for Mask R-CNN"
                               % special["transfer"])
        extras["pretrained"] = True
    return out, extras


def _translate_norms(special, out):
    if "norm_layer" in special:
        kind = norm_kind(special["norm_layer"])
        if kind is not None:
            out["norm"] = kind
            if kind == "syncbn":
                out["head_norm"] = "syncbn"
    devices = (special.get("norm_kwargs") or {}).get("num_devices")
    devices = devices or (special.get("sym_norm_kwargs") or {}).get("ndev")
    if devices:
        out["num_devices"] = int(devices)
    if "sym_norm_layer" in special:
        kind = norm_kind(special["sym_norm_layer"])
        out["fpn_norm"] = None if kind in (None, "frozen") else kind
