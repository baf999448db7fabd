"""The contract between our graphs and MXNet's ``box_nms`` on GPUs.

MXNet 1.9.1's GPU ``box_nms``, on the path a traced graph takes (its second output unused),
keeps only rows scoring >= 0 after suppression (``CompactDataKernel`` in
``src/operator/contrib/bounding_box.cu``); the CPU kernel keeps every row scoring above
``valid_thresh``. The two agree exactly when no row scores in ``(valid_thresh, 0)``. No GPU
runs here, so the contract is checked on what every ``box_nms`` of the traced graphs is fed.
"""
import json

import mxnet as mx
import numpy as np
import pytest

from helpers import tiny_model
from gluon_maskrcnn.modeling.rpn import VALID_KEY, ranking_keys


def test_ranking_keys_never_reverse_the_logits_order_and_break_sigmoid_ties():
    rng = np.random.RandomState(0)
    logits = np.concatenate([rng.normal(0, 4, 3000), rng.uniform(20, 1000, 500),  # sigmoid: 1.0
                             [0.0, 1e-3, -1e-3, -60.0]]).astype(np.float32)
    logits[rng.choice(len(logits), 50, replace=False)] = -1e30  # invalid rows
    keys, shift = (a.asnumpy().reshape(-1) for a in ranking_keys(mx.nd, mx.nd.array(logits.reshape(1, -1, 1))))
    valid = logits > -1e29
    assert (keys[valid] >= 0).all() and (keys[~valid] == -1).all() and -1 < VALID_KEY < 0
    ascending = np.argsort(logits[valid], kind="stable")
    assert (np.diff(keys[valid][ascending]) >= 0).all()  # a rounded difference never reverses
    # where sigmoid saturates into one float32 value, the keys still tell the logits apart
    saturated = valid & (logits >= 20)
    sigmoid = (1 / (1 + np.exp(-logits[saturated].astype(np.float64)))).astype(np.float32)
    assert len(np.unique(sigmoid)) == 1 and len(np.unique(keys[saturated])) == saturated.sum()
    assert len(np.unique(keys[valid])) == len(np.unique(logits[valid]))  # no new ties here
    assert shift[0] == logits[valid].min()
    np.testing.assert_allclose(keys[valid] + shift[0], logits[valid], rtol=1e-6, atol=1e-4)


def test_nms_on_keys_keeps_the_rows_nms_on_logits_keeps():
    """The RPN's NMS, on rows of 2,000 random boxes: ranking by key keeps exactly the boxes that
    ranking by logit kept (on the CPU kernel, which accepts negative scores)."""
    rng = np.random.RandomState(1)
    xy = rng.uniform(0, 200, (2000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (2000, 2))], axis=1)
    logits = rng.normal(0, 3, (2000, 1))
    logits[::37] = -1e30
    rows = mx.nd.array(np.concatenate([logits, boxes], axis=1)[None].astype(np.float32))
    keys, _ = ranking_keys(mx.nd, rows[:, :, :1])
    nms = dict(overlap_thresh=0.7, topk=1500, coord_start=1, score_index=0, id_index=-1, force_suppress=True)
    by_logit = mx.nd.contrib.box_nms(rows, valid_thresh=-5e29, **nms).asnumpy()[0]
    by_key = mx.nd.contrib.box_nms(mx.nd.concat(keys, rows[:, :, 1:], dim=-1), valid_thresh=VALID_KEY,
                                   **nms).asnumpy()[0]
    np.testing.assert_array_equal(by_key[:, 1:], by_logit[:, 1:])
    assert (by_key[:, 0] >= 0).sum() == (by_logit[:, 1] >= 0).sum() > 500


def test_an_image_without_valid_proposals_has_only_invalid_keys():
    logits = mx.nd.array(np.full((2, 5, 1), -1e30, np.float32))
    logits[0, 2, 0] = -7.0
    keys, _ = ranking_keys(mx.nd, logits)
    keys = keys.asnumpy()[..., 0]
    np.testing.assert_array_equal(keys[1], -1)
    np.testing.assert_array_equal(keys[0], [-1, -1, 0, -1, -1])


def _box_nms_inputs(net, image, folder):
    """[(node attrs, its input's values)] for every box_nms of ``net``'s exported graph."""
    prefix = str(folder / "net")
    net.export(prefix)
    graph = json.load(open(prefix + "-symbol.json"))
    symbol = mx.sym.load(prefix + "-symbol.json")
    internals = symbol.get_internals()
    found = []
    for node in graph["nodes"]:
        if node["op"] != "_contrib_box_nms":
            continue
        source, index, _ = node["inputs"][0]
        name = graph["nodes"][source]["name"]
        outputs = [n for n in internals.list_outputs() if n.startswith(name + "_")]
        feed = internals[outputs[index]]
        block = mx.gluon.SymbolBlock(feed, mx.sym.var("data"))
        block.load_parameters(prefix + "-0000.params", ignore_extra=True, allow_missing=True)
        found.append((node["attrs"], block(image).asnumpy()))
    return found


@pytest.mark.parametrize("fpn", [True, False], ids=["FPN", "C4"])
def test_every_box_nms_in_the_graph_sees_no_score_the_gpu_kernel_would_drop(fpn, tmp_path):
    net, _ = tiny_model(fpn=fpn)
    net.hybridize()
    rng = np.random.RandomState(0)
    image = mx.nd.array(rng.normal(0, 1, (1, 3, 128, 160)).astype(np.float32))
    with net.portable_ops():  # MXNet's own box_nms, as exported and as on GPUs
        net(image)
        inputs = _box_nms_inputs(net, image, tmp_path)
    assert len(inputs) == 2  # the RPN's and the per-class detection NMS
    logits = np.concatenate([level[1].asnumpy().reshape(-1)
                             for level in net.rpn.head_levels(net.backbone_features(image))])
    assert (logits < 0).any() and (logits > 0).any()  # rows the GPU kernel would have dropped
    for attrs, rows in inputs:
        score = rows[..., int(attrs.get("score_index", 0))]
        thresh = float(attrs["valid_thresh"])
        between = (score > thresh) & (score < 0)
        assert not between.any(), "%d rows score in (%g, 0): the GPU kernel drops them" % (between.sum(), thresh)
        assert (score > thresh).any()  # the check saw valid rows


def test_the_rpn_keeps_proposals_whose_logits_are_all_negative():
    """Every anchor's logit below 0 (a confident background): the proposals are still kept, as
    the CPU kernel always kept them."""
    net, _ = tiny_model(fpn=True)
    head = net.rpn.rpn_head
    score_bias = head.collect_params()[head.prefix + "conv1_bias"]  # the objectness conv (GluonCV: conv1)
    score_bias.set_data(score_bias.data() - 1e4)  # every logit far below 0
    image = mx.nd.array(np.random.RandomState(1).normal(0, 1, (1, 3, 128, 160)).astype(np.float32))
    net.rpn.fast = False  # MXNet's box_nms
    with net.portable_ops():
        scores, rois = net.rpn(mx.nd.zeros_like(image), *net.backbone_features(image))
    kept = (rois.asnumpy()[0, :, 0] >= 0)
    assert kept.sum() > 10
    assert (scores.asnumpy()[0, kept, 0] >= 0).all()
