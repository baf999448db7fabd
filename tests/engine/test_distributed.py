"""Several workers on loopback: dist_sync (1 server, 2 workers) through the project's launcher,
and Horovod with Gloo (2 processes) where Horovod is installed."""
import importlib.util
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_maskrcnn.engine.launcher import launch_local

HERE = os.path.dirname(__file__)
_VENV_HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
HOROVODRUN = shutil.which("horovodrun") or (_VENV_HOROVODRUN if os.path.exists(_VENV_HOROVODRUN) else None)


def _worker(root, prefix, engine):
    return [sys.executable, os.path.join(HERE, "dist_worker.py"), root, prefix, engine]


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
    log = tmp_path / "launch.log"
    with open(log, "w") as sink:
        code = launch_local(_worker(tiny_root, prefix, "dist_sync"), num_workers=2, num_servers=1,
                            env={"OMP_NUM_THREADS": "1"}, timeout=240, sink=sink)
    output = log.read_text()
    assert code == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)


# horovod.mxnet is never imported here: next to it, MXNet's extension-library loader crashes
@pytest.mark.skipif(HOROVODRUN is None or importlib.util.find_spec("horovod") is None,
                    reason="Horovod is not installed")
def test_horovod_two_workers_end_identical(tiny_root, tmp_path):
    prefix = str(tmp_path / "hvd")
    env = dict(os.environ, OMP_NUM_THREADS="1", HOROVOD_GLOO_IFACE="lo")
    result = subprocess.run([HOROVODRUN, "--gloo", "-np", "2", "-H", "127.0.0.1:2", "--network-interface", "lo"]
                            + _worker(tiny_root, prefix, "horovod"),
                            env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    _assert_identical_and_rank0_writes(tmp_path, prefix, output)
