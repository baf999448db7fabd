"""Whole-model behaviour on tiny synthetic inputs: outputs, losses, hybridization, export."""
import os
import re

import numpy as np
import pytest
from mxnet import autograd, gluon, nd

import gluon_maskrcnn as gm
from gluon_maskrcnn import ops
from helpers import TINY_CLASSES, tiny_batch, tiny_model
from gluon_maskrcnn.modeling.losses import LOSS_NAMES, MaskRCNNLoss


def _image(seed=0, size=(96, 128)):
    return nd.array(np.random.RandomState(seed).normal(size=(1, 3) + size).astype(np.float32))


@pytest.mark.parametrize("fpn", [True, False])
def test_inference_outputs(fpn):
    net, _ = tiny_model(fpn)
    ids, scores, bboxes, masks = net(_image())
    mask_size = 14
    assert ids.shape == (1, 20, 1) and scores.shape == (1, 20, 1) and bboxes.shape == (1, 20, 4)
    assert masks.shape == (1, 20, mask_size, mask_size)
    valid = ids.asnumpy().ravel() >= 0
    assert np.all(np.diff(scores.asnumpy().ravel()[valid]) <= 0), "detections are sorted"
    assert np.all((masks.asnumpy() >= 0) & (masks.asnumpy() <= 1))
    assert set(ids.asnumpy().ravel()) <= {-1, 0, 1, 2}


def test_batched_inference_equals_single_images():
    net, _ = tiny_model(True)
    a, b = _image(1), _image(2)
    both = net(nd.concat(a, b, dim=0))
    for i, single in enumerate((a, b)):
        one = net(single)
        for x, y in zip(both, one):
            np.testing.assert_allclose(x[i].asnumpy(), y[0].asnumpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fpn", [True, False])
def test_training_outputs_by_position_and_name(fpn):
    net, cfg = tiny_model(fpn, batch_size=2)
    x, boxes, labels, *_ = tiny_batch(cfg, [[(10, 10, 50, 60, 0)], [(20, 30, 90, 80, 2), (5, 5, 30, 30, 1)]])
    with autograd.train_mode():
        out = net(x, boxes, labels)
    assert out._fields == ("cls_pred", "box_pred", "mask_pred", "rois", "samples", "matches",
                           "raw_rpn_score", "raw_rpn_box", "anchors", "cls_targets", "box_targets",
                           "box_masks", "indices")
    assert out[0] is out.cls_pred
    num_pos = net.sampler.max_pos
    assert out.cls_pred.shape == (2, 32, 4)
    assert out.box_pred.shape == (2, num_pos, 3, 4)
    assert out.mask_pred.shape == (2, num_pos, 3, 14, 14)
    num_anchors = out.anchors.shape[1]
    assert out.raw_rpn_score.shape == (2, num_anchors, 1) and out.raw_rpn_box.shape == (2, num_anchors, 4)
    # the ground truth joins the proposals, so every image has positives
    assert (out.samples.asnumpy()[:, :num_pos] == 1).sum(axis=1).min() >= 1


@pytest.mark.parametrize("fpn", [True, False])
def test_losses_named_and_finite_with_and_without_ground_truth(fpn):
    net, cfg = tiny_model(fpn, batch_size=2)
    batch = tiny_batch(cfg, [[(10, 10, 50, 60, 0)], []])  # second image has no objects
    with autograd.record():
        losses = net.losses(*batch)
        total = sum(losses)
    assert losses._fields == LOSS_NAMES
    for name, value in losses._asdict().items():
        assert np.isfinite(value.asscalar()), name
    assert losses.mask.asscalar() > 0 and losses.rcnn_box.asscalar() >= 0
    total.backward()
    grad = net.class_predictor.weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_losses_with_no_ground_truth_at_all_are_finite():
    net, cfg = tiny_model(True)
    batch = tiny_batch(cfg, [[]])
    with autograd.record():
        losses = net.losses(*batch)
    values = {k: v.asscalar() for k, v in losses._asdict().items()}
    assert all(np.isfinite(v) for v in values.values())
    assert values["mask"] == 0 and values["rcnn_box"] == 0 and values["rpn_box"] == 0


def test_loss_block_hand_values():
    loss = MaskRCNNLoss()
    zeros = lambda *s: nd.zeros(s)
    out = loss(zeros(1, 2, 1), nd.array([[[0.5, 0, 0, 0], [0, 0, 0, 0]]]), nd.array([[1, -1]]),
               zeros(1, 2, 4), nd.array([[[1, 1, 1, 1], [0, 0, 0, 0]]]),
               zeros(1, 2, 3), nd.array([[1, 0]]), zeros(1, 1, 2, 4), zeros(1, 1, 2, 4), zeros(1, 1, 2, 4),
               zeros(1, 1, 2, 2, 2), nd.ones((1, 1, 2, 2)), nd.ones((1, 1)))
    np.testing.assert_allclose(out.rpn_cls.asscalar(), np.log(2), rtol=1e-6)  # one anchor, logit 0
    np.testing.assert_allclose(out.rpn_box.asscalar(), 0.5 - 0.5 / 9, rtol=1e-6)  # |0.5| > 1/9
    np.testing.assert_allclose(out.rcnn_cls.asscalar(), np.log(3), rtol=1e-5)  # uniform over 3
    np.testing.assert_allclose(out.mask.asscalar(), np.log(2), rtol=1e-6)


def test_mask_loss_scores_each_positives_own_class_channel(rng):
    logits = rng.randn(2, 3, 4, 5, 5).astype(np.float32)  # (B, P, C, M, M)
    targets = (rng.rand(2, 3, 5, 5) > 0.5).astype(np.float32)
    # first P=3 are the positives' slots: 2 positives in image 0, 3 in image 1
    cls_targets = np.array([[3, 0, 1, 0, 2, 0], [4, 1, 2, 1, 0, 0]], np.float32)
    weights = (cls_targets[:, :3] > 0).astype(np.float32)
    zeros = lambda *s: nd.zeros(s)
    out = MaskRCNNLoss()(zeros(2, 1, 1), zeros(2, 1, 4), zeros(2, 1), zeros(2, 1, 4), zeros(2, 1, 4),
                         zeros(2, 6, 5), nd.array(cls_targets), zeros(2, 3, 4, 4), zeros(2, 3, 4, 4),
                         zeros(2, 3, 4, 4), nd.array(logits), nd.array(targets), nd.array(weights))
    per_image = []  # each image's loss is normalised by its own pixels, then the images averaged
    for b in range(2):
        total, pixels = 0.0, 0
        for p in np.flatnonzero(weights[b]):
            x, t = logits[b, p, int(cls_targets[b, p]) - 1].astype(np.float64), targets[b, p]
            total += (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).sum()
            pixels += t.size
        per_image.append(total / pixels)
    np.testing.assert_allclose(out.mask.asscalar(), np.mean(per_image), rtol=1e-5)


@pytest.mark.parametrize("fpn", [True, False])
@pytest.mark.parametrize("mode", [{}, {"static_alloc": True}, {"static_alloc": True, "static_shape": True}])
def test_hybridized_equals_imperative(fpn, mode):
    net, _ = tiny_model(fpn)
    x = _image(3)
    expected = [o.asnumpy() for o in net(x)]
    net.hybridize(**mode)
    for _ in range(3):
        for got, want in zip(net(x), expected):
            np.testing.assert_array_equal(got.asnumpy(), want)


@pytest.mark.skipif(not ops.load(), reason="no C++ compiler: extension operators not built")
@pytest.mark.parametrize("fpn", [True, False])
def test_extension_ops_give_the_same_detections_as_mxnet_ops(fpn):
    net, _ = tiny_model(fpn, rpn_test_pre_nms=400, rpn_test_post_nms=100)
    x = _image(5)
    net.hybridize(static_alloc=True)
    fast = [o.asnumpy() for o in net(x)]
    assert net.roi_pool.fast and net.rpn.fast, "the CPU extension operators should be built here"
    net.fast_ops = False
    portable = [o.asnumpy() for o in net(x)]
    assert not net.roi_pool.fast
    for got, want in zip(fast, portable):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fpn", [True, False])
def test_export_and_symbolblock_roundtrip(fpn, tmp_path):
    net, _ = tiny_model(fpn)
    x = _image(4)
    expected = [o.asnumpy() for o in net(x)]
    net.hybridize(static_alloc=True, static_shape=True)
    net(x)
    prefix = str(tmp_path / "model")
    net.export(prefix)
    assert "gm_" not in open(prefix + "-symbol.json").read()  # MXNet's operators only
    imported = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0000.params")
    for got, want in zip(imported(x), expected):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-5)


def test_export_model_loads_back_and_predicts_at_any_size(tmp_path):
    from gluon_maskrcnn.export import export_model, load_exported

    net, _ = tiny_model(True, short=64, max_size=96)
    files = export_model(net, str(tmp_path / "deploy" / "m"), size=(64, 96))
    assert all(os.path.exists(f) for f in files)
    deployed = load_exported(str(tmp_path / "deploy" / "m"))
    assert deployed.classes == net.classes and (deployed.short, deployed.max_size) == (net.short, net.max_size)
    x = _image(5, (80, 112))  # not the traced size
    for got, want in zip(deployed(x), net(x)):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-5)
    image = (np.random.RandomState(0).rand(70, 90, 3) * 255).astype(np.uint8)
    ours, theirs = gm.predict(net, [image], score_thresh=0.0)[0], gm.predict(deployed, [image], score_thresh=0.0)[0]
    np.testing.assert_allclose(ours["boxes"], theirs["boxes"], atol=1e-3)
    np.testing.assert_array_equal(ours["labels"], theirs["labels"])


@pytest.mark.skipif(not ops.load(), reason="no C++ compiler: extension operators not built")
def test_a_non_portable_export_keeps_the_extension_ops_and_loads_them_in_a_fresh_process(tmp_path):
    import json
    import subprocess
    import sys

    from gluon_maskrcnn.export import export_model

    net, _ = tiny_model(True, short=64, max_size=96)
    prefix = str(tmp_path / "m")
    export_model(net, prefix, size=(64, 96), portable=False)
    graph = open(prefix + "-symbol.json").read()
    assert '"gm_multi_roi_align"' in graph and '"gm_proposal_nms"' in graph
    assert json.load(open(prefix + "-meta.json"))["extension_ops"] is True
    x = _image(5, (80, 112))
    np.save(str(tmp_path / "x.npy"), x.asnumpy())
    code = ("import sys, numpy as np, mxnet as mx, gluon_maskrcnn as gm\n"
            "from gluon_maskrcnn.errors import UserError\n"
            "try:\n    model = gm.load_exported(sys.argv[1])\n"
            "except UserError as err:\n    sys.exit(str(err))\n"
            "outputs = model(mx.nd.array(np.load(sys.argv[2])))\n"
            "np.savez(sys.argv[3], *[o.asnumpy() for o in outputs])\n")
    command = [sys.executable, "-c", code, prefix, str(tmp_path / "x.npy"), str(tmp_path / "out.npz")]
    fresh = subprocess.run(command, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    loaded = np.load(str(tmp_path / "out.npz"))
    for k, want in enumerate(net(x)):
        np.testing.assert_allclose(loaded["arr_%d" % k], want.asnumpy(), rtol=1e-5, atol=1e-5)
    off = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, GLUON_MASKRCNN_FAST_OPS="0"))
    assert off.returncode == 1
    assert ("%s uses gluon_maskrcnn's CPU operators (exported with portable=False), which cannot be loaded here "
            "(GLUON_MASKRCNN_FAST_OPS=0): export it with portable=True" % prefix) in off.stderr
    with pytest.raises(gm.errors.UserError, match="portable=False applies to format='mxnet'"):
        export_model(net, prefix, format="onnx", portable=False)
    from mxnet import gpu

    from gluon_maskrcnn.export import load_exported

    with pytest.raises(gm.errors.UserError, match=r"%s uses gluon_maskrcnn's CPU operators .*which do not run on "
                       r"gpu\(0\): export it with portable=True" % re.escape(prefix)):
        load_exported(prefix, ctx=gpu(0))  # refused before anything is placed on the device


def test_reset_class_keeps_carried_weights():
    net, _ = tiny_model(True)
    old_cls = net.class_predictor.weight.data().asnumpy()
    old_box = net.box_predictor.weight.data().asnumpy()
    old_mask = net.mask.mask.weight.data().asnumpy()
    net.reset_class(["triangle", "star", "circle"])
    assert net.classes == ["triangle", "star", "circle"]
    new_cls = net.class_predictor.weight.data().asnumpy()
    np.testing.assert_array_equal(new_cls[0], old_cls[0])  # background
    np.testing.assert_array_equal(new_cls[1], old_cls[1 + TINY_CLASSES.index("triangle")])
    np.testing.assert_array_equal(new_cls[3], old_cls[1 + TINY_CLASSES.index("circle")])
    np.testing.assert_array_equal(net.box_predictor.weight.data().asnumpy()[0:4], old_box[8:12])
    np.testing.assert_array_equal(net.mask.mask.weight.data().asnumpy()[2], old_mask[0])
    ids, *_ = net(_image())
    assert ids.shape == (1, 20, 1)
