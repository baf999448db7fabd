"""The GPU checks no CPU test can make, for the day a GPU is at hand (``scripts/gpu_smoke.py``).

On ``gpu(0)`` (and ``gpu(1)`` when present), with FPN ResNet-50 built from a local ImageNet
backbone file:

1. every parameter lands on the GPU;
2. GPU detections equal CPU detections of the same weights (same classes, box IoU at least
   0.99, scores within 1e-3), on random weights whose BatchNorm statistics are calibrated on
   the image (so that logits are O(1), not saturated);
3. the hybridized RPN keeps as many proposals as the imperative one (MXNet's GPU ``box_nms``
   drops rows scoring below 0 on the hybridized path only);
4. one fp32 training step, hybridized, from the backbone file;
5. one AMP (float16) training step;
6. a step over 2 GPUs equals a step over 1 GPU on the same 2 images (frozen BatchNorm).

``devices="stand-in"`` runs the same checks on the CPU contexts ``cpu(1)``, ``cpu(2)`` (the AMP
step is skipped: float16 kernels need a GPU), which is how CI runs this module.
"""
import os
import tempfile

import mxnet as mx
import numpy as np

from ..boxes import box_iou
from ..data.synthetic import write_synthetic_coco
from ..model_zoo import get_model
from ..modeling.warmup import forward_once
from .onnx_equality import calibrate_batch_norms

__all__ = ["run_checks", "format_table", "smoke_devices", "compare_detections"]

NAME = "mask_rcnn_fpn_resnet50_v1b_coco"
STEP_FLAGS = dict(network="resnet50_v1b", use_fpn=True, dataset="synthetic", epochs=1, synthetic_train=2,
                  synthetic_val=1, short=128, max_size=160, rpn_train_pre_nms=500, rpn_train_post_nms=128,
                  num_sample=64, lr_warmup=0, lr=0.005, norm="frozen", val_interval=0, num_workers=0,
                  quiet=True, seed=3)


def smoke_devices(devices):
    """The devices the checks use: ``"gpu"`` -> the GPUs (at most two), ``"stand-in"`` ->
    ``cpu(1), cpu(2)``."""
    if devices == "stand-in":
        return [mx.cpu(1), mx.cpu(2)]
    count = mx.context.num_gpus()
    if count == 0:
        raise RuntimeError("no GPU: this MXNet has no CUDA support or sees no device")
    return [mx.gpu(i) for i in range(min(count, 2))]


def compare_detections(want, got, top=20, min_iou=0.99, score_tol=1e-3):
    """(passed, detail) for two ``(ids, scores, boxes)`` of one image: each of ``want``'s
    ``top`` best detections must have one in ``got`` of the same class with box IoU at least
    ``min_iou`` and a score within ``score_tol`` (matched by IoU, so near-equal scores may come
    in another order)."""
    ids_a, scores_a, boxes_a = (np.asarray(a, np.float32).reshape(-1, np.asarray(a).shape[-1]) for a in want)
    ids_b, scores_b, boxes_b = (np.asarray(a, np.float32).reshape(-1, np.asarray(a).shape[-1]) for a in got)
    rows = np.flatnonzero(ids_a[:, 0] >= 0)[:top]
    if len(rows) == 0:
        return False, "no detections: nothing compared"
    ious, gaps = [], []
    for i in rows:
        same = np.flatnonzero(ids_b[:, 0] == ids_a[i, 0])
        if len(same) == 0:
            ious.append(0.0)
            gaps.append(np.inf)
            continue
        overlap = box_iou(boxes_a[i:i + 1], boxes_b[same])[0]  # (1, 4) x (S, 4) -> (S,)
        best = same[int(np.argmax(overlap))]
        ious.append(float(overlap.max()))
        gaps.append(float(abs(scores_a[i, 0] - scores_b[best, 0])))
    passed = min(ious) >= min_iou and max(gaps) <= score_tol
    return passed, "%d detections: lowest IoU %.4f, largest score gap %.2g" % (len(rows), min(ious), max(gaps))


def _backbone_file(folder):
    from gluoncv.model_zoo import resnetv1b

    mx.random.seed(1)
    base = resnetv1b.resnet50_v1b(pretrained=False)
    base.initialize(mx.init.Xavier())
    base(mx.nd.zeros((1, 3, 32, 32)))
    path = os.path.join(folder, "resnet50_v1b.params")
    base.save_parameters(path)
    return path


def _image(seed=0, size=(256, 320)):
    return mx.nd.array(np.random.RandomState(seed).uniform(-2, 2, (1, 3) + size).astype(np.float32))


def check_build(device, backbone):
    net = get_model(NAME, pretrained_base=backbone, ctx=device)
    forward_once(net, (128, 128), device)
    elsewhere = [n for n, p in net.collect_params().items() if p.list_ctx() != [device]]
    return not elsewhere, "%d parameters, %d elsewhere" % (len(list(net.collect_params().keys())), len(elsewhere))


def check_detections(device, folder):
    image = _image()
    mx.random.seed(0)
    net = get_model(NAME, pretrained_base=False, max_dets=100)
    forward_once(net)
    calibrate_batch_norms(net, image)
    path = os.path.join(folder, "calibrated.params")
    net.save_parameters(path)
    want = [o.asnumpy() for o in net(image)[:3]]
    other = get_model(NAME, pretrained_base=False, max_dets=100, ctx=device)
    other.load_parameters(path, ctx=device)
    got = [o.asnumpy() for o in other(image.as_in_context(device))[:3]]
    return compare_detections(want, got)


def check_proposal_counts(device, backbone):
    net = get_model(NAME, pretrained_base=backbone, ctx=device)
    forward_once(net, (128, 128), device)
    calibrate_batch_norms(net, _image().as_in_context(device))
    image = _image(1).as_in_context(device)
    counts = {}
    for hybridized in (False, True):
        net.hybridize(active=hybridized)
        with net.portable_ops():
            _, rois = net.rpn(mx.nd.zeros_like(image), *net.backbone_features(image))
        counts[hybridized] = int((rois.asnumpy()[0, :, 0] >= 0).sum())
    return counts[True] == counts[False] > 0, "imperative %d, hybridized %d" % (counts[False], counts[True])


def _train(folder, name, backbone, contexts, **flags):
    """The final parameters of one short run on ``contexts`` (the trainer's device list)."""
    from ..engine import training_args
    from ..engine import trainer

    args = training_args(dataset_root=os.path.join(folder, "data"), save_prefix=os.path.join(folder, name, "run"),
                         gpus="", pretrained_base=backbone, **dict(STEP_FLAGS, **flags))
    saved = trainer.contexts
    trainer.contexts = lambda _args: list(contexts)
    try:
        state = trainer.fit(args)
    finally:
        trainer.contexts = saved
    return state, {k: v.asnumpy() for k, v in mx.nd.load(args.save_prefix + "-last.params").items()}


def check_training_step(devices, folder, backbone):
    state, _ = _train(folder, "fp32", backbone, devices[:1], batch_size=1, hybridize=True)
    return state["iteration"] == 2, "%d steps on %s" % (state["iteration"], devices[0])


def check_two_device_step(devices, folder, backbone):
    if len(devices) < 2:
        return None, "one device only"
    _, one = _train(folder, "one", backbone, devices[:1], batch_size=2)
    _, two = _train(folder, "two", backbone, devices[:2], batch_size=2)
    worst, key = max((np.abs(two[k] - one[k]).max() / max(np.abs(one[k]).max(), 1e-3), k) for k in one)
    return worst <= 1e-4, "largest difference %.2g of a tensor's scale (%s)" % (worst, key)


def check_amp_step(devices, folder, backbone):
    if devices[0].device_type != "gpu":
        return None, "float16 kernels need a GPU"
    from ..engine.amp import init_amp

    init_amp()  # patches MXNet for the rest of the process: the last check
    state, _ = _train(folder, "amp", backbone, devices[:1], batch_size=1, hybridize=True, amp=True)
    return state["iteration"] == 2, "%d steps, loss scale kept" % state["iteration"]


def run_checks(devices="gpu", folder=None, backbone=None):
    """[(check, passed (True/False/None for skipped), detail)] on :func:`smoke_devices`."""
    devices = smoke_devices(devices)
    with tempfile.TemporaryDirectory() as scratch:
        folder = folder or scratch
        write_synthetic_coco(os.path.join(folder, "data"), num_train=2, num_val=1, height=128, width=160,
                             seed=4, max_objects=2)
        backbone = backbone or _backbone_file(folder)
        checks = [
            ("build from the backbone file on %s" % devices[0], lambda: check_build(devices[0], backbone)),
            ("detections on %s equal CPU's" % devices[0], lambda: check_detections(devices[0], folder)),
            ("hybridized RPN keeps the imperative proposal count",
             lambda: check_proposal_counts(devices[0], backbone)),
            ("fp32 training step", lambda: check_training_step(devices, folder, backbone)),
            ("2-device step equals 1-device step", lambda: check_two_device_step(devices, folder, backbone)),
            ("AMP training step", lambda: check_amp_step(devices, folder, backbone)),
        ]
        results = []
        for name, check in checks:
            try:
                passed, detail = check()
            except Exception as err:  # a failing check is a row of the table, not the end
                passed, detail = False, "%s: %s" % (type(err).__name__, str(err).splitlines()[0][:200])
            results.append((name, passed, detail))
    return results


def format_table(results):
    """The results as a text table, one line per check."""
    width = max(len(name) for name, _, _ in results)
    mark = {True: "pass", False: "FAIL", None: "skip"}
    return "\n".join("%-*s  %s  %s" % (width, name, mark[passed], detail) for name, passed, detail in results)
