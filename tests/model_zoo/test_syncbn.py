"""GluonCV's SyncBN Mask R-CNN names: SyncBatchNorm over CPU contexts, strict loading of GluonCV's
files, and stage-by-stage equality with GluonCV's models."""
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import SyncBatchNorm

import gluon_maskrcnn as gm
from gluon_maskrcnn.benchmarks import parity
from gluon_maskrcnn.internals import structural_params
from gluon_maskrcnn.model_zoo import ModelFileError
from gluon_maskrcnn.modeling.norm import norm_layer

SYNCBN_NAMES = ["mask_rcnn_fpn_syncbn_resnet18_v1b_coco", "mask_rcnn_fpn_syncbn_mobilenet1_0_coco"]


def test_norm_layer_names_the_three_norms_and_refuses_others():
    assert norm_layer("frozen") == (None, {})
    assert norm_layer("bn") == (nn.BatchNorm, {})
    assert norm_layer("syncbn", num_devices=4) == (SyncBatchNorm, {"num_devices": 4})
    assert norm_layer("syncbn") == (SyncBatchNorm, {"num_devices": 1})  # GluonCV's default
    with pytest.raises(ValueError, match="unknown norm 'group'; choose one of frozen, bn, syncbn"):
        norm_layer("group")


def test_the_syncbn_norm_over_two_cpu_contexts_is_batchnorm_over_the_whole_batch():
    rng = np.random.RandomState(0)
    x = rng.normal(2, 3, size=(4, 3, 5, 5)).astype(np.float32)
    head = rng.normal(size=x.shape).astype(np.float32)  # a loss that weighs every output
    contexts = [mx.cpu(0), mx.cpu(1)]
    layer, keywords = norm_layer("syncbn", num_devices=2)  # what the models build
    sync = layer(in_channels=3, **keywords)
    sync.initialize(ctx=contexts)
    layer, keywords = norm_layer("bn")
    whole = layer(in_channels=3, **keywords)
    whole.initialize()

    parts = [nd.array(x[:2], ctx=contexts[0]), nd.array(x[2:], ctx=contexts[1])]
    for part in parts:
        part.attach_grad()
    with autograd.record():
        outs = [sync(part) for part in parts]
        losses = [(out * nd.array(h, ctx=out.context)).sum() for out, h in zip(outs, (head[:2], head[2:]))]
    autograd.backward(losses)
    x_all = nd.array(x)
    x_all.attach_grad()
    with autograd.record():
        out_all = whole(x_all)
        loss = (out_all * nd.array(head)).sum()
    loss.backward()

    np.testing.assert_allclose(np.concatenate([o.asnumpy() for o in outs]), out_all.asnumpy(), atol=1e-5)
    np.testing.assert_allclose(np.concatenate([p.grad.asnumpy() for p in parts]), x_all.grad.asnumpy(),
                               atol=1e-5)
    for ctx in contexts:  # every device holds the statistics of the whole batch
        np.testing.assert_allclose(sync.running_mean.data(ctx).asnumpy(), whole.running_mean.data().asnumpy(),
                                   rtol=1e-5)
        np.testing.assert_allclose(sync.running_var.data(ctx).asnumpy(), whole.running_var.data().asnumpy(),
                                   rtol=1e-5)
    for name in ("gamma", "beta"):  # the devices' gradients sum to the whole batch's
        summed = sum(getattr(sync, name).grad(ctx).asnumpy() for ctx in contexts)
        np.testing.assert_allclose(summed, getattr(whole, name).grad().asnumpy(), rtol=1e-4, atol=1e-4)


def test_gluoncvs_syncbn_model_is_nan_at_random_initialisation_because_of_its_fpn_statistics():
    import gluoncv

    net = gluoncv.model_zoo.get_model(SYNCBN_NAMES[0], pretrained_base=False)
    net.initialize()
    feats = net.features(nd.random.normal(shape=(1, 3, 64, 64)))
    assert np.isnan(feats[0].asnumpy()).all()
    variances = {k: p.data().asnumpy() for k, p in net.collect_params().items() if k.endswith("moving_var")}
    assert variances and all(k.startswith("P") for k in variances)  # the FPN's symbolic SyncBN
    assert all((v < 0).any() for v in variances.values())  # the default uniform initializer
    ours = gm.get_model(SYNCBN_NAMES[0], pretrained_base=False)
    assert np.isfinite(ours.features(nd.random.normal(shape=(1, 3, 64, 64)))[0].asnumpy()).all()


@pytest.fixture(scope="module", params=SYNCBN_NAMES)
def syncbn_pair(request, tmp_path_factory):
    reference, ours, path = parity.load_pair(request.param, max_dets=100, gluoncv_max_dets=100,
                                             folder=str(tmp_path_factory.mktemp("s")))
    return request.param, reference, ours, path


def test_gluoncvs_syncbn_files_load_strictly(syncbn_pair):
    _, _, ours, path = syncbn_pair
    # GluonCV's MobileNet prefix counts the MobileNets built before in the process; ours is fixed
    saved = {re.sub(r"mobilenet\d+_", "mobilenet0_", key) for key in mx.nd.load(path)}
    assert set(structural_params(ours)) == saved


def test_syncbn_models_compute_gluoncvs_stages(syncbn_pair):
    _, reference, ours, _ = syncbn_pair
    diffs = parity.stage_differences(reference, ours, parity.random_image(256, 320, seed=1))
    assert set(diffs) >= {"features", "rpn_scores", "roi_features", "cls_pred", "box_pred", "mask_logits"}
    for stage, diff in diffs.items():
        if stage != "proposals":  # equal up to the order of tied scores
            assert diff <= 1e-4, (stage, diff)


def test_syncbn_models_detect_as_gluoncv(syncbn_pair):
    name, reference, ours, _ = syncbn_pair
    x = parity.random_image(384, 512, seed=2)
    mine = parity.detections_numpy(ours(x))
    assert np.isfinite(mine[3]).all() and (mine[0] >= 0).sum() > 0
    if "mobilenet" in name:
        # random weights tie its proposals' scores, and which tied proposals NMS keeps is
        # arbitrary, so the detections differ: the stages above are compared on the same ROIs
        return
    result = parity.match_detections(parity.detections_numpy(reference(x)), mine)
    assert result["fraction"] >= 0.99 and result["mask_diff"] <= 1e-3, result


@pytest.mark.parametrize("name", SYNCBN_NAMES)
def test_unpublished_weights_say_so(name, tmp_path):
    with pytest.raises(ModelFileError, match="publishes no COCO"):
        gm.get_model(name, pretrained=True, root=str(tmp_path))
