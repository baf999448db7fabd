"""INT8 inference: R18 zoo models quantize, export, load back and predict like their float32
network; the four bad inputs are one-line errors naming what is at fault."""
import json

import mxnet as mx
import numpy as np
import pytest

import gluon_maskrcnn as gm
from gluon_maskrcnn.benchmarks.onnx_equality import calibrated_network
from gluon_maskrcnn import ops
from gluon_maskrcnn.boxes import box_iou
from gluon_maskrcnn.data.coco import DataError
from gluon_maskrcnn.quantization import QuantizationError, is_quantized, quantize

SIZE = (192, 256)


def _images(count, seed=0):
    """Calibration images: uint8 RGB noise with a bright rectangle each."""
    rng = np.random.RandomState(seed)
    images = []
    for _ in range(count):
        image = rng.randint(0, 120, (SIZE[0], SIZE[1], 3)).astype(np.uint8)
        y, x = rng.randint(0, SIZE[0] // 2), rng.randint(0, SIZE[1] // 2)
        image[y:y + 60, x:x + 80] = rng.randint(150, 255, 3)
        images.append(image)
    return images


needs_ops = pytest.mark.skipif(not ops.load(), reason="no C++ compiler: extension operators not built")


@pytest.fixture(scope="module", params=["mask_rcnn_fpn_resnet18_v1b_coco", "mask_rcnn_resnet18_v1b_coco"])
def pair(request, tmp_path_factory):
    """(float32 network, its int8 copy, the int8 export's prefix) of an R18 zoo model with random
    weights and BatchNorm statistics calibrated on an image (as the ONNX comparison does)."""
    from gluon_maskrcnn.data.transforms import ValTransform

    x = mx.nd.array(ValTransform(*SIZE)(_images(1, seed=5)[0])[0][None])  # (1, 3, H, W)
    net = calibrated_network(request.param, x)
    net.short, net.max_size = SIZE  # predict and calibrate at this size
    qnet = quantize(net, _images(4), num_calib=4)
    prefix = str(tmp_path_factory.mktemp("int8") / "model")
    gm.export_model(qnet, prefix)
    return net, qnet, prefix


@needs_ops
def test_the_int8_graph_runs_convolutions_in_int8_and_keeps_the_float_operators(pair):
    _, qnet, prefix = pair
    assert is_quantized(qnet)
    nodes = json.load(open(prefix + "-symbol.json"))["nodes"]
    convs = [n for n in nodes if n["op"] == "_sg_mkldnn_conv"]
    quantized = [n for n in convs if n.get("attrs", {}).get("quantized") == "true"]
    assert len(quantized) >= 0.9 * len(convs) > 10  # every convolution of the backbone and heads
    ops = {n["op"] for n in nodes}
    # float32: gluon_maskrcnn's CPU operators for ROIAlign and the proposal NMS (portable=False)
    assert {"gm_multi_roi_align", "gm_proposal_nms", "_contrib_box_nms", "_contrib_box_decode"} <= ops
    meta = json.load(open(prefix + "-meta.json"))
    assert meta["int8"] is True and meta["extension_ops"] is True


@needs_ops
def test_a_portable_int8_graph_has_mxnet_operators_only_and_the_same_detections(pair):
    """The extension operators compute what MXNet's do (ROIAlign bit for bit, the same NMS
    rows), so calibration sees the same ranges and both int8 graphs detect the same."""
    net, qnet, _ = pair
    portable = quantize(net, _images(4), num_calib=4, portable=True)
    assert not portable.extension_ops and qnet.extension_ops
    outputs = mx.sym.Group(portable.graph(mx.sym.var("data")))
    ops = {n["op"] for n in json.loads(outputs.tojson())["nodes"]}
    assert "_contrib_ROIAlign" in ops and not any(op.startswith("gm_") for op in ops)
    x = mx.nd.array(np.stack([_images(1, seed=9)[0].transpose(2, 0, 1)]).astype(np.float32) / 255)  # (1, 3, H, W)
    for got, want in zip(portable(x), qnet(x)):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-5)


def test_the_int8_export_loads_and_predicts_like_the_float_network(pair):
    net, qnet, prefix = pair
    loaded = gm.load_exported(prefix)
    assert loaded.int8 and loaded.classes == list(net.classes)
    image = _images(1, seed=9)[0]
    float_result, int8_result = (gm.predict(m, [image], score_thresh=0.0)[0] for m in (net, loaded))
    assert int8_result["masks"].shape[1:] == image.shape[:2]
    # the best float32 detection is among the int8 model's first five, with its class and box
    best = float_result["boxes"][0]
    candidates = [k for k in range(5) if int8_result["labels"][k] == float_result["labels"][0]]
    ious = [box_iou(best[None], int8_result["boxes"][k][None])[0, 0] for k in candidates]
    assert ious and max(ious) >= 0.9, (float_result["labels"][:5], int8_result["labels"][:5])


def test_quantize_refuses_an_empty_calibration_set():
    net = gm.get_model("mask_rcnn_fpn_resnet18_v1b_coco", pretrained_base=False)
    with pytest.raises(QuantizationError, match="no calibration images"):
        quantize(net, [])


def test_quantize_refuses_a_network_already_quantized(pair):
    _, qnet, _ = pair
    with pytest.raises(QuantizationError, match="already quantized"):
        quantize(qnet, _images(1))


class _NetOn:
    """A stand-in network whose parameters live on ``ctx`` (no GPU needed to name one)."""

    short, max_size = SIZE

    def __init__(self, ctx):
        self.ctx = ctx

    def collect_params(self):
        param = mx.gluon.Parameter("w", shape=(1,))
        param.list_ctx = lambda: [self.ctx]
        return {"w": param}


def test_quantize_refuses_a_gpu_network_naming_the_device():
    with pytest.raises(QuantizationError, match=r"runs on the CPU \(oneDNN\); the network is on gpu\(0\)"):
        quantize(_NetOn(mx.gpu(0)), _images(1))


def test_an_unreadable_calibration_image_is_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg"):
        quantize(_NetOn(mx.cpu()), [str(bad)])


def test_an_int8_model_exports_as_symbol_files_only_and_loads_on_the_cpu_only(pair, tmp_path):
    from gluon_maskrcnn.errors import UserError

    _, qnet, prefix = pair
    with pytest.raises(UserError, match="an int8 network exports as MXNet symbol files only .*not 'onnx'"):
        gm.export_model(qnet, str(tmp_path / "model"), format="onnx")
    with pytest.raises(UserError, match=r"%s is an int8 model, which runs on the CPU \(oneDNN\) only, not on gpu\(0\)"
                       % prefix):
        gm.load_exported(prefix, ctx=mx.gpu(0))


def test_a_network_on_another_cpu_context_quantizes():
    """A network whose parameters live on cpu(1), not MXNet's default context."""
    net = gm.get_model("mask_rcnn_fpn_resnet18_v1b_coco", pretrained_base=False, ctx=mx.cpu(1))
    net.short, net.max_size = SIZE
    qnet = quantize(net, _images(1))
    ids, scores, bboxes, masks = qnet(mx.nd.zeros((1, 3) + SIZE))
    assert ids.shape == (1, 100, 1) and masks.shape[:2] == (1, 100)


def test_reproduced_counts_same_class_boxes_above_the_iou_bar():
    from gluon_maskrcnn.benchmarks.int8_agreement import reproduced

    ids = np.array([[0], [1], [2], [-1]], np.float32)
    scores = np.array([[0.9], [0.6], [0.3], [0.0]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 5, 5], [0, 0, 0, 0]], np.float32)
    reference = (ids, scores, boxes)
    # row 0 found (IoU 0.81 fails, 1.0 passes); row 1 only with another class; row 2 found
    candidate = (np.array([[0], [0], [2], [2]], np.float32), None,
                 np.array([[0, 0, 9, 9], [0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 5, 5]], np.float32))
    assert reproduced(reference, candidate) == (2, 3)  # the padding row (-1) is not counted
    assert reproduced(reference, candidate, min_score=0.5) == (1, 2)
    assert reproduced(reference, candidate, min_iou=1.01) == (0, 3)
    assert reproduced(reference, candidate, top=1) == (1, 1)
    assert reproduced(reference, candidate, min_score=0.95) == (0, 0)


@pytest.mark.parametrize("fpn", [True, False])
def test_spread_scores_gives_the_class_and_objectness_logits_the_asked_spread(fpn):
    from helpers import tiny_model

    from gluon_maskrcnn.benchmarks.int8_agreement import spread_scores

    net, _ = tiny_model(fpn)
    x = mx.nd.array(np.random.RandomState(0).normal(0, 1, (1, 3, 96, 128)))
    spread_scores(net, x, target_std=2.0)
    caught = {"cls": [], "rpn": []}

    def keep(key):
        return lambda block, inputs, output: caught[key].append(output.asnumpy().ravel())

    handles = [net.class_predictor.register_forward_hook(keep("cls")),  # FPN: one RPN head, 5 calls
               net.rpn.head.score.register_forward_hook(keep("rpn"))]
    net(x)
    for handle in handles:
        handle.detach()
    assert len(caught["rpn"]) == (5 if fpn else 1)
    spreads = [np.concatenate(caught[key]).std() for key in ("cls", "rpn")]
    np.testing.assert_allclose(spreads, [2.0, 2.0], rtol=1e-3)
