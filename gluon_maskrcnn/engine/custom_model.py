"""GluonCV's ``custom-model`` sub-command of ``train_mask_rcnn.py``: its flags, and the
``custom_mask_rcnn_fpn`` keywords they mean (GluonCV's meanings and defaults)."""

__all__ = ["CUSTOM_MODEL_FLAGS", "custom_model_keywords", "custom_model_overrides"]

# GluonCV's ``custom-model`` sub-command: flag -> (type, default); the model is
# custom_mask_rcnn_fpn on --network (defaults: GluonCV's script's)
CUSTOM_MODEL_FLAGS = {
    "no_pretrained_base": (None, False), "num_fpn_filters": (int, 256), "num_box_head_conv": (int, 4),
    "num_box_head_conv_filters": (int, 256), "num_box_head_dense_filters": (int, 1024),
    "image_short": (str, "800"), "image_max_size": (int, 1333), "nms_thresh": (float, 0.5),
    "nms_topk": (int, -1), "post_nms": (int, -1), "roi_mode": (str, "align"), "roi_size": (str, "14,14"),
    "strides": (str, "4,8,16,32,64"), "clip": (float, 4.14), "rpn_channel": (int, 256),
    "anchor_base_size": (int, 16), "anchor_aspect_ratio": (str, "0.5,1,2"),
    "anchor_scales": (str, "2,4,8,16,32"), "anchor_alloc_size": (str, "384,384"),
    "rpn_nms_thresh": (float, 0.7), "rpn_train_pre_nms": (int, 12000), "rpn_train_post_nms": (int, 2000),
    "rpn_test_pre_nms": (int, 6000), "rpn_test_post_nms": (int, 1000), "rpn_min_size": (int, 1),
    "rcnn_num_samples": (int, 512), "rcnn_pos_iou_thresh": (float, 0.5), "rcnn_pos_ratio": (float, 0.25),
    "max_num_gt": (int, 100), "target_roi_scale": (int, 2), "num_mask_head_convs": (int, 4),
}


def _numbers(text, kind):
    """'4,8,16' -> (4, 8, 16); '800' -> 800 (GluonCV's --image-short: one size or a range)."""
    values = _sequence(text, kind)
    return values[0] if len(values) == 1 else values


def _sequence(text, kind):
    """'4,8,16' -> (4, 8, 16); '1' -> (1,) (GluonCV's comma lists, always lists)."""
    return tuple(kind(v) for v in str(text).split(",") if v.strip())


def custom_model_keywords(args):
    """get_model keywords of the ``custom-model`` sub-command's flags (GluonCV's meanings)."""
    c = {key: getattr(args, "custom_" + key) for key in CUSTOM_MODEL_FLAGS}
    short = _numbers(c["image_short"], int)
    return dict(
        base_network_name=args.network, pretrained_base=not (c["no_pretrained_base"] or args.no_pretrained_base),
        num_fpn_filters=c["num_fpn_filters"], num_box_head_conv=c["num_box_head_conv"],
        num_box_head_conv_filters=c["num_box_head_conv_filters"],
        num_box_head_dense_filters=c["num_box_head_dense_filters"],
        short=short, max_size=c["image_max_size"], nms_thresh=c["nms_thresh"], nms_topk=c["nms_topk"],
        post_nms=c["post_nms"], roi_mode=c["roi_mode"], roi_size=_sequence(c["roi_size"], int),
        strides=_sequence(c["strides"], int), clip=c["clip"], rpn_channel=c["rpn_channel"],
        base_size=c["anchor_base_size"], ratios=_sequence(c["anchor_aspect_ratio"], float),
        scales=_sequence(c["anchor_scales"], float), alloc_size=_sequence(c["anchor_alloc_size"], int),
        rpn_nms_thresh=c["rpn_nms_thresh"], rpn_train_pre_nms=c["rpn_train_pre_nms"],
        rpn_train_post_nms=c["rpn_train_post_nms"], rpn_test_pre_nms=c["rpn_test_pre_nms"],
        rpn_test_post_nms=c["rpn_test_post_nms"], rpn_min_size=c["rpn_min_size"],
        num_sample=c["rcnn_num_samples"], pos_iou_thresh=c["rcnn_pos_iou_thresh"],
        pos_ratio=c["rcnn_pos_ratio"], max_num_gt=c["max_num_gt"],
        target_roi_scale=c["target_roi_scale"], num_fcn_convs=c["num_mask_head_convs"],
        min_stage=2, max_stage=6)


def custom_model_overrides(args):
    """get_model keywords of a custom-model run's flags, ``pretrained_base`` aside (get_model
    takes it as an argument), with the run's norm also in the FPN: GluonCV's script passes the
    FPN's norm settings but not the layer, and meant it."""
    keywords = custom_model_keywords(args)
    keywords.pop("pretrained_base")
    if getattr(args, "norm", None) not in (None, "frozen"):
        keywords["fpn_norm"] = args.norm
    return keywords
