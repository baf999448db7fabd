"""ONNX export: whole models through ONNX Runtime equal MXNet (masks included), our operator
translations equal MXNet's operators, and errors that name the operator and the layer."""
import json

import mxnet as mx
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from gluon_maskrcnn.benchmarks import parity  # noqa: E402
from gluon_maskrcnn.errors import UserError  # noqa: E402
from gluon_maskrcnn.export import export_model, load_exported  # noqa: E402
from gluon_maskrcnn.onnx_export import OnnxExportError, OnnxModel, graph_to_onnx  # noqa: E402

NAMES = ["mask_rcnn_resnet18_v1b_coco", "mask_rcnn_fpn_resnet18_v1b_coco"]
# random weights: an input of this scale keeps the RPN's and the heads' logits O(1), so that no
# two proposals tie (the top-k among ties is arbitrary in any two implementations)
INPUT_SCALE = 0.3


def _session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def assert_same_detections(reference, exported):
    """The issue's bar: top 100 with the same class, score within 1e-4, box IoU >= 0.999, mask
    mean absolute difference <= 1e-4."""
    result = parity.match_detections(reference, exported, top=100, score_tol=1e-4, iou_min=0.999)
    assert result["count"] > 0
    assert result["fraction"] == 1.0, result
    assert result["mask_diff"] <= 1e-4, result
    return result


def random_network(name, seed=0):
    """A zoo network with random weights and valid BatchNorm statistics (means N(0, 0.1),
    variances U(0.5, 1.5), as the GluonCV comparisons use), 100 detections from 300 proposals."""
    import gluon_maskrcnn as gm
    from gluon_maskrcnn.modeling.warmup import forward_once

    mx.random.seed(seed)
    net = gm.get_model(name, pretrained_base=False, max_dets=100, rpn_test_pre_nms=1000, rpn_test_post_nms=300)
    forward_once(net)
    rng = np.random.RandomState(seed)
    for param_name, param in net.collect_params().items():
        if param_name.endswith(("running_var", "moving_var")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif param_name.endswith(("running_mean", "moving_mean")):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
    return net


@pytest.fixture(scope="module", params=NAMES)
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    net = random_network(request.param)
    paths = export_model(net, str(folder / "model"), size=(256, 320), format="onnx")
    return net, paths[0]


def test_onnx_runtime_returns_mxnets_detections_and_masks(exported):
    net, path = exported
    model = OnnxModel(path)
    assert model.classes == list(net.classes) and model.short == net.short
    for seed, (height, width) in enumerate([(256, 320), (224, 352)]):  # dynamic height and width
        x = parity.random_image(height, width, seed=seed) * INPUT_SCALE
        reference = parity.detections_numpy(net(x))
        outputs = model(x)
        assert [o.shape for o in outputs] == [o.shape for o in net(x)]
        print(assert_same_detections(reference, parity.detections_numpy(outputs)))


def test_onnx_batch_is_dynamic_each_image_its_own_detections(exported):
    """A batch of two different images through the exported file (exported with batch 1): each
    image's detections equal MXNet's on the same batch."""
    net, path = exported
    x = mx.nd.concat(*(parity.random_image(256, 320, seed=seed) * INPUT_SCALE for seed in (3, 4)), dim=0)
    reference, outputs = net(x), OnnxModel(path)(x)
    assert [o.shape[0] for o in outputs] == [2, 2, 2, 2]
    for i in range(2):
        assert_same_detections(parity.detections_numpy([o[i:i + 1] for o in reference]),
                               parity.detections_numpy([o[i:i + 1] for o in outputs]))
    assert not np.array_equal(outputs[1][0].asnumpy(), outputs[1][1].asnumpy())  # two images, two answers


def _box_rows(rng, batch, rows):
    corners = rng.uniform(0, 60, (batch, rows, 2))
    sizes = rng.uniform(4, 30, (batch, rows, 2))
    scores = rng.permutation(batch * rows).reshape(batch, rows, 1) / float(batch * rows)  # no ties
    ids = rng.randint(0, 3, (batch, rows, 1))
    return np.concatenate([ids, scores, corners, corners + sizes], axis=-1).astype(np.float32)


@pytest.mark.parametrize("settings", [
    dict(overlap_thresh=0.5, topk=20, valid_thresh=0.3, id_index=-1, force_suppress=True),  # topk < valid
    dict(overlap_thresh=0.3, topk=-1, valid_thresh=0.0, id_index=-1, force_suppress=True),
    dict(overlap_thresh=0.7, topk=200, valid_thresh=0.9, id_index=0, force_suppress=True),  # topk > rows
])
def test_box_nms_translation_equals_mxnets_operator(settings):
    rng = np.random.RandomState(1)
    rows = _box_rows(rng, 2, 80)
    rows[0, :5, 0] = -1  # background id: not valid when id_index is set
    data = mx.sym.var("data")
    sym = mx.sym.contrib.box_nms(data, coord_start=2, score_index=1, **settings)
    expected = sym.eval(data=mx.nd.array(rows))[0].asnumpy()
    got = _session(graph_to_onnx(sym, {}, input_shape=rows.shape)).run(None, {"data": rows})[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_batch_norm_translation_follows_fix_gamma():
    rng = np.random.RandomState(2)
    x = rng.normal(size=(1, 3, 5, 6)).astype(np.float32)
    params = dict(gamma=rng.uniform(0.5, 2, 3), beta=rng.normal(size=3), mean=rng.normal(size=3),
                  var=rng.uniform(0.5, 2, 3))
    params = {k: mx.nd.array(v.astype(np.float32)) for k, v in params.items()}
    inputs = [params[k] for k in ("gamma", "beta", "mean", "var")]
    for op, fix_gamma in (("BatchNorm", True), ("BatchNorm", False), ("SyncBatchNorm", True),
                          ("SyncBatchNorm", False)):
        extra = dict(key="bn", ndev=1) if op == "SyncBatchNorm" else {}
        sym_op = mx.sym.contrib.SyncBatchNorm if extra else mx.sym.BatchNorm
        nd_op = mx.nd.contrib.SyncBatchNorm if extra else mx.nd.BatchNorm
        sym = sym_op(mx.sym.var("data"), mx.sym.var("gamma"), mx.sym.var("beta"), mx.sym.var("mean"),
                     mx.sym.var("var"), fix_gamma=fix_gamma, eps=1e-5, **extra)
        expected = nd_op(mx.nd.array(x), *inputs, fix_gamma=fix_gamma, eps=1e-5, **extra).asnumpy()  # inference
        got = _session(graph_to_onnx(sym, params, input_shape=x.shape)).run(None, {"data": x})[0]
        assert np.abs(expected - x).max() > 0.1  # the normalisation does something
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg="%s %s" % (op, fix_gamma))


def test_not_equal_scalar_translation():
    x = np.array([[[[1.0, 2.0, 3.0, 2.0]]]], np.float32)
    sym = mx.sym.var("data") != 2.0
    got = _session(graph_to_onnx(sym, {}, input_shape=x.shape)).run(None, {"data": x})[0]
    np.testing.assert_array_equal(got, [[[[1.0, 0.0, 1.0, 0.0]]]])


def test_an_operator_without_translation_is_named_with_its_layer():
    sym = mx.sym.contrib.bipartite_matching(mx.sym.var("data"), threshold=0.5, name="matcher")[0]
    with pytest.raises(OnnxExportError, match=r"_contrib_bipartite_matching \(layer 'matcher'\)"):
        graph_to_onnx(sym, {}, input_shape=(1, 3, 4, 4))


def test_a_refused_translation_names_the_operator_and_the_layer():
    sym = mx.sym.reshape(mx.sym.var("data"), shape=(-4, 1, -1, -2), name="split_batch")
    with pytest.raises(OnnxExportError, match="operator Reshape of layer 'split_batch'.*-4"):
        graph_to_onnx(sym, {}, input_shape=(2, 3, 4, 4))


def test_unknown_format_and_files_without_our_metadata_are_named(tmp_path):
    import onnx
    from onnx import helper

    with pytest.raises(UserError, match="unknown export format 'tensorrt'"):
        export_model(None, str(tmp_path / "m"), format="tensorrt")
    graph = helper.make_graph([helper.make_node("Identity", ["data"], ["out"])], "g",
                              [helper.make_tensor_value_info("data", 1, [1])],
                              [helper.make_tensor_value_info("out", 1, [1])])
    path = str(tmp_path / "other.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(UserError, match="other.onnx has no classes, short, max_size in its metadata"):
        OnnxModel(path)
    with pytest.raises(UserError, match="no ONNX file"):
        OnnxModel(str(tmp_path / "missing.onnx"))
    with pytest.raises(UserError, match="no exported model at .*nothing \\(expected .*nothing-meta.json"):
        load_exported(str(tmp_path / "nothing"))


def test_the_file_says_opset_13_and_carries_the_classes(exported):
    import onnx

    net, path = exported
    assert isinstance(load_exported(path), OnnxModel)  # as gm.predict and the demo load it
    model = onnx.load(path)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == list(net.classes)
    assert [o.name for o in model.graph.output] == ["ids", "scores", "bboxes", "masks"]
    assert [i.name for i in model.graph.input] == ["data"]  # weights are constants, not inputs


def test_calibrated_batch_norms_normalise_their_own_input():
    from mxnet.gluon import nn

    from gluon_maskrcnn.benchmarks.onnx_equality import calibrate_batch_norms

    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(use_global_stats=True), nn.Conv2D(2, 1),
            nn.BatchNorm(use_global_stats=True))
    net.initialize()
    x = mx.nd.random.normal(3, 2, shape=(2, 3, 8, 8))
    calibrate_batch_norms(net, x)
    inner = net[1](net[0](x)).asnumpy()  # (B, C, H, W): per channel mean 0, var / (var + mean var)
    var = net[0](x).asnumpy().var(axis=(0, 2, 3))
    np.testing.assert_allclose(inner.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(inner.var(axis=(0, 2, 3)), var / (var + var.mean()), rtol=1e-3)
