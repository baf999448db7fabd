"""Checkpoints hold no pickle: the optimizer's arrays are an NDArray file, its scalars JSON.
A pickled checkpoint (MXNet's Trainer.save_states, format 1) is refused without being
unpickled, and scripts/convert_checkpoint.py turns a trusted one into the current format."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from train_helpers import make_args
from gluon_maskrcnn.engine.checkpoint import FORMAT, CheckpointError, load_checkpoint, verify_checkpoint
from gluon_maskrcnn.engine.trainer import fit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _CreatesAFile:
    """Unpickling this creates ``path``: what a hostile checkpoint could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def one_epoch(tiny_root, tmp_path_factory):
    """A run of one epoch: its -last checkpoint, format 2."""
    prefix = str(tmp_path_factory.mktemp("fmt") / "run")
    fit(make_args(tiny_root, prefix, "--epochs", "1", "--lr", "0.01"))
    return prefix + "-last"


def _copy(prefix, folder):
    target = os.path.join(str(folder), os.path.basename(prefix))
    for suffix in (".params", ".states", ".json"):
        shutil.copyfile(prefix + suffix, target + suffix)
    return target


def _rewrite_json(prefix, change):
    """Apply ``change`` to the checkpoint's JSON and make its checksums match its files again."""
    from gluon_maskrcnn.engine.checkpoint import _file_digest  # the test forges checkpoints

    record = json.load(open(prefix + ".json"))
    change(record)
    record["files"] = {s: _file_digest(prefix + s) for s in (".params", ".states")}
    json.dump(record, open(prefix + ".json", "w"))


def _as_format_1(prefix, states):
    """Make ``prefix`` a checkpoint as MXNet's Trainer.save_states wrote it: ``states`` pickled."""
    with open(prefix + ".states", "wb") as f:
        pickle.dump(states, f)

    def drop(record):
        for key in ("format", "package_version", "optimizer"):
            record.pop(key, None)
    _rewrite_json(prefix, drop)


def test_a_checkpoint_holds_arrays_and_json_only(one_epoch):
    state = verify_checkpoint(one_epoch)
    assert state["format"] == FORMAT == 2 and state["package_version"]
    arrays = mx.nd.load(one_epoch + ".states")  # an NDArray file, not a pickle
    assert len(arrays) == len(state["optimizer"]["layout"]) > 50
    assert set(state["optimizer"]["update_counts"].values()) == {state["iteration"]}
    with open(one_epoch + ".states", "rb") as f:
        assert f.read(1) != b"\x80"  # no pickle protocol header


def test_a_pickled_checkpoint_is_refused_and_never_unpickled(one_epoch, tiny_root, tmp_path):
    prefix = _copy(one_epoch, tmp_path)
    marker = tmp_path / "unpickling-ran-code"
    _as_format_1(prefix, _CreatesAFile(str(marker)))
    args = make_args(tiny_root, str(tmp_path / "resumed"), "--epochs", "2", "--resume", prefix)
    with pytest.raises(CheckpointError, match=r"%s\.states is pickled .* python scripts/convert_checkpoint\.py %s$"
                       % (prefix, prefix)):
        fit(args)
    assert not marker.exists()
    # --pretrained reads the parameters only, never the optimizer file
    fit(make_args(tiny_root, str(tmp_path / "finetuned"), "--epochs", "1", "--pretrained", prefix))
    assert not marker.exists()


def test_a_newer_format_is_refused_naming_both_versions(one_epoch, tiny_root, tmp_path):
    prefix = _copy(one_epoch, tmp_path)
    _rewrite_json(prefix, lambda record: record.update(format=FORMAT + 1, package_version="9.9.9"))
    with pytest.raises(CheckpointError, match=r"format 3 \(written by gluon_maskrcnn 9\.9\.9\); this gluon_maskrcnn "
                                              r"\(0\.1\.0\) reads formats up to 2"):
        fit(make_args(tiny_root, str(tmp_path / "resumed"), "--epochs", "2", "--resume", prefix))


def test_a_converted_checkpoint_resumes_bit_identically(one_epoch, tiny_root, tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    new, old = _copy(one_epoch, tmp_path / "new"), _copy(one_epoch, tmp_path / "old")
    arrays = mx.nd.load(old + ".states")
    _as_format_1(old, {int(name.split(":")[0]): value for name, value in arrays.items()})  # MXNet's layout
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_checkpoint.py"), old],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0 and done.stdout.strip() == "%s: converted" % old, done.stderr
    assert verify_checkpoint(old)["format"] == FORMAT
    finals = []
    for prefix in (new, old):
        state = fit(make_args(tiny_root, prefix + "-resumed", "--epochs", "2", "--lr", "0.01", "--resume", prefix))
        finals.append({k: v.asnumpy() for k, v in mx.nd.load(prefix + "-resumed-last.params").items()})
        assert state["iteration"] == 2 * verify_checkpoint(one_epoch)["iteration"]
    assert finals[0].keys() == finals[1].keys()
    for key in finals[0]:
        np.testing.assert_array_equal(finals[0][key], finals[1][key], err_msg=key)
