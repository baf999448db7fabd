"""Build a Faster/Mask R-CNN from a preset dict (see :mod:`.presets`)."""

from ..modeling.backbone import build_backbone, c4_backbone, pyramid
from ..modeling.heads import fpn_box_head
from ..modeling.mask_rcnn import MaskRCNN
from ..modeling.roi_align import MultiLevelROIAlign
from ..modeling.rpn import RPN

__all__ = ["build_mask_rcnn"]


def build_rpn(cfg):
    return RPN(cfg["rpn_channels"], cfg["strides"], cfg["anchor_sizes"], cfg["anchor_ratios"],
               cfg["anchor_alloc_size"], cfg["box_clip"], nms_thresh=cfg["rpn_nms_thresh"],
               train_pre_nms=cfg["rpn_train_pre_nms"], train_post_nms=cfg["rpn_train_post_nms"],
               test_pre_nms=cfg["rpn_test_pre_nms"], test_post_nms=cfg["rpn_test_post_nms"],
               min_size=cfg["rpn_min_size"])


def build_mask_rcnn(cfg, classes, pretrained_base=False, root=None, ctx=None):
    """A :class:`~gluon_maskrcnn.modeling.mask_rcnn.MaskRCNN` for preset ``cfg`` (a dict of :mod:`.presets`) and ``classes``;
    ImageNet weights (``pretrained_base``) are loaded onto ``ctx``."""
    devices = cfg["num_devices"]
    body = build_backbone(cfg["backbone"], pretrained_base, cfg["norm"], devices, root=root, ctx=ctx)
    if cfg["fpn"]:
        features = pyramid(cfg["backbone"], body, cfg["fpn_channels"], cfg["fpn_norm"], devices,
                           cfg["fpn_bias"])
        top_features = None
        box_features = fpn_box_head(cfg["box_hidden"], cfg["box_head_avg_pool"], cfg["box_head_convs"],
                                    cfg["box_head_conv_channels"], cfg["box_head_conv_bias"],
                                    cfg["head_norm"], devices)
        pooled_strides = cfg["strides"][:-1]  # P6 only feeds the RPN
    else:
        (features, top_features), box_features = c4_backbone(body), None
        pooled_strides = cfg["strides"]
    rpn_train_post = min(cfg["rpn_train_post_nms"], cfg["rpn_train_pre_nms"])
    if cfg["num_sample"] > rpn_train_post:
        raise ValueError("num_sample (%d) must not exceed rpn_train_post_nms (%d)"
                         % (cfg["num_sample"], rpn_train_post))
    return MaskRCNN(
        features, top_features, box_features, classes,
        rpn=build_rpn(cfg), roi_pool=MultiLevelROIAlign(cfg["roi_size"], pooled_strides),
        mask_channels=cfg["mask_channels"], num_fcn_convs=cfg["num_fcn_convs"],
        mask_norm=cfg["head_norm"], num_devices=devices, rpn_beta=cfg["rpn_beta"],
        rcnn_beta=cfg["rcnn_beta"],
        mask_roi_size=cfg["mask_roi_size"], per_device_batch_size=cfg["per_device_batch_size"],
        num_sample=cfg["num_sample"], pos_iou_thresh=cfg["pos_iou_thresh"],
        pos_ratio=cfg["pos_ratio"], max_num_gt=cfg["max_num_gt"], box_clip=cfg["box_clip"],
        score_thresh=cfg["score_thresh"], nms_thresh=cfg["nms_thresh"], nms_topk=cfg["nms_topk"],
        force_nms=cfg["force_nms"],
        max_dets=cfg["max_dets"], short=cfg["short"], max_size=cfg["max_size"],
        train_patterns=cfg["train_patterns"])
