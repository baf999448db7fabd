"""Several workers on loopback: dist_sync (1 server, 2 workers) through the project's launcher,
and Horovod with Gloo (2 processes) where Horovod is installed; and one global step computed
at four scales (1 device, 2 devices, 2 dist_sync workers, 2 Horovod workers)."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from train_helpers import make_args, make_argv
from gluon_maskrcnn.data.synthetic import write_synthetic_coco
from gluon_maskrcnn.engine.launcher import launch_local
from gluon_maskrcnn.engine.trainer import fit

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(HERE)))
_VENV_HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
HOROVODRUN = shutil.which("horovodrun") or (_VENV_HOROVODRUN if os.path.exists(_VENV_HOROVODRUN) else None)


def _worker(root, prefix, engine, *flags):
    return [sys.executable, os.path.join(HERE, "dist_worker.py"), root, prefix, engine, *flags]


def _run_dist_sync(root, prefix, log, *flags, env=None):
    with open(log, "w") as sink:
        code = launch_local(_worker(root, prefix, "dist_sync", *flags), num_workers=2, num_servers=1,
                            env=dict(env or {}, OMP_NUM_THREADS="1"), timeout=240, sink=sink)
    return code, open(log).read()


def _run_horovod(root, prefix, *flags):
    env = dict(os.environ, OMP_NUM_THREADS="1", HOROVOD_GLOO_IFACE="lo")
    result = subprocess.run([HOROVODRUN, "--gloo", "-np", "2", "-H", "127.0.0.1:2", "--network-interface", "lo"]
                            + _worker(root, prefix, "horovod", *flags),
                            env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def _assert_identical_and_rank0_writes(tmp_path, prefix, output):
    assert "rank 0" in output and "rank 1" in output, output[-3000:]
    a = mx.nd.load(prefix + "-final-w0.params")
    b = mx.nd.load(prefix + "-final-w1.params")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].asnumpy(), b[key].asnumpy(), err_msg=key)
    # only rank 0 writes checkpoints and logs (with dist_sync, worker index 0 need not be rank 0)
    writers = [i for i in "01" if os.path.exists("%s-w%s-last.params" % (prefix, i))]
    logs = [i for i in "01" if os.path.exists("%s-w%s_metrics.jsonl" % (prefix, i))]
    assert len(writers) == 1 and logs == writers, sorted(os.listdir(tmp_path))


def test_dist_sync_two_workers_end_identical(tiny_root, tmp_path):
    prefix = str(tmp_path / "dist")
    code, output = _run_dist_sync(tiny_root, prefix, tmp_path / "launch.log")
    assert code == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)


def _differing_keys(prefix):
    a, b = (mx.nd.load("%s-final-w%d.params" % (prefix, i)) for i in (0, 1))
    return [key for key in a if not np.array_equal(a[key].asnumpy(), b[key].asnumpy())]


def test_a_late_initial_pull_cannot_make_dist_sync_workers_part(tiny_root, tmp_path):
    """The race behind workers that ended with different last parameters: rank 0's pull of the
    last key's initial weights is held back 6 s in its engine (a test hook), so the first
    gradients' pushpull of that key reaches the server first. Left to gluon.Trainer's lazy
    initialisation, the late pull returns the summed gradients as rank 0's weights, and the
    trainer's comparison of the workers' parameters stops the run; with the weights pulled and
    waited for before the first gradient, the workers stay identical."""
    delayed = {"DELAY_LAST_PULL": "6"}
    prefix = str(tmp_path / "unfixed")
    code, output = _run_dist_sync(tiny_root, prefix, tmp_path / "unfixed.log",
                                  env=dict(delayed, WITHOUT_INITIAL_PULL="1"))
    # the trainer's own check stops the run, naming the last key, as seen in the flaky runs
    assert code != 0 and "WorkersDivergedError" in output, output[-3000:]
    named = re.findall(r"differ from rank 0's: rank 1 in (\S+)$", output, re.M)
    assert named and re.fullmatch(r".*maskhead\d*_conv\d+_bias", named[0]), output[-3000:]  # mask.mask.bias
    prefix = str(tmp_path / "fixed")
    code, output = _run_dist_sync(tiny_root, prefix, tmp_path / "fixed.log", env=delayed)
    assert code == 0, output[-3000:]
    assert _differing_keys(prefix) == []


@pytest.mark.parametrize("engine", ["dist_sync", "horovod"])
def test_workers_evaluate_a_shard_each_and_score_the_whole_split(tiny_root, tmp_path, engine):
    """Each worker predicts half of the val split; rank 0's results file and AP equal a
    single-process evaluation of the same checkpoint."""
    from gluon_maskrcnn.data.coco import COCOInstances
    from gluon_maskrcnn.engine.evaluation import coco_evaluate, predict_dataset
    from gluon_maskrcnn.engine.loading import load_model

    if engine == "horovod" and (HOROVODRUN is None or importlib.util.find_spec("horovod") is None):
        pytest.skip("Horovod is not installed")
    prefix = str(tmp_path / "eval")
    flags = ("--epochs", "1", "--lr", "0.01", "--norm", "frozen", "--val-interval", "1")
    if engine == "dist_sync":
        code, output = _run_dist_sync(tiny_root, prefix, tmp_path / "eval.log", *flags)
    else:
        code, output = _run_horovod(tiny_root, prefix, *flags)
    assert code == 0, output[-3000:]
    root_prefix = next(p for p in ("%s-w0" % prefix, "%s-w1" % prefix) if os.path.exists(p + "-last.json"))
    gathered = json.load(open(root_prefix + "_val_results.json"))
    logged = [r for r in map(json.loads, open(root_prefix + "_metrics.jsonl")) if r["kind"] == "eval"][-1]
    val = COCOInstances(tiny_root, "val", skip_empty=False)
    assert len(val) == 2 and {r["image_id"] for r in gathered} == {im["id"] for im in val.images}
    alone = predict_dataset(load_model(root_prefix + "-last"), val)
    assert json.loads(json.dumps(alone)) == gathered  # the same detections, in the same order
    assert logged["metrics"] == coco_evaluate(val.annotation_file, alone, [im["id"] for im in val.images])


# horovod.mxnet is never imported here: next to it, MXNet's extension-library loader crashes
@pytest.mark.skipif(HOROVODRUN is None or importlib.util.find_spec("horovod") is None,
                    reason="Horovod is not installed")
def test_horovod_two_workers_end_identical(tiny_root, tmp_path):
    prefix = str(tmp_path / "hvd")
    code, output = _run_horovod(tiny_root, prefix)
    assert code == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)


# Three global steps of two images each, with frozen BatchNorm and images of one size, and a
# clipping limit that the first step's gradient norm (250) stays under and the next two exceed
# (340, 456), so that plain and clipped updates are compared. Every pixel carries noise: on
# flat colours max-pooling windows hold exactly equal values, and the one-ulp difference
# between a weight gradient summed over a device's two images (inside oneDNN) and one summed
# over two devices (by the kvstore) moves max-pooling's gradient to another pixel of a window;
# the runs then part by about 1e-3 of a tensor's scale within three steps.
SCALE_FLAGS = ("--epochs", "1", "--norm", "frozen", "--lr", "0.005", "--lr-warmup", "0",
               "--clip-gradient", "300")
CLIP = 300.0
SCALES = {"1 device, 2 images": ("--batch-size", "2"),
          "2 devices, 1 image each": ("--batch-size", "2", "--cpu-contexts", "2")}


@pytest.fixture(scope="module")
def six_images(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("six"))
    write_synthetic_coco(root, num_train=6, num_val=1, height=96, width=128, seed=8, max_objects=2,
                         pixel_noise=12.0)
    return root


@pytest.fixture(scope="module")
def one_device_run(six_images, tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("one") / "run")
    state = fit(make_args(six_images, prefix, *SCALE_FLAGS, *SCALES["1 device, 2 images"]))
    assert state["iteration"] == 3
    grad_norms = [r["grad_norm"] for r in map(json.loads, open(prefix + "_metrics.jsonl"))
                  if r["kind"] == "interval"]
    assert len(grad_norms) == 3 and grad_norms[0] < CLIP < min(grad_norms[1:]), grad_norms
    return {k: v.asnumpy() for k, v in mx.nd.load(prefix + "-last.params").items()}


def _assert_same_parameters(got, want, scale):
    """Largest difference at most 1e-5 of each tensor's largest magnitude."""
    assert got.keys() == want.keys()
    worst, key = max((np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-12), k) for k in want)
    print("%s: largest difference %.3g of a tensor's scale (%s, largest magnitude %.3g)"
          % (scale, worst, key, np.abs(want[key]).max()))
    assert worst <= 1e-5, "%s differs from 1 device by %.3g of a tensor's scale" % (scale, worst)


def test_two_devices_step_like_one_device_with_the_whole_batch(six_images, one_device_run, tmp_path):
    prefix = str(tmp_path / "two" / "run")
    fit(make_args(six_images, prefix, *SCALE_FLAGS, *SCALES["2 devices, 1 image each"]))
    got = {k: v.asnumpy() for k, v in mx.nd.load(prefix + "-last.params").items()}
    _assert_same_parameters(got, one_device_run, "2 devices")


def _worker_parameters(prefix):
    """Both workers' final parameters, checked identical; returns worker 0's."""
    assert _differing_keys(prefix) == []
    return {k: v.asnumpy() for k, v in mx.nd.load("%s-final-w0.params" % prefix).items()}


HOROVOD_MISSING = HOROVODRUN is None or importlib.util.find_spec("horovod") is None


@pytest.fixture(scope="module")
def dist_sync_run(six_images, tmp_path_factory):
    """Two dist_sync workers, one image each, one thread each: worker 0's final parameters."""
    folder = tmp_path_factory.mktemp("dist")
    prefix = str(folder / "dist")
    code, output = _run_dist_sync(six_images, prefix, folder / "launch.log", *SCALE_FLAGS, "--batch-size", "1")
    assert code == 0, output[-3000:]
    assert output.count("iterations 3") == 2, output[-3000:]
    return _worker_parameters(prefix)


@pytest.fixture(scope="module")
def horovod_run(six_images, tmp_path_factory):
    """The same with two Horovod workers."""
    if HOROVOD_MISSING:
        pytest.skip("Horovod is not installed")
    prefix = str(tmp_path_factory.mktemp("hvd") / "hvd")
    code, output = _run_horovod(six_images, prefix, *SCALE_FLAGS, "--batch-size", "1")
    assert code == 0, output[-3000:]
    assert output.count("iterations 3") == 2, output[-3000:]
    return _worker_parameters(prefix)


def test_two_dist_sync_workers_step_like_one_device(dist_sync_run, one_device_run):
    _assert_same_parameters(dist_sync_run, one_device_run, "2 dist_sync workers")


def test_two_horovod_workers_step_like_one_device(horovod_run, one_device_run):
    _assert_same_parameters(horovod_run, one_device_run, "2 Horovod workers")


def test_one_image_per_worker_scales_agree_bit_for_bit_at_one_thread_count(dist_sync_run, horovod_run):
    """dist_sync and Horovod workers, one image each and one thread each, sum the same two
    per-image gradients in the same order: their parameters are the same bits."""
    assert dist_sync_run.keys() == horovod_run.keys()
    for key in dist_sync_run:
        np.testing.assert_array_equal(dist_sync_run[key], horovod_run[key], err_msg=key)


def test_syncbn_over_two_cpu_contexts_steps_like_one_device(tmp_path):
    """GluonCV's SyncBN model, one step of two images: over two CPU contexts (SyncBatchNorm
    normalising both devices' images together) the update is the one-context update. A fresh
    process, because MXNet reads the CPU scratch-buffer count that SyncBN needs once per process
    (see ``reserve_cpu_temp_space``)."""
    root = str(tmp_path / "two_images")
    write_synthetic_coco(root, num_train=2, num_val=2, height=96, width=128, seed=8, max_objects=2,
                         pixel_noise=12.0)
    flags = ("--epochs", "1", "--norm-layer", "syncbn", "--lr", "0.005", "--lr-warmup", "0", "--batch-size", "2")
    one = str(tmp_path / "one" / "run")
    fit(make_args(root, one, *flags))
    two = str(tmp_path / "two" / "run")
    # the two-context run also evaluates with the validation loss, a training-mode forward
    # that hung at SyncBN's barrier when it ran on one of the two devices; it changes nothing
    argv = ([sys.executable, os.path.join(ROOT, "scripts", "train_mask_rcnn.py")]
            + make_argv(root, two, *flags, "--cpu-contexts", "2", "--val-interval", "1", "--val-loss"))
    done = subprocess.run(argv, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = [r for r in map(json.loads, open(two + "_metrics.jsonl")) if r["kind"] == "eval"][-1]
    assert np.isfinite(evaluation["val_total"]) and np.isfinite(evaluation["segm_AP"])
    got, want = ({k: v.asnumpy() for k, v in mx.nd.load(p + "-last.params").items()} for p in (two, one))
    assert any("syncbatchnorm" in k and k.endswith("running_mean") for k in want)  # SyncBN statistics compared too
    # SyncBN's statistics carry float error of 1e-7; biases that start at zero move by 1e-12
    # in this step, so differences are taken against a tensor scale of at least 1e-3
    worst, key = max((np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-3), k) for k in want)
    assert worst <= 1e-4, "%s differs by %.3g of its scale" % (key, worst)


# Trainable BatchNorm: each worker's running statistics follow its own images. Before the
# epoch-end average, two workers stopped after epoch 1 with exit status 4 ("parameters differ
# ... running_mean").
TRAINABLE_BN = ("--epochs", "2", "--lr", "0.01", "--norm", "bn")


def test_dist_sync_workers_with_trainable_batchnorm_average_their_statistics(tiny_root, tmp_path):
    prefix = str(tmp_path / "bn")
    code, output = _run_dist_sync(tiny_root, prefix, tmp_path / "launch.log", *TRAINABLE_BN)
    assert code == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)
    assert output.count("running statistics averaged over all devices and workers") == 4  # 2 workers x 2 epochs
    assert "parameters identical on all 2 workers" in output


@pytest.mark.skipif(HOROVODRUN is None or importlib.util.find_spec("horovod") is None,
                    reason="Horovod is not installed")
def test_horovod_workers_with_trainable_batchnorm_average_their_statistics(tiny_root, tmp_path):
    prefix = str(tmp_path / "hvd_bn")
    code, output = _run_horovod(tiny_root, prefix, *TRAINABLE_BN)
    assert code == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)
    assert "running statistics averaged over all devices and workers" in output


def test_the_kv_store_defaults_to_device():
    """GluonCV's default, nccl, needs GPUs; ours is device, which runs on CPU contexts too."""
    from gluon_maskrcnn.engine.cli import apply_recipe, build_parser
    from gluon_maskrcnn.engine.distributed import Distributed

    args = apply_recipe(build_parser().parse_args(["--gpus", ""]))
    assert args.kv_store == "device"
    dist = Distributed(args.kv_store, args.horovod)
    assert dist.num_workers == 1 and dist.rank == 0


def test_extension_operators_are_off_in_a_process_with_horovod():
    """MXNet's library loader crashes next to horovod.mxnet, so the operators stay unloaded there
    (a stand-in module takes horovod.mxnet's place in a fresh process)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, types
        if sys.argv[1] == "horovod":
            sys.modules["horovod"] = types.ModuleType("horovod")
            sys.modules["horovod.mxnet"] = types.ModuleType("horovod.mxnet")
        import mxnet as mx
        from gluon_maskrcnn import ops
        print(ops.available(mx.cpu()))
    """)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = {kind: subprocess.run([sys.executable, "-c", code, kind], capture_output=True, text=True, timeout=300,
                                 env=dict(os.environ, PYTHONPATH=root)) for kind in ("horovod", "plain")}
    assert runs["horovod"].stdout.split() == ["False"], runs["horovod"].stderr[-2000:]
    assert "CPU operators off: horovod.mxnet is loaded" in runs["horovod"].stderr
    assert runs["plain"].stdout.split() == ["True"], runs["plain"].stderr[-2000:]
