"""``--amp`` without a GPU: the training and inference graphs traced under ``amp.init()`` must
type-check for float32 input (MXNet's float16 kernels do not run on CPU, but type inference
does). Before ``_contrib_box_decode`` was forced to float32, it failed at the first forward:
float16 deltas, float32 anchors."""
import json
import os
import subprocess
import sys

import pytest

from gluon_maskrcnn.engine.amp import FLOAT32_OPERATORS

HERE = os.path.dirname(os.path.abspath(__file__))


def trace(mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, os.path.join(HERE, "amp_trace.py"), mode], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def amp_graphs():
    return trace("amp")


def test_every_graph_type_checks_under_amp(amp_graphs):
    assert len(amp_graphs) == 6  # FPN and C4: inference, training, losses
    failed = [g for g in amp_graphs if "error" in g]
    assert not failed, failed


def test_amp_really_casts_and_the_losses_stay_float32(amp_graphs):
    for graph in amp_graphs:
        assert graph["casts"] > 0, graph  # AMP wrapped this graph's operators
        if graph["graph"] == "losses":
            assert graph["types"] == ["float32"] * 5
        if graph["graph"] == "inference":  # boxes and scores come out of float32 operators
            assert graph["types"][:3] == ["float32"] * 3
    assert any("float16" in g["types"] for g in amp_graphs if g["graph"] == "training")


def test_each_forced_operator_has_a_reason():
    assert FLOAT32_OPERATORS and all(len(reason) > 20 for reason in FLOAT32_OPERATORS.values())
