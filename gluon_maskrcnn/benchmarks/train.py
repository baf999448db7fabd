"""Training-step benchmark against GluonCV: one image, same weights, each in its own process.
Used by ``scripts/benchmark_train.py``.

The two processes stay alive side by side and take turns, one step each (the order flips every
round), so that both see the same state of a machine whose speed drifts by tens of percent
over minutes; the idle one waits on its pipe.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

__all__ = ["run_train_benchmark"]


def _sample(short, max_size, seed=0):
    """One synthetic 600x800-style sample as network inputs (NumPy)."""
    from ..data.coco import COCOInstances
    from ..data.synthetic import write_synthetic_coco
    from ..data.transforms import TrainTransform

    root = tempfile.mkdtemp(prefix="trainbench-")
    write_synthetic_coco(root, num_train=1, num_val=1, height=600, width=800, seed=seed, max_objects=6)
    image, instances = COCOInstances(root, "train")[0]
    return TrainTransform(short, max_size, flip_prob=0.0)(image, instances, np.random.RandomState(0))


def _ours_step(name, params, short, max_size):
    from ..data.batchify import TrainBatchify
    from ..data.rpn_targets import RPNTargetGenerator
    from ..engine.distributed import make_optimizer
    from ..model_zoo import PRESETS, get_model

    net = get_model(name, pretrained=params, pretrained_base=False, short=short, max_size=max_size)
    batch = TrainBatchify(RPNTargetGenerator.from_preset(PRESETS[name]), seed=0,
                          sampled_rpn=True)([_sample(short, max_size)])
    # the optimizer our trainer uses (on CPU, PerTensorSGD: the same update as MXNet's SGD)
    train_params = net.collect_train_params()
    trainer = gluon.Trainer(train_params, make_optimizer("sgd", {"learning_rate": 1e-4, "momentum": 0.9},
                                                         train_params))
    for p in set(net.collect_params().values()) - set(train_params.values()):
        p.grad_req = "null"
    net.hybridize(static_alloc=True)

    def step():
        with autograd.record():
            total = sum(net.losses(*batch))
        total.backward()
        trainer.step(1)
        nd.waitall()
        return total.asscalar()
    return step


def _gluoncv_step(name, params, short, max_size):
    """GluonCV's model, its target transform and its train script's losses."""
    import gluoncv
    from gluoncv.data.transforms.presets.rcnn import MaskRCNNDefaultTrainTransform

    net = gluoncv.model_zoo.get_model(name, pretrained_base=False)
    net.load_parameters(params)
    img, boxes, labels, masks = _sample(short, max_size)
    transform = MaskRCNNDefaultTrainTransform(short, max_size, net, ashape=net.ashape, multi_stage="fpn" in name)
    # targets from GluonCV's own generator on our already-resized image (no second resize: short fits)
    polys = [[np.array([[0, 0], [1, 0], [1, 1]], np.float32)] for _ in range(len(boxes))]
    raw = mx.nd.array((img.transpose(1, 2, 0) * 58 + 120).clip(0, 255), dtype="uint8")
    _, label, cls_t, box_t, box_m, _ = transform(raw, np.concatenate([boxes, labels[:, None]], 1), polys)
    data = nd.array(img[None])
    label = label.asnumpy() if isinstance(label, nd.NDArray) else np.asarray(label)
    gt_box, gt_label = nd.array(label[None, :, :4]), nd.array(label[None, :, 4:5])
    gt_masks = nd.array(masks[None].astype(np.float32))
    as_nd = lambda t: t if isinstance(t, nd.NDArray) else nd.array(t)  # noqa: E731
    cls_t = nd.concat(*[as_nd(t).reshape((-1,)) for t in cls_t], dim=0)[None]
    box_t = nd.concat(*[as_nd(t).reshape((-1, 4)) for t in box_t], dim=0)[None]
    box_m = nd.concat(*[as_nd(t).reshape((-1, 4)) for t in box_m], dim=0)[None]
    net.collect_params().setattr("grad_req", "null")
    net.collect_train_params().setattr("grad_req", "write")
    trainer = gluon.Trainer(net.collect_train_params(), "sgd", {"learning_rate": 1e-4, "momentum": 0.9})
    net.hybridize(static_alloc=True)
    rpn_cls = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)
    rpn_box = gluon.loss.HuberLoss(rho=1.0 / 9)
    rcnn_cls = gluon.loss.SoftmaxCrossEntropyLoss()
    rcnn_box = gluon.loss.HuberLoss()
    mask_loss = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)

    def step():
        with autograd.record():
            cls_pred, box_pred, mask_pred, roi, _, matches, rpn_score, rpn_box_pred, _, cls_targets, \
                box_targets, box_masks, indices = net(data, gt_box, gt_label)
            num_rpn = (cls_t >= 0).sum()
            l1 = rpn_cls(rpn_score.squeeze(axis=-1), cls_t, cls_t >= 0) * cls_t.size / num_rpn
            l2 = rpn_box(rpn_box_pred, box_t, box_m) * rpn_box_pred.size / num_rpn
            num_rcnn = (cls_targets >= 0).sum()
            l3 = rcnn_cls(cls_pred, cls_targets, cls_targets.expand_dims(-1) >= 0) * cls_targets.size / num_rcnn
            l4 = rcnn_box(box_pred, box_targets, box_masks) * box_pred.size / num_rcnn
            pos_roi = nd.take(roi[0], indices[0]).expand_dims(0)
            pos_match = nd.take(matches[0], indices[0]).expand_dims(0)
            pos_cls = nd.take(cls_targets[0], indices[0]).expand_dims(0)
            mask_t, mask_w = net.mask_target(pos_roi, gt_masks, pos_match, pos_cls)
            l5 = mask_loss(mask_pred, mask_t, mask_w) * mask_t.size / mask_w.sum()
            total = l1 + l2 + l3 + l4 + l5
        total.backward()
        trainer.step(1)
        nd.waitall()
        return total.asscalar()
    return step


PROTOCOL_TAG = "@@bench "  # marks protocol lines among whatever else a worker prints


def serve(step):
    """Worker loop on stdin/stdout: say ready; answer each ``step`` line with the seconds and
    the loss of one ``step()``, each ``profile`` line with the seconds per operator kind of
    three profiled steps (:func:`operator_seconds`), and anything else with the peak RSS, and
    return."""
    from .timing import peak_rss_gb

    _send(dict(ready=True))
    for line in sys.stdin:
        word = line.strip()
        if word == "profile":
            _send(_profiled(step))
            continue
        if word != "step":
            break
        start = time.perf_counter()
        loss = step()
        _send(dict(seconds=time.perf_counter() - start, loss=float(loss)))
    _send(dict(rss=peak_rss_gb()))


_LAYERS = ("Convolution", "Deconvolution", "FullyConnected")  # and their _backward_ twins


def operator_seconds(stats):
    """Seconds in the convolution, deconvolution and fully-connected layers (forward and
    backward) and in all other operators, from the ``operator`` table of MXNet's aggregate
    profiler text (``mx.profiler.dumps()``)."""
    layers = other = 0.0
    section, previous = None, ""
    for line in stats.splitlines():
        if line.startswith("===="):  # a table's title is the line above its rule
            section = previous.strip()
        previous = line
        fields = line.split()  # Name, Total Count, Time (ms), ...
        if section != "operator" or len(fields) < 3 or not fields[1].isdigit():
            continue
        seconds = float(fields[2]) / 1000
        if fields[0].replace("_backward_", "") in _LAYERS:
            layers += seconds
        else:
            other += seconds
    return dict(layer_seconds=layers, other_op_seconds=other)


def _profiled(step, steps=3):
    """Mean seconds per step in layers and in other operators over ``steps`` profiled steps,
    and the layers' share of the operator time."""
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), "gm-train-profile.json"))
    mx.profiler.set_state("run")
    for _ in range(steps):
        step()
    mx.profiler.set_state("stop")
    total = operator_seconds(mx.profiler.dumps(reset=True))
    result = {key: value / steps for key, value in total.items()}
    result["layer_share"] = total["layer_seconds"] / max(sum(total.values()), 1e-9)
    return result


def _send(message):
    sys.stdout.write(PROTOCOL_TAG + json.dumps(message) + "\n")
    sys.stdout.flush()


class StepServer:
    """One implementation's training step in its own process; ``step()`` runs one, returns seconds."""

    def __init__(self, kind, name, params, short, max_size):
        self.kind = kind
        self.loss = None
        self._what = "the %s benchmark worker for %s (parameters %s)" % (kind, name, params)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gluon_maskrcnn.benchmarks.train", kind, name, params, str(short),
             str(max_size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._reply()

    def _reply(self):
        for line in self._proc.stdout:
            if line.startswith(PROTOCOL_TAG):
                return json.loads(line[len(PROTOCOL_TAG):])
        raise RuntimeError("%s exited with code %s; its error is above" % (self._what, self._proc.wait()))

    def _request(self, word):
        self._proc.stdin.write(word + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def step(self):
        reply = self._request("step")
        self.loss = reply["loss"]
        return reply["seconds"]

    def profile(self):
        """Three more steps under MXNet's profiler: mean seconds per step in convolution,
        deconvolution and FC layers and in other operators, and the layers' share."""
        return self._request("profile")

    def close(self):
        """Stop the worker; its peak RSS in GB."""
        rss = self._request("done")["rss"]
        self._proc.wait()
        return rss


def interleaved_seconds(steps, warmup, runs):
    """Seconds per call of each of ``steps`` ({name: callable returning seconds}), in turns.

    Every round calls each once, in the given order on even rounds and reversed on odd ones;
    the first ``warmup`` rounds are not kept. Returns {name: [seconds of each kept round]}.
    """
    names = list(steps)
    times = {name: [] for name in names}
    for round_ in range(warmup + runs):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            seconds = steps[name]()
            if round_ >= warmup:
                times[name].append(seconds)
    return times


def _torchvision_row(python, short, max_size, folder, warmup, runs, ours_seconds):
    """torchvision's FPN R50 training step on the same image, boxes, labels and masks."""
    from .inference import run_torchvision

    img, boxes, labels, masks = _sample(short, max_size)
    sample = os.path.join(folder, "torchvision-sample.npz")
    # torchvision's labels count from 1 (0 is background); ours count from 0
    np.savez(sample, image=img, boxes=boxes, labels=labels.astype(np.int64) + 1, masks=masks)
    tv = run_torchvision(python, "train", [sample, warmup, runs], folder, "fpn")
    return dict(model="torchvision maskrcnn_resnet50_fpn (frozen BN, 3 trainable stages)", impl="torchvision",
                seconds_per_iter=tv["seconds"], peak_rss_gb=tv["rss"], speedup_of_ours=tv["seconds"] / ours_seconds,
                version="torch %s, torchvision %s" % (tv["torch"], tv["torchvision"]))


def run_train_benchmark(names, short=600, max_size=1000, warmup=2, runs=5, torch_python=None):
    """Print and return seconds per iteration (median of ``runs`` turns), peak RSS and ratios;
    torchvision's FPN R50 beside ours when ``torch_python`` (a Python with torchvision) is given."""
    from .inference import TORCHVISION_MODELS
    from . import parity
    from .timing import median

    folder = tempfile.mkdtemp(prefix="trainbench-")
    print("OMP_NUM_THREADS=%s, one image, warm-up %d, median of %d turns each, GluonCV and ours "
          "alternating" % (os.environ.get("OMP_NUM_THREADS"), warmup, runs))
    rows = []
    for name in names:
        params = os.path.join(folder, name + ".params")
        parity.gluoncv_model(name, seed=0).save_parameters(params)
        servers = {kind: StepServer(kind, name, params, short, max_size) for kind in ("gluoncv", "ours")}
        times = interleaved_seconds({kind: server.step for kind, server in servers.items()}, warmup, runs)
        ours = median(times["ours"])
        for kind, server in servers.items():
            row = dict(model=name, impl=kind, seconds_per_iter=median(times[kind]),
                       speedup_of_ours=median(times[kind]) / ours,
                       seconds_each_turn=[round(t, 3) for t in times[kind]], last_loss=server.loss)
            row.update(server.profile(), peak_rss_gb=server.close())
            rows.append(row)
            print(json.dumps(row), flush=True)
        print("%s: 1.8x GluonCV's median is %.2f s; ours spends %.2f s of its median in convolution, "
              "deconvolution and FC layers" % (name, median(times["gluoncv"]) / 1.8, rows[-1]["layer_share"] * ours),
              flush=True)
        if torch_python and name in TORCHVISION_MODELS:
            rows.append(_torchvision_row(torch_python, short, max_size, folder, warmup, runs, ours))
            print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    kind, name, params, short, max_size = sys.argv[1:6]
    serve((_ours_step if kind == "ours" else _gluoncv_step)(name, params, int(short), int(max_size)))
