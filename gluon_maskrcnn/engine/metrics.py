"""Running loss averages, a JSON-lines metrics log, and PNG curves."""
import json
import os
import time

from ..errors import UserError
from ..files import atomic_write


__all__ = ["RunningMean", "MetricsLog", "plot_curves", "best_evaluation"]


class RunningMean:
    """Mean of each named value since the last reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums, self.count = {}, 0

    def update(self, values):
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.count += 1

    def state_dict(self):
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state):
        self.sums, self.count = dict(state["sums"]), int(state["count"])

    def means(self):
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


class MetricsLog:
    """Appends one JSON object per line to ``path``; readable with ``read()``."""

    def __init__(self, path, tensorboard=None):
        self.path = path
        self.tensorboard = tensorboard  # a TensorBoardLog that gets every record too, or None
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, kind, **values):
        record = dict(kind=kind, time=time.time(), **values)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.record(record)
        return record

    def drop_after(self, iteration):
        """Remove the records of iterations after ``iteration`` (a run resumed from there
        writes them again)."""
        kept = [r for r in self.read() if r.get("iteration", 0) <= iteration]

        def write(tmp):
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

        atomic_write(self.path, write)

    def read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]


def best_evaluation(save_prefix):
    """The evaluation record of run ``save_prefix`` with the highest segm AP (the one its
    ``-best`` checkpoint was saved at), from its metrics log."""
    path = save_prefix + "_metrics.jsonl"
    evals = [r for r in MetricsLog(path).read() if r["kind"] == "eval"]
    if not evals:
        raise UserError("%s has no evaluation: train with --val-interval > 0" % path)
    return max(evals, key=lambda r: r["segm_AP"])


def plot_curves(records, path):
    """Loss curves (per interval) and AP curves (per evaluation) into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    intervals = [r for r in records if r["kind"] == "interval"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box", "mask", "total"):
        if intervals and name in intervals[0]:
            left.plot([r["iteration"] for r in intervals], [r[name] for r in intervals], label=name)
    with_loss = [r for r in evals if "val_total" in r and "iteration" in r]
    if with_loss:
        left.plot([r["iteration"] for r in with_loss], [r["val_total"] for r in with_loss], "k--o",
                  label="val total")
    left.set_xlabel("iteration"), left.set_ylabel("loss"), left.set_yscale("log")
    left.set_title("training losses")
    for name in ("bbox_AP", "segm_AP"):
        if evals:
            right.plot([r["epoch"] for r in evals], [r[name] for r in evals], marker="o", label=name)
    right.set_xlabel("epoch"), right.set_ylabel("AP"), right.set_ylim(0, 1)
    for axes in (left, right):
        if axes.get_legend_handles_labels()[0]:  # nothing logged yet: no empty legend
            axes.legend(fontsize=8)
    right.set_title("validation AP")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path
