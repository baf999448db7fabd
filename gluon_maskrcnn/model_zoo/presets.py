"""GluonCV's Mask R-CNN presets, as plain data. One builder turns a preset into a network."""

# Trainable parameters, as GluonCV trains them: everything but the stem, stage 1 and BatchNorm.
TRAIN_PATTERNS = r"^(?!resnetv1[bd]_(conv\d+_|batchnorm|layers1_|down1_))(?!.*batchnorm).*"

_COMMON = dict(
    short=800, max_size=1333, box_clip=4.42, score_thresh=0.01, nms_thresh=0.5, nms_topk=-1,
    max_dets=100, rpn_channels=1024, anchor_ratios=(0.5, 1, 2), rpn_nms_thresh=0.7,
    rpn_train_pre_nms=12000, rpn_train_post_nms=2000, rpn_test_pre_nms=6000,
    rpn_test_post_nms=1000, rpn_min_size=1, pos_iou_thresh=0.5, pos_ratio=0.25, max_num_gt=300,
    mask_channels=256, fpn_channels=256, box_hidden=1024, per_device_batch_size=1, train_patterns=TRAIN_PATTERNS,
    norm="frozen",  # "frozen": BatchNorm with fixed statistics, as GluonCV; "bn": trainable BatchNorm
)

_C4 = dict(_COMMON, fpn=False, strides=(16,), anchor_sizes=((32, 64, 128, 256, 512),),
           anchor_alloc_size=(128, 128), roi_size=(14, 14), mask_roi_size=(14, 14),
           num_fcn_convs=0, num_sample=128)

_FPN = dict(_COMMON, fpn=True, strides=(4, 8, 16, 32, 64),
            anchor_sizes=((32,), (64,), (128,), (256,), (512,)), anchor_alloc_size=(384, 384),
            roi_size=(14, 14), mask_roi_size=(28, 28), num_fcn_convs=4, num_sample=512,
            box_head_avg_pool=True)

PRESETS = {
    "mask_rcnn_resnet18_v1b_coco": dict(_C4, backbone="resnet18_v1b", num_sample=256),
    "mask_rcnn_resnet50_v1b_coco": dict(_C4, backbone="resnet50_v1b"),
    "mask_rcnn_resnet101_v1d_coco": dict(_C4, backbone="resnet101_v1d"),
    "mask_rcnn_fpn_resnet18_v1b_coco": dict(_FPN, backbone="resnet18_v1b", roi_size=(7, 7),
                                            mask_roi_size=(14, 14), num_fcn_convs=2,
                                            box_head_avg_pool=False),
    "mask_rcnn_fpn_resnet50_v1b_coco": dict(_FPN, backbone="resnet50_v1b"),
    "mask_rcnn_fpn_resnet101_v1d_coco": dict(_FPN, backbone="resnet101_v1d"),
}

# COCO accuracy (box AP, mask AP) GluonCV published for these parameter files; only the
# figures this project has confirmed are listed, the others are None.
PUBLISHED_AP = {
    "mask_rcnn_resnet50_v1b_coco": (38.3, 33.1),
    "mask_rcnn_fpn_resnet50_v1b_coco": (39.2, 35.4),
}
