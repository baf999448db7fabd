"""The CPU extension operators against MXNet's own, and the sampled-anchor RPN against the dense one."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from gluon_maskrcnn import ops
from gluon_maskrcnn.data.batchify import sampled_targets
from gluon_maskrcnn.modeling.roi_align import MultiLevelROIAlign
from gluon_maskrcnn.modeling.rpn import RPN

# per test: the pure-Python tests here (sampled RPN, sampled targets, the fallback) always run
needs_ops = pytest.mark.skipif(not ops.load(), reason="no C++ compiler: extension operators not built")

STRIDES = (4, 8, 16, 32)


def _pyramid(rng, batch=2, channels=3, size=(40, 48)):
    return [nd.array(rng.randn(batch, channels, size[0] // s * 4, size[1] // s * 4)) for s in STRIDES]


def _rois(rng, count=60):
    """Batch indices in {-1, 0, 1}; boxes of every FPN level, outside the image, and degenerate."""
    xy = rng.uniform(-30, 180, (count, 2))
    wh = rng.uniform(0, 400, (count, 2)) ** rng.uniform(0.2, 1, (count, 1))
    rois = np.concatenate([rng.randint(-1, 2, (count, 1)), xy, xy + wh], 1)
    rois[0] = [0, 10, 10, 10, 10]  # a point
    rois[1] = [1, 50, 40, 20, 30]  # x2 < x1 and y2 < y1
    rois[2] = [0, 500, 500, 900, 700]  # entirely outside
    return nd.array(rois)


def _pool(fast, rois, feats, grad=None):
    pool = MultiLevelROIAlign((5, 5), STRIDES)
    pool.fast = fast
    for f in feats:
        f.attach_grad()
    with autograd.record():
        out = pool(rois, *feats)
    out.backward(grad)
    return out.asnumpy(), [f.grad.asnumpy().copy() for f in feats]


@needs_ops
@pytest.mark.parametrize("channels", [3, 37])  # 37: two threads' channel shares, one partial
def test_multi_roi_align_equals_contrib_forward_exactly_and_backward(rng, channels):
    feats, rois = _pyramid(rng, channels=channels), _rois(rng)
    grad = nd.array(rng.randn(len(rois), channels, 5, 5))
    out, grads = _pool(True, rois, feats, grad)
    ref_out, ref_grads = _pool(False, rois, feats, grad)
    skipped = rois.asnumpy()[:, 0] < 0
    assert skipped.any() and not skipped.all()
    np.testing.assert_array_equal(out[~skipped], ref_out[~skipped])
    assert not out[skipped].any()  # contrib leaves these rows unwritten; here they are zeros
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)
    assert any(np.abs(g).max() > 0 for g in grads)


@needs_ops
def test_multi_roi_align_single_level_and_one_roi(rng):
    feat = nd.array(rng.randn(1, 4, 10, 12))
    rois = nd.array([[0, 3.5, 2.0, 30.0, 25.5]])
    pool = MultiLevelROIAlign((3, 3), (4,))
    pool.fast = True
    ref = nd.contrib.ROIAlign(feat, rois, (3, 3), 0.25, sample_ratio=2)
    np.testing.assert_array_equal(pool(rois, feat).asnumpy(), ref.asnumpy())


def _box_nms_rows(rng, batch=2, count=3000):
    xy = rng.uniform(0, 400, (batch, count, 2))
    wh = rng.uniform(1, 120, (batch, count, 2))
    logits = rng.randn(batch, count, 1) * 3
    logits[:, :40] = logits[:, 40:80]  # exact score ties
    rows = np.concatenate([logits, xy, xy + wh], -1).astype(np.float32)
    rows[:, 100:120, 1:] = rows[:, 120:140, 1:]  # duplicate boxes
    rows[:, -200:] = [-1e30, -1, -1, -1, -1]  # invalid rows
    rows[:, 200:210, 3:] = rows[:, 200:210, 1:3]  # zero-area boxes
    return nd.array(rows)


@needs_ops
@pytest.mark.parametrize("topk,keep", [(2000, 500), (300, 300), (-1, 2000)])
def test_proposal_nms_equals_box_nms(rng, topk, keep):
    rows = _box_nms_rows(rng)
    ref = nd.contrib.box_nms(rows, overlap_thresh=0.7, topk=topk, valid_thresh=-5e29, coord_start=1,
                             score_index=0, id_index=-1, force_suppress=True)[:, :keep]
    out = nd.gm_proposal_nms(rows, overlap_thresh=0.7, topk=topk, valid_thresh=-5e29, keep=keep)
    np.testing.assert_array_equal(out.asnumpy(), ref.asnumpy())


@needs_ops
def test_proposal_nms_pads_with_minus_one_when_few_survive():
    rows = nd.array([[[0.9, 0, 0, 10, 10], [0.8, 1, 1, 10, 10], [0.7, 20, 20, 30, 30],
                      [-1e30, -1, -1, -1, -1]]])
    out = nd.gm_proposal_nms(rows, overlap_thresh=0.5, topk=-1, valid_thresh=-5e29, keep=4).asnumpy()
    np.testing.assert_array_equal(out[0], np.float32([[0.9, 0, 0, 10, 10], [0.7, 20, 20, 30, 30],
                                                      [-1] * 5, [-1] * 5]))
    empty = nd.gm_proposal_nms(nd.array([[[-1e30, -1, -1, -1, -1]]]), overlap_thresh=0.5, topk=-1,
                               valid_thresh=-5e29, keep=2).asnumpy()
    assert (empty == -1).all()


def _rpn(multi_level):
    if multi_level:
        rpn = RPN(16, (4, 8, 16), ((16,), (32,), (64,)), (0.5, 1, 2), (32, 32), clip=4.42)
        feats = [nd.random.normal(shape=(2, 6, 24 // s * 4, 20 // s * 4)) for s in (4, 8, 16)]
    else:
        rpn = RPN(16, (16,), ((32, 64),), (0.5, 1, 2), (32, 32), clip=4.42)
        feats = [nd.random.normal(shape=(2, 6, 7, 9))]
    rpn.initialize(mx.init.Normal(0.1))
    return rpn, feats


@pytest.mark.parametrize("multi_level", [True, False])
def test_sampled_rpn_equals_dense_outputs_and_gradients(rng, multi_level):
    mx.random.seed(0)
    rpn, feats = _rpn(multi_level)
    img = nd.zeros((2, 3, 96, 80))
    with autograd.train_mode():
        num_anchors = rpn(img, *feats)[2].shape[1]
    ids = np.stack([rng.choice(num_anchors, 30, replace=False) for _ in range(2)]).astype(np.float32)
    ids[1, -4:] = -1  # padding
    weights = nd.array((ids >= 0) * rng.uniform(0.5, 2, ids.shape))
    results = []
    for sampled in (False, True):
        for f in feats:
            f.attach_grad()
        with autograd.record():
            if sampled:
                out = rpn.sampled_forward(nd, img, feats, nd.array(ids), mx.cpu())
                score, delta = out[2], out[3]
            else:
                out = rpn(img, *feats)
                pick = nd.array(np.maximum(ids, 0))
                score = nd.stack(*[nd.take(out[2][b], pick[b]) for b in range(2)])
                delta = nd.stack(*[nd.take(out[3][b], pick[b]) for b in range(2)])
            loss = (nd.sum(score.squeeze(-1) * weights) + nd.sum(delta.sum(-1) * weights ** 2))
        loss.backward()
        grads = [p.grad().asnumpy().copy() for p in rpn.collect_params().values() if p.grad_req != "null"]
        results.append((out[0].asnumpy(), out[1].asnumpy(), score.asnumpy(), delta.asnumpy(),
                        grads + [f.grad.asnumpy().copy() for f in feats]))
    dense, sampled = results
    np.testing.assert_array_equal(sampled[0], dense[0])  # proposals
    np.testing.assert_array_equal(sampled[1], dense[1])
    valid = ids >= 0
    np.testing.assert_allclose(sampled[2][valid], dense[2][valid], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sampled[3][valid], dense[3][valid], rtol=1e-5, atol=1e-6)
    for g, ref in zip(sampled[4], dense[4]):
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-5)


def test_sampled_targets_keep_sampled_anchors_and_pad():
    cls = np.array([-1, 1, -1, 0, 0, -1], np.float32)
    box = np.arange(24, dtype=np.float32).reshape(6, 4)
    mask = (cls[:, None] == 1) * np.ones((6, 4), np.float32)
    out_cls, out_box, out_mask, ids = sampled_targets(cls, box, mask, count=5)
    np.testing.assert_array_equal(ids, [1, 3, 4, -1, -1])
    np.testing.assert_array_equal(out_cls, [1, 0, 0, -1, -1])
    np.testing.assert_array_equal(out_box[:3], box[[1, 3, 4]])
    assert not out_box[3:].any() and not out_mask[3:].any()
    np.testing.assert_array_equal(out_mask[0], [1, 1, 1, 1])


def test_ops_can_be_switched_off_and_a_missing_compiler_falls_back(tmp_path):
    code = ("import logging, mxnet as mx; logging.basicConfig();"
            "from gluon_maskrcnn import ops; print('loaded', ops.available(mx.cpu()))")
    env = dict(os.environ, GLUON_MASKRCNN_FAST_OPS="0")
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "loaded False" in off.stdout, off.stderr
    env = {k: v for k, v in os.environ.items() if k != "GLUON_MASKRCNN_FAST_OPS"}
    env.update(CXX=str(tmp_path / "no-such-compiler"), GLUON_MASKRCNN_OPS_CACHE=str(tmp_path))
    missing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "loaded False" in missing.stdout, missing.stderr
    assert "contrib ROIAlign and box_nms instead" in missing.stderr
    assert not list(tmp_path.glob("*.so"))  # nothing half-written left behind
