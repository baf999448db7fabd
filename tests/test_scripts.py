"""Every user-facing script runs once, as a user runs it, on a tiny synthetic set: train (with
evaluation and the best-by-segm-AP checkpoint), resume from --start-epoch, fine-tune a
checkpoint on other classes, evaluate, demo, export and re-import, launch two dist_sync
workers, and count consistent runs."""
import json
import os
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_maskrcnn as gm
from gluon_maskrcnn.data.synthetic import write_synthetic_coco
from gluon_maskrcnn.engine import load_model
from gluon_maskrcnn.export import load_exported

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")
TINY = ["--dataset", "synthetic", "--tiny", "--gpus", "", "--num-workers", "0", "--quiet",
        "--short", "96", "--max-size", "128", "--lr-warmup", "2"]


def _run(script, *args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    done = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, (script, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """scripts/train_mask_rcnn.py for one epoch of 4 images, evaluated on 2."""
    folder = tmp_path_factory.mktemp("scripts")
    root, prefix = str(folder / "data"), str(folder / "runs" / "mask_rcnn")
    write_synthetic_coco(root, num_train=4, num_val=2, height=96, width=128, seed=6, max_objects=2)
    out = _run("train_mask_rcnn.py", *TINY, "--dataset-root", root, "--save-prefix", prefix, "--epochs", "1",
               "--val-interval", "1")
    return root, prefix, out


def _records(prefix, kind):
    return [r for r in map(json.loads, open(prefix + "_metrics.jsonl")) if r["kind"] == kind]


def test_train_writes_checkpoints_logs_and_the_best_by_segm_ap(trained):
    root, prefix, out = trained
    assert "final segm AP" in out
    for name in ("-last", "-best"):
        for ending in (".params", ".states", ".json"):
            assert os.path.exists(prefix + name + ending), name + ending
    evals = _records(prefix, "eval")
    assert [r["epoch"] for r in evals] == [1]
    best = json.load(open(prefix + "-best.json"))
    assert best["best_segm_ap"] == evals[0]["segm_AP"]
    assert os.path.exists(prefix + "_curves.png") and os.path.exists(prefix + "_predictions.png")


def test_start_epoch_runs_only_the_remaining_epochs(trained, tmp_path):
    root, _, _ = trained
    prefix = str(tmp_path / "late" / "mask_rcnn")
    _run("train_mask_rcnn.py", *TINY, "--dataset-root", root, "--save-prefix", prefix, "--epochs", "3",
         "--start-epoch", "2", "--val-interval", "0")
    assert [r["epoch"] for r in _records(prefix, "epoch")] == [2]
    assert json.load(open(prefix + "-last.json"))["iteration"] == 4  # one epoch of 4 images


def test_fine_tuning_a_checkpoint_on_other_classes(trained, tmp_path):
    """--pretrained PREFIX takes the checkpoint's network and resets its classes to the data's."""
    root, prefix, _ = trained
    other = str(tmp_path / "two_classes")
    write_synthetic_coco(other, num_train=4, num_val=2, height=96, width=128, seed=7, max_objects=2)
    for split in ("train", "val"):  # keep two of the four shapes
        path = os.path.join(other, "annotations", "instances_%s.json" % split)
        data = json.load(open(path))
        data["categories"] = [c for c in data["categories"] if c["name"] in ("circle", "ring")]
        json.dump(data, open(path, "w"))
    tuned = str(tmp_path / "tuned" / "mask_rcnn")
    _run("train_mask_rcnn.py", *TINY, "--dataset", "custom", "--dataset-root", other, "--train-split", "train",
         "--val-split", "val", "--save-prefix", tuned, "--pretrained", prefix + "-best", "--epochs", "1",
         "--val-interval", "0", "--lr", "1e-12")
    net = load_model(tuned + "-last")
    assert net.classes == ["circle", "ring"]
    assert net.class_predictor.weight.shape[0] == 3 and net.mask.mask.weight.shape[0] == 2
    # at a learning rate of 1e-12 the weights stay the checkpoint's, which training moved away
    # from the seeded initial weights a run without --pretrained would start from
    start, tuned_params = mx.nd.load(prefix + "-best.params"), mx.nd.load(tuned + "-last.params")
    convs = [k for k in start if k.endswith("conv0_weight") and k in tuned_params]
    assert len(convs) >= 3
    for key in convs:
        np.testing.assert_allclose(tuned_params[key].asnumpy(), start[key].asnumpy(), atol=1e-7, err_msg=key)


def test_eval_script_reproduces_the_training_evaluation(trained, tmp_path):
    root, prefix, _ = trained
    results = str(tmp_path / "results.json")
    out = _run("eval_mask_rcnn.py", "--model", prefix + "-best", "--dataset-root", root, "--split", "val",
               "--results", results, "--num-workers", "0")
    logged = _records(prefix, "eval")[0]["metrics"]
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in out.splitlines()
            if line.split()[:1] in (["bbox"], ["segm"])}
    for kind in ("bbox", "segm"):
        np.testing.assert_allclose(rows[kind][0], logged[kind]["AP"], atol=5e-4)  # printed to 3 decimals
    assert json.load(open(results)) == json.load(open(prefix + "_val_results.json"))


def test_demo_writes_a_picture_of_the_image(trained, tmp_path):
    root, prefix, _ = trained
    image = os.path.join(root, "val", "001000.jpg")
    out = _run("demo_mask_rcnn.py", "--model", prefix + "-best", "--images", image, "--out", str(tmp_path),
               "--threshold", "0.0")
    png = cv2.imread(str(tmp_path / "001000.png"))
    original = cv2.imread(image)
    assert "001000.jpg:" in out and png is not None and png.shape == original.shape
    assert not np.array_equal(png, original)  # detections are drawn on it (threshold 0 keeps them all)


def test_export_and_reimport_predict_the_same(trained, tmp_path):
    root, prefix, _ = trained
    exported = str(tmp_path / "exported" / "mask_rcnn")
    out = _run("export_mask_rcnn.py", "--model", prefix + "-best", "--out", exported)
    assert out.count("wrote") == 3
    image = cv2.cvtColor(cv2.imread(os.path.join(root, "val", "001001.jpg")), cv2.COLOR_BGR2RGB)
    ours = gm.predict(load_model(prefix + "-best"), [image], score_thresh=0.0)[0]
    theirs = gm.predict(load_exported(exported), [image], score_thresh=0.0)[0]
    assert len(ours["labels"]) > 0
    np.testing.assert_array_equal(theirs["labels"], ours["labels"])
    np.testing.assert_allclose(theirs["boxes"], ours["boxes"], atol=1e-3)
    np.testing.assert_array_equal(theirs["masks"], ours["masks"])


def test_export_to_onnx_then_predict_and_demo_with_the_file(trained, tmp_path):
    """A trained checkpoint (narrow widths: --tiny) through --format onnx: ONNX Runtime's top
    detections equal MXNet's (the issue's bar), and predict and the demo take the .onnx file."""
    pytest.importorskip("onnxruntime")
    from gluon_maskrcnn.benchmarks.parity import detections_numpy, match_detections
    from gluon_maskrcnn.data.transforms import ValTransform

    root, prefix, _ = trained
    exported = str(tmp_path / "exported" / "mask_rcnn")
    out = _run("export_mask_rcnn.py", "--model", prefix + "-best", "--out", exported, "--format", "onnx")
    assert out.strip() == "wrote %s.onnx" % exported
    net, model = load_model(prefix + "-best"), load_exported(exported + ".onnx")
    for name in ("001000.jpg", "001001.jpg"):
        image = cv2.cvtColor(cv2.imread(os.path.join(root, "val", name)), cv2.COLOR_BGR2RGB)
        x = ValTransform(net.short, net.max_size)(image)[0][None]
        result = match_detections(detections_numpy(net(mx.nd.array(x))), detections_numpy(model(x)),
                                  top=100, score_tol=1e-4, iou_min=0.999)
        assert result["count"] > 0 and result["fraction"] == 1.0 and result["mask_diff"] <= 1e-4, result
        ours = gm.predict(net, [image], score_thresh=0.0)[0]
        theirs = gm.predict(exported + ".onnx", [image], score_thresh=0.0)[0]
        np.testing.assert_array_equal(theirs["labels"], ours["labels"])
        np.testing.assert_allclose(theirs["boxes"], ours["boxes"], atol=1e-2)
    out = _run("demo_mask_rcnn.py", "--model", exported + ".onnx", "--images", os.path.join(root, "val", "001000.jpg"),
               "--out", str(tmp_path / "demo"), "--threshold", "0.0")
    assert "001000.jpg:" in out and os.path.exists(str(tmp_path / "demo" / "001000.png"))


def test_launch_runs_two_dist_sync_workers(trained, tmp_path):
    root, _, _ = trained
    worker = [sys.executable, "-m", "gluon_maskrcnn.engine.consistency", root, str(tmp_path / "dist" / "mask_rcnn")]
    out = _run("launch.py", "-n", "2", "-s", "1", "--", *worker)
    assert out.count("parameters identical on all 2 workers") >= 1


def test_check_dist_consistency_counts_identical_runs(tmp_path):
    out = _run("check_dist_consistency.py", "-n", "1", "--workdir", str(tmp_path))
    assert "1 of 1 runs ended with identical parameters on all 2 workers" in out


def test_quantize_script_writes_an_int8_model_that_eval_and_demo_take(trained, tmp_path):
    """The tiny checkpoint (one epoch on four 96x128 images), calibrated on its 4 training
    images, scored on its 2 val images. Its AP is small, and on two images one detection more or
    less moves AP by up to about 0.1, so the bound is 0.1: a broken int8 graph (wrong ranges,
    float outputs cast wrongly) is far outside it, at AP 0 with no detection reproduced."""
    root, prefix, _ = trained
    out = str(tmp_path / "int8" / "model")
    printed = _run("quantize_mask_rcnn.py", "--model", prefix + "-best", "--dataset-root", root, "--split", "train",
                   "--num-calib", "4", "--out", out, "--eval-split", "val")
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in printed.splitlines()
            if line.split()[:1] in (["fp32"], ["int8"]) and len(line.split()) == 4}
    assert abs(rows["int8"][0] - rows["fp32"][0]) <= 0.1 and abs(rows["int8"][1] - rows["fp32"][1]) <= 0.1, printed
    assert "calibrated on 4 images of train (naive)" in printed and "int8 reproduces" in printed
    assert json.load(open(out + "-meta.json"))["int8"] is True
    evaluated = _run("eval_mask_rcnn.py", "--model", out, "--dataset-root", root, "--split", "val",
                     "--results", str(tmp_path / "results.json"), "--num-workers", "0")
    segm = [line.split() for line in evaluated.splitlines() if line.startswith("segm")][0]
    assert float(segm[1]) == pytest.approx(rows["int8"][0], abs=5e-4)  # the same model, the same AP
    image = os.path.join(root, "val", "001000.jpg")
    drawn = _run("demo_mask_rcnn.py", "--model", out, "--images", image, "--out", str(tmp_path / "demo"))
    assert "001000.jpg:" in drawn and os.path.exists(str(tmp_path / "demo" / "001000.png"))
