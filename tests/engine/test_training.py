"""Training: exact resume, multi-context equivalence, static_alloc, NaN guard, schedules."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import make_args
from gluon_maskrcnn.engine.checkpoint import load_checkpoint
from gluon_maskrcnn.engine.schedule import learning_rate
from gluon_maskrcnn.engine.trainer import NonFiniteLossError, fit


def _params(prefix):
    loaded = mx.nd.load(prefix + ".params")
    return {k: v.asnumpy() for k, v in loaded.items()}


def test_learning_rate_schedule():
    assert learning_rate(0, 0.3, 100, warmup_iters=10) == pytest.approx(0.1)
    assert learning_rate(5, 0.3, 100, warmup_iters=10) == pytest.approx(0.2)
    assert learning_rate(50, 0.3, 100, warmup_iters=10, decay_iters=(40, 80)) == pytest.approx(0.03)
    assert learning_rate(100, 0.3, 100, mode="cosine") == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(50, 0.3, 100, mode="cosine") == pytest.approx(0.15)


def test_exact_resume(tiny_root, tmp_path):
    full = str(tmp_path / "full" / "run")
    fit(make_args(tiny_root, full, "--epochs", "2", "--batch-size", "2", "--lr", "0.005"))
    part = str(tmp_path / "part" / "run")
    fit(make_args(tiny_root, part, "--epochs", "1", "--batch-size", "2", "--lr", "0.005"))
    state = json.load(open(part + "-last.json"))
    assert state["epoch"] == 1 and state["iteration"] == 2
    fit(make_args(tiny_root, part, "--epochs", "2", "--batch-size", "2", "--lr", "0.005",
                  "--resume", part + "-last"))
    a, b = _params(full + "-last"), _params(part + "-last")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)
    log = [json.loads(l) for l in open(full + "_metrics.jsonl")]
    assert {r["kind"] for r in log} >= {"interval", "epoch"}


def test_two_cpu_contexts_give_the_same_update_as_one(tiny_root, tmp_path, monkeypatch):
    # identical images on both contexts: each context's normalised loss equals the whole batch's
    from gluon_maskrcnn.data import samplers

    monkeypatch.setattr(samplers.AspectRatioBatchSampler, "_batches", lambda self: [[0, 0]])
    one = str(tmp_path / "one" / "run")
    two = str(tmp_path / "two" / "run")
    common = ("--epochs", "1", "--batch-size", "2", "--lr", "0.01", "--lr-warmup", "0",
              "--rpn-train-post-nms", "500", "--num-sample", "512")
    fit(make_args(tiny_root, one, *common))
    fit(make_args(tiny_root, two, *common, "--cpu-contexts", "2"))
    a, b = _params(one + "-last"), _params(two + "-last")
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_static_alloc_trains_the_same(tiny_root, tmp_path):
    losses = {}
    for name, flags in (("plain", ("--hybridize",)), ("static", ("--hybridize", "--static-alloc"))):
        prefix = str(tmp_path / name / "run")
        fit(make_args(tiny_root, prefix, "--epochs", "2", "--lr", "0.01", *flags))
        losses[name] = [r["total"] for r in map(json.loads, open(prefix + "_metrics.jsonl")) if r["kind"] == "interval"]
    np.testing.assert_allclose(losses["plain"], losses["static"], rtol=1e-3)
    assert all(np.isfinite(losses["static"]))


def test_nonfinite_loss_stops_with_a_checkpoint(tiny_root, tmp_path):
    prefix = str(tmp_path / "nan" / "run")
    with pytest.raises(NonFiniteLossError) as err:
        fit(make_args(tiny_root, prefix, "--epochs", "3", "--lr", "1e12", "--lr-warmup", "0"))
    assert "nonfinite" in str(err.value) and "--clip-gradient" in str(err.value)
    assert os.path.exists(prefix + "-nonfinite.params") and os.path.exists(prefix + "-nonfinite.json")


def test_incomplete_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="incomplete or missing"):
        load_checkpoint(str(tmp_path / "nothing"), None)
