"""Train a recipe once and reuse the finished run: the documentation's shared model.

:func:`train_once` keys a run folder by the training arguments that decide the weights, trains
there with ``--resume auto`` (an interrupted run continues), and returns the finished run at
once when it is already complete. :func:`require_segm_ap` stops a page, a demo or a test that
would show a model too weak to be worth showing.
"""
import hashlib
import json
import logging
import os

from ..errors import UserError
from .checkpoint import find_latest_checkpoint
from .metrics import best_evaluation

__all__ = ["recipe_key", "train_once", "require_segm_ap", "ModelQualityError", "REPORTING_KEYS",
           "docs_model", "docs_model_args", "DOCS_MODEL_FLAGS", "DOCS_MIN_SEGM_AP"]

logger = logging.getLogger(__name__)

# Arguments that change where a run writes or how it reports, never the weights it learns.
REPORTING_KEYS = ("save_prefix", "resume", "quiet", "verbose", "log_interval", "num_workers",
                  "save_interval", "save_interval_iters", "keep_checkpoints", "start_epoch", "tensorboard")


class ModelQualityError(UserError):
    """A trained model scores below the bound its use requires."""


def recipe_key(args):
    """A 12-character digest of the arguments that decide what ``fit(args)`` learns."""
    recipe = {k: v for k, v in sorted(vars(args).items()) if k not in REPORTING_KEYS}
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _finished_state(save_prefix, epochs):
    """The state of a complete run of ``epochs`` epochs at ``save_prefix``, or None."""
    _, state = find_latest_checkpoint(save_prefix)
    if state is None or state.get("epoch", 0) < epochs or state.get("epoch_batches", 0):
        return None
    return state


def train_once(args, cache_root):
    """``fit(args)`` in ``cache_root/<recipe_key(args)>/``, unless that run is already finished.

    Returns ``dict(prefix, args, metrics, best, trained)``: the run's save prefix (``prefix +
    "-last"`` and ``prefix + "-best"`` are its checkpoints), ``args``, the metrics of its best
    evaluation (the ``-best`` checkpoint's), that evaluation's log record, and whether this call
    trained. ``args.save_prefix`` and ``args.resume`` are set here; the run must evaluate
    (``args.val_interval > 0``).
    """
    from .trainer import fit

    folder = os.path.join(cache_root, recipe_key(args))
    args.save_prefix = os.path.join(folder, "mask_rcnn")
    state = _finished_state(args.save_prefix, args.epochs)
    trained = state is None
    if trained:
        logger.info("training %s (no finished run of this recipe yet)", folder)
        args.resume = "auto"  # an interrupted build continues where it stopped
        fit(args)
    else:
        logger.info("reusing the finished run %s", folder)
    best = best_evaluation(args.save_prefix)
    return dict(prefix=args.save_prefix, args=args, metrics=best["metrics"], best=best, trained=trained)


def require_segm_ap(metrics, minimum, what):
    """Raise :class:`ModelQualityError` naming ``what`` unless ``metrics`` (as
    :func:`~gluon_maskrcnn.engine.evaluation.evaluate` returns them) reach segm AP ``minimum``;
    returns the segm AP."""
    if not metrics or "segm" not in metrics:
        raise ModelQualityError("%s has no evaluation to check against segm AP %.2f "
                                "(train it with --val-interval > 0)" % (what, minimum))
    segm_ap = float(metrics["segm"]["AP"])
    if segm_ap < minimum:
        raise ModelQualityError("%s reaches segm AP %.3f, below the %.2f it must reach to be shown; "
                                "its pictures would mislead (bbox AP %.3f)"
                                % (what, segm_ap, minimum, float(metrics["bbox"]["AP"])))
    return segm_ap


# The documentation's shared model (tutorials 1, 3, 4 and 6 show it): the README's main command,
# ``scripts/train_mask_rcnn.py --dataset synthetic --gpus ''`` (it evaluates every 2 epochs).
DOCS_MODEL_FLAGS = dict(dataset="synthetic", gpus="", quiet=True)
DOCS_MIN_SEGM_AP = 0.5


def docs_model_args(**overrides):
    """The training arguments of the documentation's shared model (``overrides`` win)."""
    from .cli import training_args

    return training_args(**dict(DOCS_MODEL_FLAGS, **overrides))


def docs_model(cache_root):
    """The documentation's shared model, trained once per recipe under ``cache_root``: returns
    :func:`train_once`'s dict plus ``segm_AP``, after checking that it reaches
    ``DOCS_MIN_SEGM_AP`` (:class:`ModelQualityError` otherwise, which fails the docs build)."""
    run = train_once(docs_model_args(), cache_root)
    run["segm_AP"] = require_segm_ap(run["metrics"], DOCS_MIN_SEGM_AP,
                                     "the documentation's model %s-best" % run["prefix"])
    return run
