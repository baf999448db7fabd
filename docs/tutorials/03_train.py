"""
3. Train Mask R-CNN end to end
==============================

Train on a COCO-format dataset, evaluate with pycocotools, and read the run's logs, curves
and prediction gallery.

On COCO with 4 GPUs (GluonCV's schedule: 26 epochs, ImageNet-pretrained backbone, frozen
BatchNorm) the command is::

    python scripts/train_mask_rcnn.py --dataset coco --dataset-root ~/.mxnet/datasets/coco \\
        --network resnet50_v1b --use-fpn --gpus 0,1,2,3 --batch-size 8 --num-workers 8

This page runs the same code path offline, on CPU, with the ``--tiny`` preset shortened to
3 epochs: an FPN ResNet-18 trained from scratch at 128 pixels on 48 synthetic images, about
a minute and a half on 2 cores. That is far too short to learn much (the first tutorial trained
the same preset for its full 6 epochs); the README's main command, ``--dataset synthetic``
without ``--tiny``, trains for about 15 minutes.
"""
import json

import matplotlib.pyplot as plt

from gluon_maskrcnn.engine import fit, format_metrics, training_args

# %%
# The arguments
# -------------
# :func:`~gluon_maskrcnn.engine.cli.training_args` builds from keywords exactly the namespace
# ``scripts/train_mask_rcnn.py`` parses from its flags, with the same defaults, so everything
# below is also ``python scripts/train_mask_rcnn.py --dataset synthetic --gpus '' --tiny
# --epochs 3 --save-prefix runs/train_tutorial/mask_rcnn``.
# ``gpus=""`` trains on the CPU; ``cpu_contexts=2`` would split each batch over two CPU
# contexts, the same data-parallel path as ``--gpus 0,1``.
args = training_args(dataset="synthetic", gpus="", tiny=True, epochs=3, quiet=True,
                     save_prefix="runs/train_tutorial/mask_rcnn")
for key in ("network", "use_fpn", "short", "max_size", "epochs", "batch_size", "lr",
            "lr_decay_epoch", "norm", "dataset_root", "save_prefix"):
    print("%-15s %s" % (key, getattr(args, key)))

# %%
# Train
# -----
# :func:`~gluon_maskrcnn.engine.trainer.fit` runs the whole loop: the data loader (its workers
# compute the RPN targets), SGD with warm-up and step decay, the five losses, evaluation every
# ``val_interval`` epochs, and checkpoints. It stops with a clear message, and a checkpoint,
# if a loss becomes NaN or infinite.
state = fit(args)
print("finished epoch %d after %d iterations" % (state["epoch"], state["iteration"]))
print(format_metrics(state["last_metrics"]))

# %%
# What the run wrote
# ------------------
# Next to ``save_prefix``:
#
# * ``-last.params/.states/.json``: the latest checkpoint (parameters, trainer state, epoch,
#   iteration, RNG states and arguments), written atomically. ``--resume PREFIX-last``
#   continues exactly where the run stopped;
# * ``-best.*``: the checkpoint with the best segm AP;
# * ``_metrics.jsonl``: one JSON line per logging interval, epoch and evaluation;
# * ``_curves.png`` and ``_predictions.png``, refreshed at each evaluation;
# * ``_val_results.json``: the detections in COCO's results format.
with open(args.save_prefix + "_metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
for record in records:
    if record["kind"] == "epoch":
        print("epoch %d  loss %.3f  (mask %.3f)" % (record["epoch"], record["total"], record["mask"]))

# %%
# The curves and the prediction gallery
# -------------------------------------
fig, axes = plt.subplots(2, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [3, 2]})
for ax, suffix in zip(axes, ("_curves.png", "_predictions.png")):
    ax.imshow(plt.imread(args.save_prefix + suffix))
    ax.axis("off")
plt.tight_layout()

# %%
# Evaluate a checkpoint later
# ---------------------------
# ``scripts/eval_mask_rcnn.py`` evaluates any checkpoint or zoo model on any COCO-format split,
# prints the table above and writes the results JSON::
#
#     python scripts/eval_mask_rcnn.py --model runs/train_tutorial/mask_rcnn-best \
#         --dataset-root data/synthetic_tiny --split val
