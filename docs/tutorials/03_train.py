"""
3. Train Mask R-CNN end to end
==============================

Train on a COCO-format dataset, evaluate with pycocotools, and read the run's logs, curves
and prediction gallery.

On COCO with 4 GPUs (GluonCV's schedule: 26 epochs, ImageNet-pretrained backbone, frozen
BatchNorm) the command is::

    python scripts/train_mask_rcnn.py --dataset coco --dataset-root ~/.mxnet/datasets/coco \\
        --network resnet50_v1b --use-fpn --gpus 0,1,2,3 --batch-size 8 --num-workers 8

This page runs the same code path offline, on CPU: an FPN ResNet-18 trained from scratch on
the synthetic shapes dataset, the README's main command (six epochs at 128 pixels, evaluated
every two), about 12 minutes on 2 cores.
"""
import json
import os

import matplotlib.pyplot as plt

from gluon_maskrcnn.engine import fit, format_metrics, training_args

# %%
# The arguments
# -------------
# :func:`~gluon_maskrcnn.engine.cli.training_args` builds from keywords exactly the namespace
# ``scripts/train_mask_rcnn.py`` parses from its flags, with the same defaults, so the arguments
# below are the README's main command, ``python scripts/train_mask_rcnn.py --dataset synthetic
# --gpus ''``. ``gpus=""`` trains on the CPU; ``cpu_contexts=2`` would split each batch over two
# CPU contexts, the same data-parallel path as ``--gpus 0,1``. ``resume="auto"`` continues an
# interrupted run from its newest checkpoint (or starts fresh).
args = training_args(dataset="synthetic", gpus="", quiet=True, resume="auto",
                     save_prefix=os.path.join("runs", "synthetic", "mask_rcnn"))
for key in ("network", "use_fpn", "short", "max_size", "epochs", "batch_size", "lr", "lr_mode",
            "norm", "fpn_channels", "box_hidden", "val_interval", "dataset_root"):
    print("%-15s %s" % (key, getattr(args, key)))

# %%
# Train
# -----
# :func:`~gluon_maskrcnn.engine.trainer.fit` runs the whole loop: the data loader (its workers
# compute the RPN targets), SGD with warm-up and a cosine decay, the five losses, evaluation
# every ``val_interval`` epochs, and checkpoints. It stops with a clear message, and a
# checkpoint, if a loss becomes NaN or infinite. It returns the run's state, with the network
# and the metrics of the last evaluation.

# sphinx_gallery_start_ignore
# The documentation build trains this recipe once (the first page that needs it) and keeps the
# run in docs/_build/model_cache/<recipe key>/; fit() below then resumes that finished run and
# returns at once. Readers' runs go to runs/synthetic/ as written above.
from gluon_maskrcnn.engine.cached import docs_model  # noqa: E402

args.save_prefix = docs_model(  # trains it, or checks the finished run reaches segm AP 0.5
    os.path.join("..", "_build", "model_cache"))["prefix"]
# sphinx_gallery_end_ignore
state = fit(args)
print("epoch %d, iteration %d" % (state["epoch"], state["iteration"]))
print(format_metrics(state["last_metrics"]))

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
with open(args.save_prefix + "_metrics.jsonl") as f:
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
    ax.imshow(plt.imread(args.save_prefix + suffix))
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
