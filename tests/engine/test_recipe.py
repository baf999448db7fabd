"""The COCO recipe equals GluonCV's ``train_mask_rcnn.py`` (0.10.5) for every zoo name.

GluonCV's side is read from GluonCV itself where it is data (trainable parameters, image
sizes, ROI sampling) and written down from its training script where it is code (the script
is not in GluonCV's package): lr 0.00125 per image, warm-up max(8000 / batch, 1000) iterations
from 1/3 of the lr, 26 epochs with x0.1 at 17 and 23, SGD momentum 0.9, weight decay 1e-4 with
``wd_mult`` 0 on ``.*bias``, no gradient clipping, frozen BatchNorm.
"""
import re

import pytest
from gluoncv import model_zoo as gluoncv_zoo

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.rpn_targets import RPNTargetGenerator
from gluon_maskrcnn.engine.cli import build_parser, apply_recipe
from gluon_maskrcnn.engine.schedule import default_lr, default_warmup
from gluon_maskrcnn.engine.trainer import no_bias_decay
from gluon_maskrcnn.internals import gluoncv_sampler_settings, structural_params
from gluon_maskrcnn.model_zoo import PRESETS


def _trainable(net):
    """Structural names (as in a parameter file) of the parameters a net trains; GluonCV's
    MobileNet prefix counts the MobileNets built before in the process (ours is mobilenet0_)."""
    train = set(net.collect_train_params().keys())
    return {re.sub(r"mobilenet\d+_", "mobilenet0_", key)
            for key, param in structural_params(net).items() if param.name in train}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_trainable_parameters_image_sizes_and_roi_sampling_are_gluoncvs(name):
    theirs = gluoncv_zoo.get_model(name, pretrained_base=False)
    ours = gm.get_model(name, pretrained_base=False)
    assert _trainable(ours) == _trainable(theirs)
    assert (ours.short, ours.max_size) == (theirs.short, theirs.max_size)
    assert ours.short in (800, (640, 800)) and ours.max_size == 1333  # SyncBN: 640..800 in training
    sampler, their_sampler = ours.sampler, gluoncv_sampler_settings(theirs)
    assert sampler.num_sample == their_sampler["num_sample"]
    assert sampler.max_pos == their_sampler["max_pos"]
    assert (sampler.key_count - ours.rpn.train_post_nms) == their_sampler["max_num_gt"]
    assert ours.rpn.train_post_nms == their_sampler["num_proposal"]


def test_coco_defaults_are_gluoncvs_schedule():
    args = apply_recipe(build_parser().parse_args(["--dataset", "coco", "--gpus", "0,1,2,3,4,5,6,7"]))
    assert args.batch_size == 8 and default_lr(args.batch_size) == pytest.approx(0.01)
    assert default_lr(16) == pytest.approx(0.00125 * 16)
    assert args.lr is None and args.lr_warmup is None  # derived from the total batch, as GluonCV
    assert default_warmup(8) == 1000 and default_warmup(4) == 2000 and default_warmup(32) == 1000
    assert args.lr_warmup_factor == pytest.approx(1 / 3)
    assert (args.epochs, args.lr_decay_epoch, args.lr_decay) == (26, "17,23", 0.1)
    assert (args.momentum, args.wd) == (0.9, 1e-4)
    assert args.norm == "frozen" and not args.train_all
    assert args.clip_gradient <= 0  # no clipping
    assert (args.network, args.use_fpn) == ("resnet50_v1b", False)


def test_biases_have_no_weight_decay_and_everything_else_has():
    net = gm.get_model("mask_rcnn_fpn_resnet18_v1b_coco", pretrained_base=False)
    params = no_bias_decay(net.collect_train_params())
    biases = {name for name in params.keys() if name.endswith("bias")}
    assert biases and len(biases) < len(list(params.keys()))
    for name, param in params.items():
        assert param.wd_mult == (0.0 if name in biases else 1.0), name


def test_rpn_anchor_sampling_is_gluoncvs():
    gen = RPNTargetGenerator.from_preset(PRESETS["mask_rcnn_fpn_resnet50_v1b_coco"])
    assert (gen.num_sample, gen.pos_iou_thresh, gen.neg_iou_thresh, gen.pos_ratio) == (256, 0.7, 0.3, 0.5)
