"""A finished run's pictures: its prediction gallery and loss/AP curves as PNGs, captioned with
the run's AP, and the README block that shows them (``scripts/make_run_pictures.py``)."""
import os
import re

from ..errors import UserError
from ..files import atomic_write
from .checkpoint import verify_checkpoint
from .metrics import MetricsLog, best_evaluation, plot_curves

__all__ = ["save_run_pictures", "pictures_markdown", "replace_marked_block",
           "update_marked_block"]


def save_run_pictures(save_prefix, out_dir, count=4, score_thresh=0.5):
    """Write ``out_dir/predictions.png`` (the ``-best`` checkpoint on the first ``count`` val
    images) and ``out_dir/curves.png`` of the run ``save_prefix``; returns a dict with both
    paths, the best evaluation record and the run's arguments."""
    from ..data.coco import COCOInstances
    from .loading import load_model
    from .visualize import save_gallery

    best_prefix = save_prefix + "-best"
    run_args = verify_checkpoint(best_prefix)["args"]
    best = best_evaluation(save_prefix)
    net = load_model(best_prefix)
    val = COCOInstances(run_args["dataset_root"], run_args["val_split"], skip_empty=False)
    predictions = save_gallery(net, val, os.path.join(out_dir, "predictions.png"), count=count,
                               score_thresh=score_thresh)
    curves = plot_curves(MetricsLog(save_prefix + "_metrics.jsonl").read(), os.path.join(out_dir, "curves.png"))
    return dict(predictions=predictions, curves=curves, best=best, args=run_args, count=count,
                score_thresh=score_thresh, val_images=len(val))


def pictures_markdown(pictures, relative_to):
    """Markdown showing both PNGs, paths relative to ``relative_to``, with captions that state
    the run and its AP."""
    a, best = pictures["args"], pictures["best"]
    run = ("%s%s, %d iterations of %d images at %d pixels, seed %d"
           % (a["network"], " FPN" if a.get("use_fpn") else "", best["iteration"], a["batch_size"],
              a["short"], a["seed"]))
    ap = ("segm AP %.2f, bbox AP %.2f on the %d val images (epoch %d)"
          % (best["segm_AP"], best["bbox_AP"], pictures["val_images"], best["epoch"]))

    def rel(path):
        return os.path.relpath(path, relative_to).replace(os.sep, "/")

    return ("![predictions](%s)\n\n*The main command's model (%s) on the first %d val images, scores "
            "of at least %.1f: %s.*\n\n![curves](%s)\n\n*The same run's training losses (each point the "
            "mean since its epoch began) and its validation AP at each evaluation.*\n"
            % (rel(pictures["predictions"]), run, pictures["count"], pictures["score_thresh"], ap,
               rel(pictures["curves"])))


def replace_marked_block(text, block, marker):
    """``text`` with the lines between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced by
    ``block``; :class:`~gluon_maskrcnn.errors.UserError` if the markers are missing."""
    pattern = re.compile(r"(<!-- %s -->\n).*?(<!-- /%s -->)" % (re.escape(marker), re.escape(marker)), re.S)
    if not pattern.search(text):
        raise UserError("no '<!-- %s -->' ... '<!-- /%s -->' block to replace" % (marker, marker))
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), text, count=1)


def update_marked_block(path, block, marker):
    """Rewrite the ``marker`` block of the text file ``path`` (atomically); see
    :func:`replace_marked_block`. Its error names ``path``."""
    with open(path) as f:
        try:
            text = replace_marked_block(f.read(), block, marker)
        except UserError as err:
            raise UserError("%s: %s" % (path, err)) from None

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)
    return path
