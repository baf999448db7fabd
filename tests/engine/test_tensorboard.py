"""--tensorboard: the events read back with TensorBoard's own reader hold what metrics.jsonl holds."""
import json

import pytest

from train_helpers import make_args
from gluon_maskrcnn.engine.tensorboard import scalars_of
from gluon_maskrcnn.engine.trainer import fit

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_events_hold_the_metrics_logs_values(tiny_root, tmp_path):
    prefix, board = str(tmp_path / "run"), str(tmp_path / "board")
    fit(make_args(tiny_root, prefix, "--epochs", "2", "--lr", "0.01", "--val-interval", "1", "--val-loss",
                  "--clip-gradient", "100", "--tensorboard", board))
    records = [json.loads(line) for line in open(prefix + "_metrics.jsonl")]
    want = {}  # tag -> {step: value}
    for record in records:
        for tag, value in scalars_of(record).items():
            want.setdefault(tag, {})[record["iteration"]] = value
    events = event_accumulator.EventAccumulator(board, size_guidance={event_accumulator.SCALARS: 0,
                                                                      event_accumulator.IMAGES: 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(want)
    for tag, by_step in want.items():
        got = {event.step: event.value for event in events.Scalars(tag)}
        assert got == pytest.approx(by_step, rel=1e-6), tag  # float32 in the events
    for tag in ("train/total", "train/mask", "train/lr", "train/images_per_sec", "train/grad_norm",
                "epoch/total", "val/segm_AP", "val/bbox_AP50", "val/loss_total"):
        assert tag in want, tag
    assert len(want["val/segm_AP"]) == 2 and len(want["train/total"]) == 8  # 2 evaluations, 4 steps x 2 epochs
    images = events.Images("val/predictions")
    assert [image.step for image in images] == sorted(want["val/segm_AP"]) and images[0].width > 100


def test_without_tensorboardx_the_flag_is_named(monkeypatch):
    import sys

    from gluon_maskrcnn.engine.tensorboard import TensorBoardLog
    from gluon_maskrcnn.errors import UserError

    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    with pytest.raises(UserError, match=r"--tensorboard runs/board: tensorboardX is not installed; "
                                        r"pip install -e \"\.\[tensorboard\]\""):
        TensorBoardLog("runs/board")
