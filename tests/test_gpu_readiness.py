"""What the GPU path needs that no stand-in device runs: start-up settings, a user's own
backbone file, and the inference scripts' --gpus."""
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluon_maskrcnn as gm
from gluon_maskrcnn.engine.trainer import GPU_SETTINGS, apply_gpu_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_settings_are_gluoncvs_and_the_users_own_values_win():
    environ = {"MXNET_GPU_MEM_POOL_TYPE": "Naive"}
    applied = apply_gpu_settings(environ)
    assert environ == {"MXNET_CUDNN_AUTOTUNE_DEFAULT": "0", "MXNET_GPU_MEM_POOL_TYPE": "Naive",
                       "MXNET_GPU_MEM_POOL_ROUND_LINEAR_CUTOFF": "28"}
    assert set(applied) == set(GPU_SETTINGS) - {"MXNET_GPU_MEM_POOL_TYPE"}


def test_fit_applies_the_gpu_settings(tiny_root_for_scripts, tmp_path, monkeypatch):
    from gluon_maskrcnn.engine.trainer import fit

    sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
    from train_helpers import make_args

    for key in GPU_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    fit(make_args(tiny_root_for_scripts, str(tmp_path / "run"), "--epochs", "1", "--synthetic-train", "4"))
    assert {key: os.environ[key] for key in GPU_SETTINGS} == GPU_SETTINGS


@pytest.fixture(scope="module")
def tiny_root_for_scripts(tmp_path_factory):
    from gluon_maskrcnn.data.synthetic import write_synthetic_coco

    root = str(tmp_path_factory.mktemp("tiny"))
    write_synthetic_coco(root, num_train=2, num_val=1, height=96, width=128, seed=5, max_objects=2)
    return root


def test_get_model_loads_a_users_backbone_file_onto_the_asked_device(tmp_path):
    from gluoncv.model_zoo import resnetv1b

    base = resnetv1b.resnet18_v1b(pretrained=False)
    base.initialize(mx.init.Normal(0.5))
    base(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / "my_resnet18.params")
    base.save_parameters(path)
    net = gm.get_model("mask_rcnn_resnet18_v1b_coco", pretrained_base=path, classes=["a"], ctx=mx.cpu(2))
    stem = net.collect_params()["resnetv1b_conv0_weight"]  # C4 keeps GluonCV's global names
    assert stem.list_ctx() == [mx.cpu(2)]
    np.testing.assert_array_equal(stem.data(mx.cpu(2)).asnumpy(), base.conv1.weight.data().asnumpy())


@pytest.mark.skipif(mx.context.num_gpus() > 0, reason="checks the CPU wheel's answer")
@pytest.mark.parametrize("script", ["eval_mask_rcnn.py", "demo_mask_rcnn.py", "export_mask_rcnn.py"])
def test_inference_scripts_take_gpus_and_name_the_flag_without_one(script, tmp_path):
    argv = {"eval_mask_rcnn.py": ["--dataset-root", str(tmp_path)], "demo_mask_rcnn.py": ["--images", "x.png"],
            "export_mask_rcnn.py": ["--out", str(tmp_path / "x")]}[script]
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--model",
                           "mask_rcnn_resnet18_v1b_coco", "--gpus", "0"] + argv,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: --gpus 0: this MXNet has no GPU support")
    assert "pass --gpus '' to run on CPU" in done.stderr


def test_pretrained_base_flag_names_a_missing_file_and_a_contradiction(tmp_path):
    from gluon_maskrcnn.engine.cli import apply_recipe, build_parser
    from gluon_maskrcnn.errors import UserError

    missing = str(tmp_path / "nowhere.params")
    with pytest.raises(UserError, match=r"^--pretrained-base %s: no such file$" % re.escape(missing)):
        apply_recipe(build_parser().parse_args(["--pretrained-base", missing, "--gpus", ""]))
    present = tmp_path / "resnet.params"
    present.write_bytes(b"")
    with pytest.raises(UserError, match=r"--pretrained-base %s and --no-pretrained-base contradict each other"
                       % re.escape(str(present))):
        apply_recipe(build_parser().parse_args(["--pretrained-base", str(present), "--no-pretrained-base",
                                                "--gpus", ""]))
