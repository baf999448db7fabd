"""The training loop: data-parallel over contexts and machines, exact resume, evaluation.

``fit(args)`` is what ``scripts/train_mask_rcnn.py`` calls; ``args`` is the script's namespace
(see :func:`gluon_maskrcnn.engine.cli.build_parser`).
"""
import logging
import math
import os

import mxnet as mx
import numpy as np
from mxnet import autograd, nd

from ..data.coco import COCOInstances
from ..data.loader import train_loader
from ..data.rpn_targets import RPNTargetGenerator
from ..data.transforms import TrainTransform
from ..model_zoo import PRESETS, get_model
from ..modeling.losses import LOSS_NAMES, MaskRCNNLoss
from .checkpoint import checkpoint_args, load_checkpoint, save_checkpoint
from .cli import MODEL_SIZE_KEYS, contexts
from .distributed import Distributed
from .evaluation import evaluate, format_metrics
from .loading import load_model, model_name
from .metrics import MetricsLog, RunningMean, plot_curves
from .schedule import default_lr, learning_rate
from .step import forward_losses
from .validation import validation_losses

__all__ = ["fit", "NonFiniteLossError", "build_network", "contexts"]

logger = logging.getLogger("gluon_maskrcnn")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; a checkpoint of the state before the step was saved."""


def build_network(args, classes, per_device_batch, ctx):
    """The network for ``args`` with the data's classes; everything trainable gets a gradient."""
    overrides = dict(per_device_batch_size=per_device_batch)
    for key in MODEL_SIZE_KEYS + ("norm",):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if args.train_all:
        overrides["train_patterns"] = None
    name = model_name(args.network, args.use_fpn)
    if checkpoint_args(args.pretrained) is not None:  # fine-tune one of our runs: new classes
        net = load_model(args.pretrained, ctx=ctx[0], **overrides)
        if list(net.classes) != list(classes):
            net.reset_class(classes)
    else:
        net = get_model(name, pretrained=args.pretrained or False,
                        pretrained_base=not args.no_pretrained_base, classes=classes, ctx=ctx[0],
                        **overrides)
    net.collect_params().reset_ctx(ctx)
    trainable = set(net.collect_train_params().values())
    for param in net.collect_params().values():
        if param not in trainable:
            param.grad_req = "null"
    return net, dict(PRESETS[name], **overrides)


class _Run:
    """State of one training run (kept small: the loop itself lives in :func:`fit`)."""

    def __init__(self, args):
        self.args = args
        self.dist = Distributed(args.kv_store, args.horovod)
        self.ctx = contexts(args)
        self.out_dir = os.path.dirname(os.path.abspath(args.save_prefix)) or "."
        self.log = MetricsLog(args.save_prefix + "_metrics.jsonl") if self.dist.is_root else None
        self.train_set = COCOInstances(args.dataset_root, args.train_split, skip_empty=True)
        self.val_set = (COCOInstances(args.dataset_root, args.val_split, skip_empty=False)
                        if args.val_interval > 0 and self.dist.is_root else None)
        per_device = self.per_device = max(1, args.batch_size // len(self.ctx))
        _reseed(args.seed, -1, 0)  # the same initial weights on every run (rank 0's are broadcast)
        self.net, self.cfg = build_network(args, self.train_set.classes, per_device, self.ctx)
        self.loss = MaskRCNNLoss()
        if args.hybridize:
            self.net.hybridize(static_alloc=args.static_alloc)
            self.loss.hybridize()
        self.loader, self.sampler = train_loader(
            self.train_set, TrainTransform(self.cfg["short"], self.cfg["max_size"]),
            RPNTargetGenerator.from_preset(self.cfg), per_device * len(self.ctx), args.num_workers,
            args.seed, self.dist.num_workers, self.dist.rank)
        self.iters_per_epoch = len(self.sampler)
        total_batch = per_device * len(self.ctx) * self.dist.num_workers
        self.base_lr = args.lr if args.lr else default_lr(total_batch)
        self.trainer = self.dist.trainer(self.net.collect_train_params(), "sgd", {
            "learning_rate": self.base_lr, "wd": args.wd, "momentum": args.momentum})
        self.clip_norm = args.clip_gradient if args.clip_gradient and args.clip_gradient > 0 else None
        self.dist.broadcast_parameters(self.net)
        self.state = dict(epoch=0, iteration=0, best_segm_ap=-1.0, args=vars(args))

    def lr(self, iteration):
        a = self.args
        decay = [int(e) * self.iters_per_epoch for e in str(a.lr_decay_epoch).split(",") if e.strip()]
        return learning_rate(iteration, self.base_lr, a.epochs * self.iters_per_epoch,
                             warmup_iters=a.lr_warmup, mode=a.lr_mode, decay_iters=decay,
                             decay_factor=a.lr_decay)

    def checkpoint(self, name):
        if self.dist.is_root:
            return save_checkpoint("%s-%s" % (self.args.save_prefix, name), self.net, self.trainer, self.state)
        return None


def _reseed(seed, epoch, rank):
    """Every epoch starts from RNG states that depend only on (seed, epoch, rank)."""
    mx.random.seed(seed * 7919 + epoch * 31 + rank)
    np.random.seed((seed * 7919 + epoch * 31 + rank) % (2 ** 31))


def _train_step(run, batch):
    """Forward, backward and update on one batch; returns the summed losses as floats."""
    from ..data.batchify import split_batch

    parts = split_batch(batch, run.ctx)
    with autograd.record():
        per_device = [forward_losses(run.net, run.loss, *part) for part in parts]
        totals = [sum(losses) for losses in per_device]
    autograd.backward(totals)
    values = {name: sum(float(losses[i].asscalar()) for losses in per_device) / len(parts)
              for i, name in enumerate(LOSS_NAMES)}
    values["total"] = sum(values[name] for name in LOSS_NAMES)
    if not math.isfinite(values["total"]):
        path = run.checkpoint("nonfinite")
        raise NonFiniteLossError("loss became %s at epoch %d, iteration %d (%s); the state before "
                                 "this step is saved as %s. Lower --lr or set --clip-gradient."
                                 % (values["total"], run.state["epoch"], run.state["iteration"],
                                    ", ".join("%s=%.4g" % kv for kv in values.items()), path))
    if run.clip_norm:
        _clip_global_norm(run.net, run.ctx, run.clip_norm)
    run.trainer.step(run.dist.step_scale(len(parts)))
    return values


def _clip_global_norm(net, ctx, max_norm):
    """Rescale each device's gradients so that their global L2 norm is at most ``max_norm``.

    Unlike ``gluon.utils.clip_global_norm``, gradients under the limit are left untouched
    instead of being multiplied by 1 (a pass over every gradient, ~4% of a small model's step).
    """
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    for device in ctx:
        grads = [p.grad(device) for p in params]
        flat = [g.reshape((-1,)) for g in grads]  # dot of flat views: MXNet's norm op is ~20x slower
        total = math.sqrt(nd.add_n(*[nd.dot(f, f) for f in flat]).asscalar())
        if total > max_norm:
            for grad in grads:
                grad *= max_norm / total


def _evaluate(run, epoch):
    from .visualize import save_gallery

    args = run.args
    # A hybridized graph is traced for one call signature: re-trace for inference, and back.
    run.net._clear_cached_op()
    metrics = evaluate(run.net, run.val_set, ctx=run.ctx[:1],
                       results_file="%s_val_results.json" % args.save_prefix)
    logger.info("epoch %d validation\n%s", epoch, format_metrics(metrics))
    save_gallery(run.net, run.val_set, args.save_prefix + "_predictions.png", ctx=run.ctx[0])
    run.net._clear_cached_op()
    losses = {}
    if args.val_loss:
        values = validation_losses(run.net, run.loss, run.val_set, run.cfg, run.ctx[0],
                                   run.per_device, seed=args.seed)
        losses = {"val_" + name: value for name, value in values.items()}
        logger.info("epoch %d validation loss %.4f", epoch, values["total"])
    run.log.write("eval", epoch=epoch, iteration=run.state["iteration"], bbox_AP=metrics["bbox"]["AP"],
                  segm_AP=metrics["segm"]["AP"], metrics=metrics, **losses)
    plot_curves(run.log.read(), args.save_prefix + "_curves.png")
    if metrics["segm"]["AP"] > run.state["best_segm_ap"]:
        run.state["best_segm_ap"] = metrics["segm"]["AP"]
        run.checkpoint("best")
    return metrics


def _resume(run):
    args = run.args
    state = load_checkpoint(args.resume, run.net, run.trainer, ctx=run.ctx)
    run.state.update(epoch=state["epoch"], iteration=state["iteration"],
                     best_segm_ap=state.get("best_segm_ap", -1.0))
    logger.info("resumed from %s at epoch %d", args.resume, state["epoch"])


def fit(args):
    """Train as ``args`` say; returns the run state (epoch, iteration, best AP, last metrics)."""
    from .progress import Progress

    run = _Run(args)
    if args.resume:
        _resume(run)
    elif args.start_epoch:
        run.state["epoch"] = args.start_epoch
    for epoch in range(run.state["epoch"], args.epochs):
        _reseed(args.seed, epoch, run.dist.rank)
        run.sampler.set_epoch(epoch)
        mean = RunningMean()
        progress = Progress(run.iters_per_epoch, "epoch %d/%d" % (epoch + 1, args.epochs),
                            enabled=run.dist.is_root and not args.quiet)
        for i, batch in enumerate(run.loader):
            run.trainer.set_learning_rate(run.lr(run.state["iteration"]))
            values = _train_step(run, batch)
            mean.update(values)
            run.state["iteration"] += 1
            progress.update(mean.means(), batch[0].shape[0])
            if run.log and (i + 1) % args.log_interval == 0:
                run.log.write("interval", epoch=epoch, iteration=run.state["iteration"],
                              lr=run.trainer.learning_rate, **mean.means())
        progress.close()
        run.state["epoch"] = epoch + 1
        if run.log:
            run.log.write("epoch", epoch=epoch, iteration=run.state["iteration"], **mean.means())
        run.checkpoint("last")
        if run.val_set is not None and ((epoch + 1) % args.val_interval == 0 or epoch + 1 == args.epochs):
            run.state["last_metrics"] = _evaluate(run, epoch + 1)
            run.checkpoint("last")
    if run.log:
        plot_curves(run.log.read(), args.save_prefix + "_curves.png")
    run.dist.close()
    return dict(run.state, net=run.net, rank=run.dist.rank)
