"""The whole GPU path on stand-in devices: CPU contexts that are not ``cpu(0)``.

MXNet's default context is ``cpu(0)``: an array or parameter made without a ``ctx`` lands
there, which no test on ``cpu(0)`` notices and which fails at once on a GPU. Here the network
is built from a local backbone file, trained (hybridized and imperative), evaluated, used for
prediction and exported on ``[cpu(1)]`` and on ``[cpu(1), cpu(2)]``; every parameter must live
on exactly those devices, and every output on the device that computed it. Mixing contexts in
one operator is an error in MXNet, so an array left on ``cpu(0)`` fails the run itself.
"""
import os

import mxnet as mx
import numpy as np
import pytest

from train_helpers import SMALL
from gluon_maskrcnn.engine import trainer as trainer_module
from gluon_maskrcnn.engine.cli import apply_recipe, build_parser
from gluon_maskrcnn.engine.trainer import fit

STAND_INS = {"one device": [mx.cpu(1)], "two devices": [mx.cpu(1), mx.cpu(2)]}


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A ResNet-18 v1b parameter file in GluonCV's ImageNet layout, with values of its own."""
    from gluoncv.model_zoo import resnetv1b

    mx.random.seed(11)
    net = resnetv1b.resnet18_v1b(pretrained=False)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path_factory.mktemp("imagenet") / "resnet18_v1b.params")
    net.save_parameters(path)
    return path


def stand_in_args(root, prefix, backbone, devices, hybridize):
    argv = [a for a in SMALL[:-2] if a not in ("--no-pretrained-base", "--no-hybridize", "--train-all")]
    assert SMALL[-2:] == ["--batch-size", "1"]
    argv += ["--dataset-root", root, "--save-prefix", prefix, "--pretrained-base", backbone,
             "--batch-size", str(len(devices)), "--epochs", "1", "--val-interval", "1",
             "--hybridize" if hybridize else "--no-hybridize"]
    args = apply_recipe(build_parser().parse_args(argv))
    args.train_all = False  # GluonCV's trainable set: the stem keeps the file's weights
    return args


def assert_on(net, devices):
    """Every parameter lives on exactly ``devices``."""
    misplaced = {name: p.list_ctx() for name, p in net.collect_params().items() if p.list_ctx() != devices}
    assert not misplaced, "parameters not on %s: %s" % (devices, dict(list(misplaced.items())[:5]))


@pytest.mark.parametrize("hybridize", [True, False], ids=["hybridized", "imperative"])
@pytest.mark.parametrize("name", list(STAND_INS))
def test_train_evaluate_predict_export_off_the_default_device(name, hybridize, tiny_root, backbone_file,
                                                              tmp_path, monkeypatch):
    import gluon_maskrcnn as gm
    from gluon_maskrcnn.export import export_model, load_exported

    devices = STAND_INS[name]
    monkeypatch.setattr(trainer_module, "contexts", lambda args: list(devices))  # as --gpus 1[,2]
    args = stand_in_args(tiny_root, str(tmp_path / "run"), backbone_file, devices, hybridize)
    state = fit(args)
    net = state["net"]
    assert_on(net, devices)
    assert state["iteration"] > 0 and state["last_metrics"]["segm"]["AP"] >= 0  # trained, evaluated
    # the backbone file was loaded (not a fresh initialisation): the stem is not trained
    stem = [p for n, p in net.collect_params().items() if n.endswith("resnetv1b_conv0_weight")][0]
    np.testing.assert_array_equal(stem.data(devices[0]).asnumpy(), mx.nd.load(backbone_file)["conv1.weight"].asnumpy())

    image = (np.random.RandomState(0).uniform(0, 255, (96, 128, 3))).astype(np.uint8)
    outputs = net(mx.nd.array(image.transpose(2, 0, 1)[None], ctx=devices[-1]))
    assert {o.context for o in outputs} == {devices[-1]}
    result, = gm.predict(net, [image])  # the network's own device, no ctx given
    assert result["masks"].shape[1:] == image.shape[:2]

    prefix = str(tmp_path / "export")
    export_model(net, prefix)
    exported = load_exported(prefix, ctx=devices[0])
    assert all(p.list_ctx() == [devices[0]] for p in exported.collect_params().values())
    again = exported(mx.nd.array(image.transpose(2, 0, 1)[None], ctx=devices[0]))
    assert {o.context for o in again} == {devices[0]}
