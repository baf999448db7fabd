"""dist_sync on loopback (1 server, 2 workers) through the project's launcher."""
import os
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_maskrcnn.engine.launcher import launch_local

HERE = os.path.dirname(__file__)


def test_dist_sync_two_workers_end_identical(tiny_root, tmp_path):
    prefix = str(tmp_path / "dist")
    log = tmp_path / "launch.log"
    with open(log, "w") as sink:
        code = launch_local([sys.executable, os.path.join(HERE, "dist_worker.py"), tiny_root, prefix],
                            num_workers=2, num_servers=1, env={"OMP_NUM_THREADS": "1"}, timeout=240, sink=sink)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "rank 0" in output and "rank 1" in output
    a = mx.nd.load(prefix + "-final-w0.params")
    b = mx.nd.load(prefix + "-final-w1.params")
    for key in a:
        np.testing.assert_array_equal(a[key].asnumpy(), b[key].asnumpy(), err_msg=key)
    # only rank 0 writes checkpoints and logs
    written = sorted(os.listdir(tmp_path))
    ranks_with_checkpoints = {name.split("-w")[1][0] for name in written if name.endswith("-last.params")}
    assert ranks_with_checkpoints == {"0"} or ranks_with_checkpoints == {"1"}
