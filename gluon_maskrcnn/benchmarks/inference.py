"""Inference benchmark against GluonCV: same weights, same input, same run, one subprocess per
measurement so that each peak RSS is its own. Used by ``scripts/benchmark_inference.py``.

Variants: ``gluoncv`` (hybridized, its presets' 1000 detections), ``gluoncv100`` (100, as
ours), ``ours`` (hybridized, static shapes), ``onnx`` (our graph exported to ONNX, run by
ONNX Runtime on the CPU with ``OMP_NUM_THREADS`` threads) and ``int8`` (ours quantized by
:func:`gluon_maskrcnn.quantization.quantize`, calibrated on two images of the input's size, then
exported; the timed process loads the export, so its peak memory is inference's only).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ..internals import set_gluoncv_max_dets
from .timing import median_seconds, peak_rss_gb

__all__ = ["run_inference_benchmark", "add_torchvision_arguments", "torch_python", "run_torchvision"]

# torchvision has an FPN R50 Mask R-CNN (with a 256-channel RPN head, so less work); no C4 one.
TORCHVISION_MODELS = ("mask_rcnn_fpn_resnet50_v1b_coco",)
_TORCHVISION_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchvision_worker.py")

# GluonCV FPN R50 with 100 masks does ~790 GFLOP at 800x1216; this CPU's fp32 GEMM peaks at
# ~185 GFLOP/s on 2 threads (figures from the project's issue, measured on this machine).
FLOOR_SECONDS = {("mask_rcnn_fpn_resnet50_v1b_coco", (800, 1216)): 790 / 185}


def _worker(kind, name, height, width, params, out, warmup, runs):
    """Time one model in this process; write time, peak RSS and detections to ``out`` (.npz)."""
    import mxnet as mx

    from gluon_maskrcnn.benchmarks import parity

    x = parity.random_image(height, width, seed=7)
    if kind == "reference":  # GluonCV imperative, once: the detections everything is checked against
        import gluoncv

        net = gluoncv.model_zoo.get_model(name, pretrained_base=False)
        net.load_parameters(params)
        warmup, runs = 0, 1
    elif kind == "ours":
        import gluon_maskrcnn as gm

        net = gm.get_model(name, pretrained=params, pretrained_base=False)
        net.hybridize(static_alloc=True, static_shape=True)
    elif kind == "export_onnx":  # the file the "onnx" measurement runs, written in its own process
        import gluon_maskrcnn as gm
        from gluon_maskrcnn.onnx_export import export_onnx

        export_onnx(gm.get_model(name, pretrained=params, pretrained_base=False), _onnx_path(params), (height, width))
        return
    elif kind == "export_int8":  # ours quantized, calibrated on two images of this size (speed, not
        import gluon_maskrcnn as gm  # accuracy), and exported, in its own process
        from gluon_maskrcnn.quantization import quantize

        fp32 = gm.get_model(name, pretrained=params, pretrained_base=False)
        fp32.short, fp32.max_size = min(height, width), max(height, width)  # calibrate at this size
        rng = np.random.RandomState(3)
        qnet = quantize(fp32, [rng.randint(0, 255, (height, width, 3)).astype(np.uint8) for _ in range(2)])
        gm.export_model(qnet, _int8_prefix(params, height, width))
        return
    elif kind == "int8":  # the int8 export loaded as a deployment loads it: this peak memory is inference's
        from gluon_maskrcnn.export import load_exported

        net = load_exported(_int8_prefix(params, height, width))
    elif kind == "onnx":  # ONNX Runtime on the CPU, as many threads as MXNet gets
        from gluon_maskrcnn.onnx_export import OnnxModel

        net = OnnxModel(_onnx_path(params), threads=int(os.environ.get("OMP_NUM_THREADS") or 0) or None)
    else:
        import gluoncv

        net = gluoncv.model_zoo.get_model(name, pretrained_base=False)
        net.load_parameters(params)
        if kind == "gluoncv100":  # its R50/R101 presets fix rcnn_max_dets=1000 in the builder
            set_gluoncv_max_dets(net, 100)
        net.hybridize(static_alloc=True)

    def run():
        outputs = net(x)
        mx.nd.waitall()
        return outputs

    seconds = median_seconds(run, warmup, runs)
    ids, scores, boxes, masks = (o[0].asnumpy() for o in run())
    np.savez(out, seconds=seconds, rss=peak_rss_gb(), ids=ids, scores=scores, boxes=boxes, masks=masks)


def _onnx_path(params):
    return params[:-len(".params")] + ".onnx"


def _int8_prefix(params, height, width):
    return params[:-len(".params")] + "-int8-%dx%d" % (height, width)


def _spawn(kind, name, size, params, folder, warmup, runs):
    out = os.path.join(folder, "%s-%s-%dx%d.npz" % (kind, name, size[0], size[1]))
    cmd = [sys.executable, "-m", "gluon_maskrcnn.benchmarks.inference", kind, name, str(size[0]), str(size[1]),
           params, out, str(warmup), str(runs)]
    subprocess.run(cmd, check=True)
    return dict(np.load(out)) if os.path.exists(out) else None


def add_torchvision_arguments(parser):
    """Add ``--torch-python PYTHON`` and ``--no-torchvision`` to a benchmark's parser."""
    parser.add_argument("--torch-python", default=None,
                        help="a Python with torch and torchvision (another venv, say), to time torchvision's "
                             "FPN R50 beside ours (default: $GLUON_MASKRCNN_TORCH_PYTHON, else this Python)")
    parser.add_argument("--no-torchvision", dest="torchvision", action="store_false")


def torch_python(args):
    """The Python that imports torchvision, as the flags of :func:`~gluon_maskrcnn.benchmarks.inference.add_torchvision_arguments` ask;
    None (with the reason printed) if there is none or ``--no-torchvision``."""
    if not args.torchvision:
        return None
    python = args.torch_python or os.environ.get("GLUON_MASKRCNN_TORCH_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["exit code %d" % probe.returncode])[-1]
        print("torchvision: not measured (%s: %s); pass --torch-python" % (python, reason))
        return None
    return python


def run_torchvision(python, mode, args, folder, tag):
    """Run ``torchvision_worker.py MODE OUT ARGS...`` in ``python``; its JSON result."""
    out = os.path.join(folder, "torchvision-%s-%s.json" % (mode, tag))
    subprocess.run([python, _TORCHVISION_WORKER, mode, out] + [str(a) for a in args], check=True)
    with open(out) as f:
        return json.load(f)


def run_inference_benchmark(names, sizes, warmup=2, runs=3, variants=("gluoncv", "gluoncv100", "ours"),
                            torch_python=None):
    """Print and return a table of times, ratios, peak RSS and top-100 agreement; torchvision's
    FPN R50 beside ours when ``torch_python`` (a Python with torchvision) is given."""
    from gluon_maskrcnn.benchmarks import parity

    from .report import int8_instruction_set

    folder = tempfile.mkdtemp(prefix="bench-")
    rows = []
    print("OMP_NUM_THREADS=%s, warm-up %d, median of %d; int8 instructions: %s"
          % (os.environ.get("OMP_NUM_THREADS"), warmup, runs, int8_instruction_set()))
    for name in names:
        params = os.path.join(folder, name + ".params")
        parity.gluoncv_model(name, seed=0).save_parameters(params)
        for size in sizes:
            reference = _spawn("reference", name, size, params, folder, warmup, runs)
            if "onnx" in variants:
                _spawn("export_onnx", name, size, params, folder, warmup, runs)
            if "int8" in variants:
                _spawn("export_int8", name, size, params, folder, warmup, runs)
            results = {kind: _spawn(kind, name, size, params, folder, warmup, runs) for kind in variants}
            ours = results["ours"]
            keys = ("ids", "scores", "boxes", "masks")
            for kind in variants:
                r = results[kind]
                # how many of imperative GluonCV's top 100 this variant reproduces
                match = parity.match_detections(tuple(reference[k] for k in keys), tuple(r[k] for k in keys))
                row = dict(model=name, size="%dx%d" % size, impl=kind, seconds=float(r["seconds"]),
                           peak_rss_gb=float(r["rss"]), speedup_of_ours=float(r["seconds"] / ours["seconds"]),
                           top100_vs_gluoncv_imperative=match["fraction"])
                floor = FLOOR_SECONDS.get((name, size))
                if kind == "ours" and floor:
                    row["vs_floor"] = float(ours["seconds"] / floor)
                rows.append(row)
                print(json.dumps(row), flush=True)
            if torch_python and name in TORCHVISION_MODELS:
                tv = run_torchvision(torch_python, "infer", [size[0], size[1], warmup, runs], folder,
                                     "%dx%d" % size)
                row = dict(model="torchvision maskrcnn_resnet50_fpn", size="%dx%d" % size, impl="torchvision",
                           seconds=tv["seconds"], peak_rss_gb=tv["rss"],
                           speedup_of_ours=tv["seconds"] / float(ours["seconds"]),
                           version="torch %s, torchvision %s" % (tv["torch"], tv["torchvision"]))
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    kind, name, h, w, params, out, warmup, runs = sys.argv[1:9]
    _worker(kind, name, int(h), int(w), params, out, int(warmup), int(runs))
