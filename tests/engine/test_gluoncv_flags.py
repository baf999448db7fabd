"""GluonCV's training flags: each one parses, the ones with behaviour do what GluonCV's do, and user
errors read as one line with exit status 2."""
import os
import subprocess
import sys
import threading
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from gluon_maskrcnn.engine.amp import DynamicLossScaler
from gluon_maskrcnn.engine.cli import apply_recipe, build_parser
from gluon_maskrcnn.engine.trainer import network_spec
from gluon_maskrcnn.internals import structural_params
from gluon_maskrcnn.modeling.warmup import forward_once

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FLAGS_FILE = os.path.join(HERE, "gluoncv_0.10.5_train_flags.txt")


def _gluoncv_flags():
    """(section, flag, value or None) of every line of GluonCV's flag list."""
    rows = []
    for line in open(FLAGS_FILE):
        if line.strip() and not line.startswith("#"):
            section, flag, value = line.split()
            rows.append((section, flag, None if value == "-" else value.replace("''", "")))
    return rows


@pytest.mark.parametrize("section, flag, value", _gluoncv_flags(), ids=lambda v: str(v))
def test_every_gluoncv_flag_parses(section, flag, value):
    argv = [flag] if value is None else [flag, value]
    if section == "custom-model":
        argv = ["custom-model"] + argv
    build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown flag


def _args(*argv):
    return apply_recipe(build_parser().parse_args(list(argv)))


def test_gluoncv_flags_mean_what_they_mean_there():
    args = _args("--norm-layer", "bn", "--use-fpn", "--network", "resnet18_v1b", "-j", "3",
                 "--disable-hybridization", "--epochs", "", "--lr", "", "--wd", "", "--gpus", "")
    assert args.norm == "syncbn" and args.num_workers == 3 and args.hybridize is False
    assert args.epochs == 26 and args.lr is None and args.wd == 1e-4  # GluonCV's '' = default
    name, overrides = network_spec(args, per_device_batch=1, num_devices=2)
    assert name == "mask_rcnn_fpn_syncbn_resnet18_v1b_coco" and overrides["num_devices"] == 2
    args = _args("--rpn-smoothl1-rho", "0.05", "--rcnn-smoothl1-rho", "0.5", "--gpus", "")
    assert network_spec(args, 1, 1)[1]["rpn_beta"] == 0.05
    name, _ = network_spec(_args("--network", "mobilenet1.0", "--use-fpn", "--norm-layer", "syncbn",
                                 "--gpus", ""), 1, 1)
    assert name == "mask_rcnn_fpn_syncbn_mobilenet1_0_coco"


def test_custom_model_subcommand_builds_gluoncvs_custom_model():
    import gluon_maskrcnn as gm

    args = _args("--network", "resnet34_v1b", "--gpus", "", "--norm-layer", "bn", "custom-model",
                 "--num-fpn-filters", "64", "--num-box-head-conv", "2", "--num_box_head_dense_filters",
                 "128", "--image-short", "96", "--image-max-size", "128", "--rpn-channel", "64",
                 "--rcnn-num-samples", "64", "--num-mask-head-convs", "1", "--no-pretrained-base")
    name, overrides = network_spec(args, per_device_batch=1, num_devices=1)
    assert name == "custom_mask_rcnn_fpn" and overrides["fpn_norm"] == "syncbn"
    from gluon_maskrcnn.engine.loading import checkpoint_model

    saved_name, saved = checkpoint_model(vars(args))  # a checkpoint of this run rebuilds the same net
    assert saved_name == name
    assert (saved["fpn_norm"], saved["base_network_name"], saved["num_fcn_convs"]) == ("syncbn", "resnet34_v1b", 1)
    net = gm.get_model(name, classes=["a", "b"], pretrained_base=False, **overrides)
    out = net(nd.random.normal(shape=(1, 3, 96, 128)))
    assert net.short == 96 and net.sampler.num_sample == 64 and out.masks.shape[0] == 1
    assert any("P5_lat_bn" in k for k in net.collect_params().keys())  # the norm in the FPN too


def _run_script(script, *argv, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script)] + list(argv),
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, words", [
    (["--gpus", "0"], "--gpus 0: this MXNet has no GPU support"),
    (["--gpus", "", "--dataset", "coco", "--dataset-root", "nowhere"], "--dataset-root nowhere"),
    (["--gpus", "", "--network", "resnet7_v1b"], "--network resnet7_v1b"),
    (["--gpus", "", "--pretrained", "missing.params"], "missing.params"),
    (["--gpus", "", "--amp"], "--amp"),
])
def test_user_errors_are_one_line_with_exit_status_2(tmp_path, argv, words):
    if argv[:2] == ["--gpus", "0"] and mx.context.num_gpus() > 0:
        pytest.skip("this MXNet has GPUs")
    done = _run_script("train_mask_rcnn.py", "--dataset", "synthetic", "--tiny", "--dataset-root",
                       str(tmp_path / "data"), *argv, cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0], done.stderr[-2000:]


def test_eval_script_names_a_missing_model_in_one_line(tmp_path):
    done = _run_script("eval_mask_rcnn.py", "--model", "mask_rcnn_resnet7_coco", "--dataset-root",
                       str(tmp_path), cwd=str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown model 'mask_rcnn_resnet7_coco'" in done.stderr


def test_loss_scaler_skips_overflow_halves_then_grows_back():
    scaler = DynamicLossScaler(init_scale=1024.0, growth_interval=3)
    assert scaler.update(False) is False and scaler.scale == 512.0  # overflow: skip, halve
    assert [scaler.update(True) for _ in range(2)] == [True, True] and scaler.scale == 512.0
    assert scaler.update(True) is True and scaler.scale == 1024.0  # 3 clean steps: double
    state = scaler.state_dict()
    again = DynamicLossScaler()
    again.load_state_dict(state)
    assert again.scale == 1024.0 and again.clean_steps == 0


def _step(net, cfg, contexts, batch, threads=1, loss_scale=None):
    from gluon_maskrcnn.engine.distributed import Distributed
    from gluon_maskrcnn.engine.trainer import train_step

    dist = Distributed("device")
    trainer = dist.trainer(net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9})
    scaler = DynamicLossScaler(init_scale=loss_scale) if loss_scale else None
    run = SimpleNamespace(ctx=contexts, net=net, trainer=trainer, clip_norm=None, dist=dist,
                          total_parts=len(contexts), state=dict(epoch=0, iteration=0),
                          args=SimpleNamespace(executor_threads=threads), loss_scaler=scaler)
    threads_used = []
    losses = net.losses

    def recorded(*part):  # which thread computes each device's losses
        threads_used.append(threading.current_thread() is threading.main_thread())
        return losses(*part)

    net.losses = recorded
    values = train_step(run, batch)
    values["in_main_thread"] = threads_used
    return {k: p.data(contexts[-1]).asnumpy() for k, p in structural_params(net).items()}, values, scaler


def test_executor_threads_and_loss_scaling_give_the_same_update():
    from helpers import tiny_batch, tiny_model

    contexts = [mx.cpu(0), mx.cpu(1)]
    small = dict(rpn_train_pre_nms=100, rpn_train_post_nms=100, num_sample=100)
    results, placement = [], []
    for threads, scale in ((1, None), (2, None), (1, 256.0)):
        net, cfg = tiny_model(True, seed=3, batch_size=1, **small)
        net.collect_params().reset_ctx(contexts)
        batch = [nd.concat(t, t, dim=0) for t in tiny_batch(cfg, [[(10, 10, 50, 60, 0)]])]
        params, values, _ = _step(net, cfg, contexts, batch, threads, scale)
        results.append(params)
        placement.append(values["in_main_thread"])
    # with 2 threads the second device ran in a worker thread; otherwise both in the caller's
    assert placement == [[True, True], [True, False], [True, True]]
    for other in results[1:]:
        for key in results[0]:
            np.testing.assert_allclose(other[key], results[0][key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_an_overflowing_step_is_skipped_and_the_scale_halves():
    from helpers import tiny_batch, tiny_model

    net, cfg = tiny_model(True, seed=3)
    before = {k: p.data().asnumpy() for k, p in structural_params(net).items()}
    batch = tiny_batch(cfg, [[(10, 10, 50, 60, 0)]])
    after, values, scaler = _step(net, cfg, [mx.cpu()], batch, loss_scale=1e38)  # gradients overflow
    assert scaler.scale == 5e37 and values["loss_scale"] == 1e38
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_fine_tuning_from_gluoncvs_published_coco_file_layout(tiny_root, tmp_path, monkeypatch):
    """--pretrained True on a GluonCV-saved file in the model store's layout (a random one:
    the real file cannot be downloaded here): it loads strictly, its classes are reset to the
    dataset's, and the training forward runs (GluonCV's own pretrained models are built with
    minimal_opset, without the training targets; ours always have them)."""
    from gluon_maskrcnn import store
    from gluon_maskrcnn.benchmarks import parity
    from gluon_maskrcnn.engine.trainer import fit
    from train_helpers import make_args

    name = "mask_rcnn_fpn_resnet18_v1b_coco"
    reference = parity.gluoncv_model(name, seed=5)
    saved = str(tmp_path / "saved.params")
    reference.save_parameters(saved)
    sha1 = store.sha1_of(saved)
    os.makedirs(str(tmp_path / "models"))
    os.rename(saved, str(tmp_path / "models" / ("%s-%s.params" % (name, sha1[:8]))))
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    monkeypatch.setattr(store, "sha1_table", lambda: {name: sha1})
    state = fit(make_args(tiny_root, str(tmp_path / "run" / "m"), "--pretrained", "True", "--epochs", "1",
                          "--lr", "1e-12", "--lr-warmup", "0", "--rpn-channels", "1024",
                          "--fpn-channels", "256", "--mask-channels", "256", "--box-hidden", "1024"))  # GluonCV's
    net = state["net"]
    assert net.classes != reference.classes and len(net.classes) == 4
    theirs = structural_params(reference)
    for key, param in structural_params(net).items():
        if key.startswith(("features.", "rpn.", "mask.deconv")):  # the layers that carry over
            np.testing.assert_allclose(param.data().asnumpy(), theirs[key].data().asnumpy(), atol=1e-6,
                                       err_msg=key)
    log = open(str(tmp_path / "run" / "m_metrics.jsonl")).read()
    assert '"total"' in log and "NaN" not in log


def test_the_syncbn_model_trains():
    """A few training steps of mask_rcnn_fpn_syncbn_resnet18_v1b_coco, hybridized, on one
    context (two contexts: test_distributed.py)."""
    import gluon_maskrcnn as gm
    from helpers import TINY, TINY_CLASSES, tiny_batch
    from gluon_maskrcnn.model_zoo import PRESETS

    name = "mask_rcnn_fpn_syncbn_resnet18_v1b_coco"
    cfg = dict(TINY, per_device_batch_size=2, short=96, max_size=128)
    net = gm.get_model(name, pretrained_base=False, classes=TINY_CLASSES, **cfg)
    forward_once(net)
    net.hybridize()
    batch = [nd.concat(t, t, dim=0) for t in tiny_batch(dict(PRESETS[name], **cfg), [[(10, 10, 50, 60, 0)]])]
    stats = net.box_features[1].running_mean
    before = stats.data().asnumpy().copy()
    totals = [_step(net, cfg, [mx.cpu()], batch)[1]["total"] for _ in range(2)]
    assert all(np.isfinite(totals))
    assert not np.allclose(stats.data().asnumpy(), before)  # the box head's SyncBN statistics moved
