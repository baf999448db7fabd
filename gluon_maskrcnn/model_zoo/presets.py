"""GluonCV's Mask R-CNN presets, as plain data. One builder turns a preset into a network."""

# Trainable parameters, as GluonCV trains them: everything but the stem, stage 1 and BatchNorm.
TRAIN_PATTERNS = r"^(?!resnetv1[bd]_(conv\d+_|batchnorm|layers1_|down1_))(?!.*batchnorm).*"

_COMMON = dict(
    short=800, max_size=1333, box_clip=4.42, score_thresh=0.01, nms_thresh=0.5, nms_topk=-1, force_nms=False,
    max_dets=100, rpn_channels=1024, anchor_ratios=(0.5, 1, 2), rpn_nms_thresh=0.7,
    rpn_train_pre_nms=12000, rpn_train_post_nms=2000, rpn_test_pre_nms=6000,
    rpn_test_post_nms=1000, rpn_min_size=1, pos_iou_thresh=0.5, pos_ratio=0.25, max_num_gt=300,
    mask_channels=256, fpn_channels=256, box_hidden=1024, per_device_batch_size=1, train_patterns=TRAIN_PATTERNS,
    # backbone norm: "frozen" (fixed ImageNet statistics, as GluonCV), "bn" (each device's
    # images), "syncbn" (all devices' images; num_devices of them, GluonCV's keyword)
    norm="frozen", num_devices=1,
    # the SyncBN and custom models' extras: norms in the FPN and the heads, convs in the box head
    fpn_norm=None, fpn_bias=True, head_norm=None, box_head_convs=0, box_head_conv_channels=256,
    box_head_conv_bias=True, box_head_avg_pool=False,
    rpn_beta=1.0 / 9, rcnn_beta=1.0,  # smooth-L1 thresholds of the box losses (GluonCV's rhos)
)

_C4 = dict(_COMMON, fpn=False, strides=(16,), anchor_sizes=((32, 64, 128, 256, 512),),
           anchor_alloc_size=(128, 128), roi_size=(14, 14), mask_roi_size=(14, 14),
           num_fcn_convs=0, num_sample=128)

_FPN = dict(_COMMON, fpn=True, strides=(4, 8, 16, 32, 64),
            anchor_sizes=((32,), (64,), (128,), (256,), (512,)), anchor_alloc_size=(384, 384),
            roi_size=(14, 14), mask_roi_size=(28, 28), num_fcn_convs=4, num_sample=512,
            box_head_avg_pool=True)

# GluonCV's SyncBN models: SyncBatchNorm in the backbone, the FPN, the box head's conv and the
# mask head; short sides drawn from 640..800 in training (800 at inference); every parameter
# but the statistics trains.
_SYNCBN = dict(_FPN, norm="syncbn", fpn_norm="syncbn", head_norm="syncbn", box_head_convs=1,
               short=(640, 800), num_fcn_convs=2, train_patterns=r"(?!.*moving)")

PRESETS = {
    "mask_rcnn_resnet18_v1b_coco": dict(_C4, backbone="resnet18_v1b", num_sample=256),
    "mask_rcnn_resnet50_v1b_coco": dict(_C4, backbone="resnet50_v1b"),
    "mask_rcnn_resnet101_v1d_coco": dict(_C4, backbone="resnet101_v1d"),
    "mask_rcnn_fpn_resnet18_v1b_coco": dict(_FPN, backbone="resnet18_v1b", roi_size=(7, 7),
                                            mask_roi_size=(14, 14), num_fcn_convs=2,
                                            box_head_avg_pool=False),
    "mask_rcnn_fpn_resnet50_v1b_coco": dict(_FPN, backbone="resnet50_v1b"),
    "mask_rcnn_fpn_resnet101_v1d_coco": dict(_FPN, backbone="resnet101_v1d"),
    "mask_rcnn_fpn_syncbn_resnet18_v1b_coco": dict(_SYNCBN, backbone="resnet18_v1b", roi_size=(7, 7),
                                                   mask_roi_size=(14, 14), box_head_avg_pool=False),
    "mask_rcnn_fpn_syncbn_mobilenet1_0_coco": dict(_SYNCBN, backbone="mobilenet1_0", roi_size=(14, 14),
                                                   mask_roi_size=(28, 28), box_head_avg_pool=True),
}

# Names GluonCV publishes no COCO parameter file for (pretrained=True cannot work).
UNPUBLISHED = ("mask_rcnn_fpn_syncbn_resnet18_v1b_coco", "mask_rcnn_fpn_syncbn_mobilenet1_0_coco")

# COCO accuracy (box AP, mask AP) GluonCV published for these parameter files; only the
# figures this project has confirmed are listed, the others are None.
PUBLISHED_AP = {
    "mask_rcnn_resnet50_v1b_coco": (38.3, 33.1),
    "mask_rcnn_fpn_resnet50_v1b_coco": (39.2, 35.4),
}

CUSTOM = "custom_mask_rcnn_fpn"


def custom_preset(backbone, norm="frozen", fpn_norm=None):
    """The preset of :func:`~gluon_maskrcnn.model_zoo.custom_mask_rcnn_fpn`: GluonCV's custom FPN
    model (its training script's ``custom-model`` defaults) on ``backbone`` with ``norm``."""
    frozen = norm == "frozen"
    return dict(_FPN, backbone=backbone, norm=norm, fpn_norm=fpn_norm, fpn_bias=frozen,
                box_head_convs=0 if frozen else 4, box_head_conv_bias=False,
                head_norm=None if frozen else norm,
                train_patterns=TRAIN_PATTERNS if frozen else r"(?!.*moving)")
