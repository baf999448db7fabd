"""Every keyword of GluonCV's Mask R-CNN builders and constructors works in our get_model with the
same meaning, or is refused with a message that names it."""
import inspect

import mxnet as mx
import pytest
from mxnet.gluon.contrib.nn import SyncBatchNorm

import gluon_maskrcnn as gm
from gluon_maskrcnn.model_zoo import PRESETS, gluoncv_keywords

NAME = "mask_rcnn_fpn_resnet18_v1b_coco"
GET_MODEL_ARGS = set(inspect.signature(gm.get_model).parameters) - {"name", "overrides"}


def _gluoncv_keywords():
    """Keyword names of GluonCV's nine builders, get_mask_rcnn, and its MaskRCNN / FasterRCNN."""
    from gluoncv.model_zoo.rcnn.faster_rcnn.faster_rcnn import FasterRCNN
    from gluoncv.model_zoo.rcnn.mask_rcnn import mask_rcnn, predefined_models

    functions = [mask_rcnn.MaskRCNN.__init__, FasterRCNN.__init__, mask_rcnn.get_mask_rcnn,
                 mask_rcnn.custom_mask_rcnn_fpn] + [getattr(predefined_models, n) for n in predefined_models.__all__]
    names = set()
    for function in functions:
        names.update(p for p in inspect.signature(function).parameters if p not in ("self", "kwargs"))
    return sorted(names)


def test_every_gluoncv_keyword_has_a_meaning_here():
    keywords = _gluoncv_keywords()
    assert "rcnn_max_dets" in keywords and "minimal_opset" in keywords and len(keywords) > 50
    known = (set(PRESETS[NAME]) | GET_MODEL_ARGS | set(gluoncv_keywords.TRANSLATED)
             | set(gluoncv_keywords.IGNORED) | set(gluoncv_keywords.REFUSED))
    assert [k for k in keywords if k not in known] == []


def _another(value):
    """A value of the same kind as ``value`` that differs from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value * 2 + 1
    return tuple(_another(v) for v in value)


def _valued_keywords():
    """GluonCV keywords that are, or are renamed to, a preset entry holding a number or numbers
    (the backbone's name and the norm are tested by building)."""
    preset = PRESETS[NAME]
    for keyword in _gluoncv_keywords():
        ours = gluoncv_keywords.RENAMED.get(keyword, keyword)
        if ours in preset and keyword not in gluoncv_keywords.SPECIAL and not isinstance(preset[ours], (str, type(None))):
            yield keyword


@pytest.mark.parametrize("keyword", sorted(_valued_keywords()))
def test_a_gluoncv_keyword_sets_the_preset_entry_of_its_meaning(keyword):
    """Set to another value, a renamed or shared keyword changes exactly its own preset entry;
    an ignored one changes nothing."""
    from gluon_maskrcnn.model_zoo import model_config

    ours = gluoncv_keywords.RENAMED.get(keyword, keyword)
    default = model_config(NAME)
    changed = model_config(NAME, **{keyword: _another(default[ours])})
    follows = {"roi_size": {"mask_roi_size"}}.get(ours, set())  # GluonCV's mask: ROI x target_roi_scale
    assert {k for k in default if changed[k] != default[k]} == {ours} | follows
    assert changed[ours] == _another(default[ours])


@pytest.mark.parametrize("keyword", sorted(gluoncv_keywords.IGNORED))
def test_an_ignored_keyword_changes_nothing(keyword):
    assert gluoncv_keywords.translate(PRESETS[NAME], {keyword: "anything"}) == ({}, {})


@pytest.mark.parametrize("keyword", sorted(gluoncv_keywords.REFUSED))
def test_refused_keywords_name_themselves_and_the_way_out(keyword):
    with pytest.raises(TypeError, match=keyword) as err:
        gm.get_model(NAME, pretrained_base=False, **{keyword: None})
    assert "MaskRCNN" in str(err.value) or "train_mode" in str(err.value)


def test_translated_keywords_mean_what_they_mean_in_gluoncv():
    net = gm.get_model(NAME, pretrained_base=False, rcnn_max_dets=50, rpn_channel=256, clip=4.0,
                       base_size=8, scales=(2, 4, 8, 16, 32), ratios=(1,), alloc_size=(64, 64),
                       target_roi_scale=2, min_stage=2, max_stage=6, strides=(4, 8, 16, 32, 64),
                       minimal_opset=True, roi_mode="align", nms_thresh=0.4, num_sample=256)
    assert net.max_dets == 50
    assert net.rpn.rpn_head.conv1[0].weight.shape[0] == 256
    assert net.box_clip == 4.0
    assert net.sampler.num_sample == 256
    anchors = net.rpn.anchor_generator[0].anchors.data().asnumpy()  # (1, 1, H, W, A*4)
    assert anchors.shape[-1] == 4  # one ratio, one size per level
    first = anchors[0, 0, 0, 0]
    assert first[2] - first[0] == pytest.approx(16, abs=1)  # base 8 x scale 2
    out = net(mx.nd.random.normal(shape=(1, 3, 96, 128)))
    assert out.masks.shape[-1] == 14  # 7x7 ROIs x target_roi_scale 2
    assert gm.get_model(NAME, pretrained_base=False, post_nms=30).max_dets == 30


def test_refused_values_say_what_the_model_has():
    for bad, words in [(dict(roi_mode="pool"), "ROIAlign"), (dict(min_stage=4), "min_stage=2"),
                       (dict(strides=16), "strides"), (dict(target_roi_scale=4), "2 times"), (dict(norm_layer=mx.gluon.nn.GroupNorm), "GroupNorm")]:
        with pytest.raises(TypeError, match=words):
            gm.get_model(NAME, pretrained_base=False, **bad)


def test_syncbn_keywords_and_custom_builder():
    net = gm.get_model("mask_rcnn_fpn_syncbn_resnet18_v1b_coco", pretrained_base=False, num_devices=2)
    assert "syncbatchnorm" in net.box_features[1].name
    custom = gm.get_model("custom_mask_rcnn_fpn", classes=["a", "b"], pretrained_base=False,
                          base_network_name="resnet34_v1b", norm_layer=SyncBatchNorm,
                          norm_kwargs={"num_devices": 2}, sym_norm_layer=mx.sym.contrib.SyncBatchNorm,
                          num_fpn_filters=64, num_box_head_conv=2, num_box_head_dense_filters=128,
                          num_fcn_convs=1)
    out = custom(mx.nd.random.normal(shape=(1, 3, 96, 128)))
    assert custom.classes == ["a", "b"] and out.masks.shape[1] == custom.max_dets
    names = list(custom.collect_params().keys())
    assert any("P5_lat_bn" in n for n in names) and not any(n.endswith("P2_conv1_bias") for n in names)
    assert custom.box_features[-2].weight.shape[0] == 128
    with pytest.raises(TypeError, match="classes"):
        gm.get_model("custom_mask_rcnn_fpn", pretrained_base=False)


def test_gluoncvs_per_name_functions_pretrained_list_and_set_nms_have_its_signatures():
    """GluonCV's own API around get_model: each name's function, pretrained_model_list and
    set_nms(post_nms=...), with GluonCV's parameters, defaults and order."""
    import inspect

    import mxnet as mx
    import numpy as np
    from gluoncv import model_zoo as gluoncv_zoo
    from gluoncv.model_zoo.rcnn.faster_rcnn.faster_rcnn import FasterRCNN as GluonCVFasterRCNN
    from gluoncv.model_zoo.rcnn.mask_rcnn import predefined_models

    from gluon_maskrcnn import model_zoo
    from gluon_maskrcnn.modeling.faster_rcnn import FasterRCNN

    theirs = [n for n in dir(predefined_models) if n.startswith("mask_rcnn_")]
    assert len(theirs) >= 8
    for name in theirs:
        ours = inspect.signature(getattr(model_zoo, name)).parameters
        want = inspect.signature(getattr(predefined_models, name)).parameters
        assert [(p.name, p.kind) for p in ours.values()] == [(p.name, p.kind) for p in want.values()], name
        for key, param in want.items():  # GluonCV's defaults, but None for "the preset's value"
            assert ours[key].default in (param.default, None), (name, key)
        assert name in model_zoo.__all__
    c4 = model_zoo.mask_rcnn_resnet18_v1b_coco(pretrained_base=False)  # the preset: GluonCV's RPN counts
    assert (c4.rpn.test_post_nms, c4.max_dets) == (1000, 100)  # ... and our 100 detections
    assert model_zoo.mask_rcnn_resnet18_v1b_coco(pretrained_base=False, rcnn_max_dets=300).max_dets == 300
    published = [n for n in gluoncv_zoo.pretrained_model_list() if n.startswith("mask_rcnn")]
    assert model_zoo.pretrained_model_list() == published
    ours_nms = list(inspect.signature(FasterRCNN.set_nms).parameters.values())
    theirs_nms = list(inspect.signature(GluonCVFasterRCNN.set_nms).parameters.values())
    assert ours_nms[:len(theirs_nms)] == theirs_nms  # theirs first, same defaults; ours after

    net = model_zoo.mask_rcnn_fpn_resnet18_v1b_coco(pretrained_base=False, classes=["a", "b"],
                                                     rpn_test_post_nms=50, short=128, max_size=160)
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, 128, 160)))
    assert net(x).ids.shape[1] == 100
    net.set_nms(nms_thresh=0.5, nms_topk=-1, post_nms=7)
    assert net(x).ids.shape[1] == 7
    net.set_nms(0.5, -1, True, 12)  # positionally, as GluonCV's callers may
    assert net(x).ids.shape[1] == 12 and net.force_nms is True
