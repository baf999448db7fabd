"""Every training flag changes what it says: the built network, the optimizer, the schedule or
the run. A flag that is only parsed would be a claim without proof."""
import logging

import numpy as np

import pytest
from mxnet.gluon.contrib.nn import SyncBatchNorm

import gluon_maskrcnn as gm
from gluon_maskrcnn.engine import trainer as trainer_module
from gluon_maskrcnn.engine.cli import apply_recipe, build_parser
from gluon_maskrcnn.engine.trainer import network_spec
from gluon_maskrcnn.errors import UserError

CLASSES = ["a", "b"]


def _custom_net(*flags):
    """The network ``train_mask_rcnn.py --network resnet18_v1b custom-model FLAGS`` builds."""
    args = apply_recipe(build_parser().parse_args(
        ["--gpus", "", "--network", "resnet18_v1b", "custom-model", "--no-pretrained-base", *flags]))
    name, overrides = network_spec(args, per_device_batch=1, num_devices=1)
    return gm.get_model(name, pretrained_base=False, classes=CLASSES, **overrides)


def _weights(block, ndim):
    """Shapes of ``block``'s weights of ``ndim`` dimensions, in order."""
    return [p.shape for name, p in block.collect_params().items() if name.endswith("weight") and len(p.shape) == ndim]


def _anchor_sizes(net):
    return [tuple(g.sizes) for g in net.rpn.anchor_generator]


# (flags, what to read from the network, its value with the flags); the default differs
CUSTOM_MODEL_FLAGS = [
    (("--num-fpn-filters", "128"), lambda n: n.features.collect_params()[
        [k for k in n.features.collect_params() if k.endswith("P2_conv1_weight")][0]].shape[0], 128),
    (("--num-box-head-conv", "2"), lambda n: len(_weights(n.box_features, 4)), 2),
    (("--num-box-head-conv-filters", "64"), lambda n: _weights(n.box_features, 4)[0][0], 64),
    (("--num_box_head_dense_filters", "512"), lambda n: _weights(n.box_features, 2)[0][0], 512),
    (("--num-box-head-dense-filters", "256"), lambda n: _weights(n.box_features, 2)[0][0], 256),
    (("--image-short", "640"), lambda n: n.short, 640),
    (("--image-max-size", "1000"), lambda n: n.max_size, 1000),
    (("--nms-thresh", "0.3"), lambda n: n.nms_thresh, 0.3),
    (("--nms-topk", "200"), lambda n: n.nms_topk, 200),
    (("--post-nms", "50"), lambda n: n.post_nms, 50),
    (("--roi-size", "7,7"), lambda n: n.roi_pool.roi_size, (7, 7)),
    (("--clip", "3.0"), lambda n: (n.box_clip, n.rpn.clip), (3.0, 3.0)),
    (("--rpn-channel", "128"), lambda n: _weights(n.rpn.rpn_head, 4)[0][0], 128),
    (("--anchor-base-size", "8"), _anchor_sizes, [(16,), (32,), (64,), (128,), (256,)]),
    (("--anchor-scales", "1,2,4,8,16"), _anchor_sizes, [(16,), (32,), (64,), (128,), (256,)]),
    (("--anchor-aspect-ratio", "1"), lambda n: (tuple(n.rpn.anchor_generator[0].ratios),
                                                _weights(n.rpn.rpn_head, 4)[-1][0]), ((1.0,), 4)),
    (("--anchor-alloc-size", "128,128"), lambda n: n.rpn.anchor_generator[0].anchors.shape[2:4], (128, 128)),
    (("--rpn-nms-thresh", "0.6"), lambda n: n.rpn.nms_thresh, 0.6),
    (("--rpn-train-pre-nms", "4000"), lambda n: n.rpn.train_pre_nms, 4000),
    (("--rpn-train-post-nms", "1000"), lambda n: n.rpn.train_post_nms, 1000),
    (("--rpn-test-pre-nms", "3000"), lambda n: n.rpn.test_pre_nms, 3000),
    (("--rpn-test-post-nms", "500"), lambda n: n.rpn.test_post_nms, 500),
    (("--rpn-min-size", "4"), lambda n: n.rpn.min_size, 4),
    (("--rcnn-num-samples", "256"), lambda n: n.sampler.num_sample, 256),
    (("--rcnn-pos-iou-thresh", "0.6"), lambda n: n.sampler.pos_iou_thresh, 0.6),
    (("--rcnn-pos-ratio", "0.5"), lambda n: n.sampler.max_pos, 256),
    (("--max-num-gt", "50"), lambda n: n.sampler.max_num_gt, 50),
    (("--num-mask-head-convs", "2"), lambda n: len([s for s in _weights(n.mask, 4) if s[2] == 3]), 2),
]


@pytest.fixture(scope="module")
def default_custom_net():
    return _custom_net()


@pytest.mark.parametrize("flags, read, expected", CUSTOM_MODEL_FLAGS, ids=[" ".join(f) for f, _, _ in CUSTOM_MODEL_FLAGS])
def test_custom_model_flag_changes_the_built_network(default_custom_net, flags, read, expected):
    assert read(_custom_net(*flags)) == expected
    assert read(default_custom_net) != expected, "the test's value must differ from the default"


@pytest.mark.parametrize("flags, message", [
    (("--strides", "8,16,32,64,128"), "strides=.*feature strides are"),
    (("--target-roi-scale", "1"), "target_roi_scale=1: this model's masks are 2 times its ROI size"),
    (("--roi-mode", "pool"), "roi_mode='pool' is not supported"),
])
def test_custom_model_flags_the_architecture_fixes_are_refused_by_name(flags, message):
    with pytest.raises(UserError, match=message):
        _custom_net(*flags)
    _custom_net(flags[0], {"--strides": "4,8,16,32,64", "--target-roi-scale": "2", "--roi-mode": "align"}[flags[0]])


# ---------------------------------------------------------------- main flags of a run
def _run_args(tiny_root, tmp_path, *flags):
    from train_helpers import make_args

    return make_args(tiny_root, str(tmp_path / "run"), "--epochs", "1", *flags)


def test_optimizer_flags_reach_the_optimizer(tiny_root, tmp_path, monkeypatch):
    """--momentum, --wd and --lr are the SGD settings of the run's trainer."""
    seen = {}
    build = trainer_module.Distributed.trainer

    def record(self, params, optimizer, settings):
        seen.update(settings, optimizer=optimizer)
        return build(self, params, optimizer, settings)

    monkeypatch.setattr(trainer_module.Distributed, "trainer", record)
    trainer_module.fit(_run_args(tiny_root, tmp_path, "--momentum", "0.5", "--wd", "3e-4", "--lr", "0.004",
                                 "--epochs", "0"))
    assert seen == dict(optimizer="sgd", momentum=0.5, wd=3e-4, learning_rate=0.004)


def test_lr_decay_flags_shape_the_logged_schedule(tiny_root, tmp_path):
    """--lr-decay-epoch 1 --lr-decay 0.25: the second epoch runs at a quarter of the first's rate."""
    import json

    args = _run_args(tiny_root, tmp_path, "--epochs", "2", "--lr", "0.01", "--lr-mode", "step", "--lr-warmup", "0",
                     "--lr-decay-epoch", "1", "--lr-decay", "0.25", "--log-interval", "1")
    trainer_module.fit(args)
    records = [json.loads(line) for line in open(args.save_prefix + "_metrics.jsonl")]
    rates = {(r["epoch"], round(r["lr"], 8)) for r in records if r["kind"] == "interval"}
    assert rates == {(0, 0.01), (1, 0.0025)}


def test_rcnn_smoothl1_rho_is_the_box_losss_switch_point(tiny_root, tmp_path):
    for rho in ("0.5", "2.0"):
        args = apply_recipe(build_parser().parse_args(["--gpus", "", "--rcnn-smoothl1-rho", rho,
                                                       "--rpn-smoothl1-rho", "0.25"]))
        net = gm.get_model(*network_spec(args, 1, 1)[:1], pretrained_base=False, **network_spec(args, 1, 1)[1])
        assert net.loss.rcnn_beta == float(rho) and net.loss.rpn_beta == 0.25


def test_verbose_logs_the_settings_and_the_trainable_parameters(tiny_root, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gluon_maskrcnn")
    trainer_module.fit(_run_args(tiny_root, tmp_path, "--epochs", "0"))
    assert "trainable parameters" not in caplog.text
    trainer_module.fit(_run_args(tiny_root, tmp_path, "--epochs", "0", "--verbose"))
    trainable = [line for line in caplog.text.splitlines() if "trainable parameters: " in line]
    assert len(trainable) == 1 and "rpnhead0_conv0_weight, " in trainable[0]
    assert "settings: {" in caplog.text and "'verbose': True" in caplog.text


def test_use_ext_asks_pycocotools_for_nvidias_evaluator_when_it_is_there(tiny_root, monkeypatch):
    import os

    from pycocotools import cocoeval

    from gluon_maskrcnn.engine import evaluation

    made = []

    class NvidiaCOCOeval(cocoeval.COCOeval):  # NVIDIA's COCO API takes use_ext
        def __init__(self, gt, dt, iou_type, use_ext=False):
            made.append(use_ext)
            super().__init__(gt, dt, iou_type)

    monkeypatch.setattr(cocoeval, "COCOeval", NvidiaCOCOeval)
    annotations = os.path.join(tiny_root, "annotations", "instances_val.json")
    result = [{"image_id": 1000, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9,
               "segmentation": {"size": [96, 128], "counts": "0"}}]
    assert evaluation.nvidia_coco_api()
    evaluation.coco_evaluate(annotations, result, use_ext=False)
    evaluation.coco_evaluate(annotations, result, use_ext=True)
    assert made == [False, False, True, True]  # bbox and segm, without then with --use-ext


def test_syncbn_num_devices_reaches_every_syncbn_layer():
    """GluonCV's num_devices / norm_kwargs keywords: each SyncBatchNorm normalises over that many
    devices."""
    def devices(net):
        layers = [b for b in _blocks(net) if isinstance(b, SyncBatchNorm)]
        assert layers
        return {layer._kwargs["ndev"] for layer in layers}  # MXNet keeps the count there

    name = "mask_rcnn_fpn_syncbn_resnet18_v1b_coco"
    assert devices(gm.get_model(name, pretrained_base=False)) == {1}
    assert devices(gm.get_model(name, pretrained_base=False, num_devices=3)) == {3}
    assert devices(gm.get_model(name, pretrained_base=False, norm_kwargs={"num_devices": 2})) == {2}


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)


@pytest.mark.parametrize("name, stages", [("mask_rcnn_fpn_resnet18_v1b_coco", (2, 6)),
                                          ("mask_rcnn_resnet18_v1b_coco", (4, 4))])
def test_min_and_max_stage_are_the_models_levels_and_others_are_refused(name, stages):
    """GluonCV's min_stage/max_stage name the feature levels: the architecture's own are accepted,
    others are refused with the level the model has."""
    from gluon_maskrcnn.model_zoo.gluoncv_keywords import KeywordError

    low, high = stages
    gm.get_model(name, pretrained_base=False, min_stage=low, max_stage=high)
    with pytest.raises(KeywordError, match=r"min_stage=%d: this model's feature levels are fixed \(min_stage=%d\)"
                       % (low + 1, low)):
        gm.get_model(name, pretrained_base=False, min_stage=low + 1)
    with pytest.raises(KeywordError, match=r"max_stage=%d: .*\(max_stage=%d\)" % (high - 1, high)):
        gm.get_model(name, pretrained_base=False, max_stage=high - 1)


def test_transfer_coco_starts_from_the_coco_weights_of_the_shared_classes(tmp_path, monkeypatch):
    """transfer='coco' loads GluonCV's published COCO file (here one the test writes, with its
    sha1 given to the store) and keeps the rows of the classes both lists share."""
    import mxnet as mx

    from gluon_maskrcnn import store
    from gluon_maskrcnn.data.classes import COCO_CLASSES
    from helpers import write_published_params

    name = "mask_rcnn_fpn_resnet18_v1b_coco"
    path, sha1 = write_published_params(name, str(tmp_path))
    monkeypatch.setattr(store, "sha1_table", lambda: {name: sha1})

    net = gm.get_model(name, pretrained_base=False, classes=["dog", "person"], transfer="coco",
                       root=str(tmp_path / "models"))
    assert net.classes == ["dog", "person"]
    saved = mx.nd.load(path)
    key = next(k for k in saved if k.endswith("class_predictor.weight"))
    rows = saved[key].asnumpy()  # (1 + 80, F): background, then COCO's classes
    got = net.class_predictor.weight.data().asnumpy()
    coco_index = {c: i + 1 for i, c in enumerate(COCO_CLASSES)}
    for row, cls in enumerate(["dog", "person"], start=1):
        np.testing.assert_array_equal(got[row], rows[coco_index[cls]])
    with pytest.raises(UserError, match="transfer='voc': only 'coco' weights exist"):
        gm.get_model(name, pretrained_base=False, transfer="voc")
