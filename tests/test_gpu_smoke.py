"""scripts/gpu_smoke.py: on stand-in devices in CI (every check but AMP runs), on GPUs when
there are some (marked ``gpu``)."""
import mxnet as mx
import numpy as np
import pytest

from gluon_maskrcnn.benchmarks.gpu_smoke import compare_detections, format_table, run_checks


def test_compare_detections_names_what_differs():
    ids, scores = np.float32([[0], [1], [-1]]), np.float32([[0.9], [0.5], [-1]])
    boxes = np.float32([[0, 0, 10, 10], [5, 5, 20, 20], [-1, -1, -1, -1]])
    assert compare_detections((ids, scores, boxes), (ids, scores, boxes))[0]
    moved = boxes.copy()
    moved[1] += 1.0
    passed, detail = compare_detections((ids, scores, boxes), (ids, scores, moved))
    assert not passed and "lowest IoU 0.77" in detail
    relabelled = ids.copy()
    relabelled[0] = 2
    assert not compare_detections((ids, scores, boxes), (relabelled, scores, boxes))[0]


def test_every_smoke_check_passes_on_stand_in_devices(tmp_path):
    results = run_checks("stand-in", folder=str(tmp_path))
    print(format_table(results))
    assert [passed for _, passed, _ in results] == [True, True, True, True, True, None], format_table(results)


@pytest.mark.gpu
@pytest.mark.skipif(mx.context.num_gpus() == 0, reason="no GPU")
def test_every_smoke_check_passes_on_gpus(tmp_path):
    results = run_checks("gpu", folder=str(tmp_path))
    assert all(passed is not False for _, passed, _ in results), format_table(results)
