"""
3. Train Mask R-CNN end to end
==============================

Train on a COCO-format dataset, evaluate with pycocotools, and read the run's logs, curves
and prediction gallery.

On COCO with 4 GPUs (GluonCV's schedule: 26 epochs, ImageNet-pretrained backbone, frozen
BatchNorm) the command is::

    python scripts/train_mask_rcnn.py --dataset coco --dataset-root ~/.mxnet/datasets/coco \\
        --network resnet50_v1b --use-fpn --gpus 0,1,2,3 --batch-size 8 --num-workers 8

This page runs the same code path offline, on CPU: the documentation's shared model, an FPN
ResNet-18 trained from scratch on the synthetic shapes dataset by the README's main command
(six epochs at 128 pixels, evaluated every two). The docs build trains it once, on the first
page that needs it,
and keeps the run in ``docs/_build/model_cache`` under a key of its recipe; this page then
reads the finished run (and trains it, if no earlier page did).
"""
import json
import os

import matplotlib.pyplot as plt

from gluon_maskrcnn.engine import format_metrics
from gluon_maskrcnn.engine.cached import docs_model_args, require_segm_ap, train_once

# %%
# The arguments
# -------------
# :func:`~gluon_maskrcnn.engine.cli.training_args` builds from keywords exactly the namespace
# ``scripts/train_mask_rcnn.py`` parses from its flags, with the same defaults, so the arguments
# below are the README's main command, ``python scripts/train_mask_rcnn.py --dataset synthetic
# --gpus ''``. ``gpus=""`` trains on the CPU; ``cpu_contexts=2`` would split each batch over two
# CPU contexts, the same data-parallel path as ``--gpus 0,1``.
args = docs_model_args()  # training_args(dataset="synthetic", gpus="", quiet=True)
for key in ("network", "use_fpn", "short", "max_size", "epochs", "batch_size", "lr", "lr_mode",
            "norm", "fpn_channels", "box_hidden", "val_interval", "dataset_root"):
    print("%-15s %s" % (key, getattr(args, key)))

# %%
# Train
# -----
# :func:`~gluon_maskrcnn.engine.trainer.fit` runs the whole loop: the data loader (its workers
# compute the RPN targets), SGD with warm-up and a cosine decay, the five losses, evaluation
# every ``val_interval`` epochs, and checkpoints. It stops with a clear message, and a
# checkpoint, if a loss becomes NaN or infinite. :func:`~gluon_maskrcnn.engine.cached.train_once`
# calls ``fit(args)`` in a folder named by the recipe, unless that run has already finished.
run = train_once(args, os.path.join("..", "_build", "model_cache"))
print("trained in this page" if run["trained"] else
      "an earlier page of this build trained this recipe; its finished run is reused")
print("best evaluation: epoch %d, iteration %d" % (run["best"]["epoch"], run["best"]["iteration"]))
print(format_metrics(run["metrics"]))
require_segm_ap(run["metrics"], 0.5, "the model this page shows")  # the build fails below 0.5

# %%
# What the run wrote
# ------------------
# Next to ``save_prefix``:
#
# * ``-last.params/.states/.json``: the latest checkpoint (parameters, trainer state, epoch,
#   iteration, RNG states and arguments), written atomically. ``--resume auto`` continues
#   exactly where the run stopped;
# * ``-best.*``: the checkpoint with the best segm AP;
# * ``_metrics.jsonl``: one JSON line per logging interval, epoch and evaluation;
# * ``_curves.png`` and ``_predictions.png``, refreshed at each evaluation;
# * ``_val_results.json``: the detections in COCO's results format.
with open(run["prefix"] + "_metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
losses = {r["epoch"] + 1: r for r in records if r["kind"] == "epoch"}
for record in records:
    if record["kind"] == "eval":  # an evaluation after epoch record["epoch"]
        epoch = record["epoch"]
        print("epoch %d  loss %.3f (mask %.3f)  segm AP %.3f  bbox AP %.3f"
              % (epoch, losses[epoch]["total"], losses[epoch]["mask"], record["segm_AP"], record["bbox_AP"]))

# %%
# The curves and the prediction gallery
# -------------------------------------
fig, axes = plt.subplots(2, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [3, 2]})
for ax, suffix in zip(axes, ("_curves.png", "_predictions.png")):
    ax.imshow(plt.imread(run["prefix"] + suffix))
    ax.axis("off")
plt.tight_layout()

# %%
# Evaluate a checkpoint later
# ---------------------------
# ``scripts/eval_mask_rcnn.py`` evaluates any checkpoint or zoo model on any COCO-format split,
# prints the table above and writes the results JSON::
#
#     python scripts/eval_mask_rcnn.py --model runs/synthetic/mask_rcnn-best \
#         --dataset-root data/synthetic --split val
