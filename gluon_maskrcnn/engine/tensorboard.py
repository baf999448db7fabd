"""``--tensorboard DIR``: the metrics log's records as TensorBoard events, through tensorboardX
(``pip install .[tensorboard]``), written by rank 0 alone.

Tags, each at the record's iteration:

- ``train/<loss>``, ``train/total``: the five losses and their sum (each the running mean
  since the epoch began, as ``metrics.jsonl`` logs them); ``train/lr``; ``train/loss_scale``
  with ``--amp``; ``train/images_per_sec``; ``train/grad_norm`` with ``--clip-gradient``;
- ``epoch/<loss>``: each epoch's mean losses;
- ``val/bbox_AP``, ``val/segm_AP50``, ... every figure of every evaluation, and
  ``val/loss_<name>`` with ``--val-loss``;
- ``val/predictions``: the prediction gallery drawn after each evaluation.
"""
from ..errors import UserError

__all__ = ["TensorBoardLog", "scalars_of"]

_TRAIN_KEYS = ("lr", "loss_scale", "images_per_sec", "grad_norm")


def scalars_of(record):
    """{tag: value} of one metrics-log record (see the module's docstring)."""
    from ..modeling.losses import LOSS_NAMES

    kind = record.get("kind")
    if kind == "interval":
        keys = LOSS_NAMES + ("total",) + _TRAIN_KEYS
        return {"train/" + key: record[key] for key in keys if key in record}
    if kind == "epoch":
        return {"epoch/" + key: record[key] for key in LOSS_NAMES + ("total",) if key in record}
    if kind == "eval":
        tags = {"val/%s_%s" % (task, name): value for task, figures in record.get("metrics", {}).items()
                for name, value in figures.items() if isinstance(value, (int, float))}
        tags.update({"val/loss_" + key[len("val_"):]: value for key, value in record.items()
                     if key.startswith("val_")})
        return tags
    return {}


class TensorBoardLog:
    """Writes metrics-log records and pictures as TensorBoard events in ``folder``."""

    def __init__(self, folder):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard %s: tensorboardX is not installed; pip install -e \".[tensorboard]\""
                            % folder) from None
        self.writer = SummaryWriter(folder)

    def record(self, record):
        step = int(record.get("iteration", 0))
        for tag, value in scalars_of(record).items():
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def image(self, tag, path, step):
        """Add the PNG at ``path`` as image ``tag``."""
        import cv2

        picture = cv2.imread(path, cv2.IMREAD_COLOR)
        if picture is not None:
            self.writer.add_image(tag, picture[:, :, ::-1], int(step), dataformats="HWC")  # BGR -> RGB
            self.writer.flush()

    def close(self):
        self.writer.close()
