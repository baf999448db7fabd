"""The training loop: data-parallel over contexts and machines, exact resume, evaluation.

``fit(args)`` is what ``scripts/train_mask_rcnn.py`` calls; ``args`` is the script's namespace
(see :func:`gluon_maskrcnn.engine.cli.build_parser`).
"""
import concurrent.futures
import logging
import sys
import math
import os
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, nd

from ..data.coco import COCOInstances, DataError
from ..data.loader import train_loader
from ..data.rpn_targets import RPNTargetGenerator
from ..data.transforms import TrainTransform
from ..errors import UserError
from ..internals import close_dataloader_workers
from ..model_zoo import get_model, get_model_list, model_config
from ..modeling.losses import LOSS_NAMES
from ..modeling.norm import reserve_cpu_temp_space
from ..modeling.warmup import forward_once
from .amp import DynamicLossScaler, enable_amp, gradients_finite
from .checkpoint import (checkpoint_args, find_latest_checkpoint, iteration_checkpoint_name, link_checkpoint,
                         load_checkpoint, prune_checkpoints, save_checkpoint)
from .cli import contexts
from .custom_model import custom_model_overrides
from .distributed import Distributed
from .evaluation import evaluate, format_metrics, format_per_class, nvidia_coco_api
from .loading import load_model, model_name
from .metrics import MetricsLog, RunningMean, plot_curves
from .tensorboard import TensorBoardLog
from .preemption import PREEMPTED_EXIT_CODE, StopSignals, TrainingStopped
from .recipes import MODEL_SIZE_KEYS
from .schedule import default_lr, default_warmup, learning_rate
from .validation import validation_losses

__all__ = ["fit", "train_command", "apply_gpu_settings", "GPU_SETTINGS", "TrainingStopped", "train_step", "forward_backward", "network_spec", "NonFiniteLossError",
           "WorkersDivergedError", "build_network", "clip_summed_gradients", "contexts", "no_bias_decay"]

logger = logging.getLogger("gluon_maskrcnn")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; a checkpoint of the state before the step was saved."""


class WorkersDivergedError(RuntimeError):
    """Distributed workers ended an epoch with different parameters."""


def network_spec(args, per_device_batch, num_devices):
    """(zoo name, get_model keywords) that the training flags ask for."""
    overrides = dict(per_device_batch_size=per_device_batch, rpn_beta=args.rpn_smoothl1_rho,
                     rcnn_beta=args.rcnn_smoothl1_rho)
    for key in MODEL_SIZE_KEYS + ("norm",):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if args.norm == "syncbn":
        overrides["num_devices"] = num_devices  # the devices of this process share statistics
    if args.train_all:
        overrides["train_patterns"] = None
    custom = bool(getattr(args, "custom_model", None))
    if custom:  # GluonCV's custom-model sub-command
        overrides = dict(custom_model_overrides(args), **overrides)
    name = model_name(args.network, args.use_fpn, args.norm, custom)
    if name not in get_model_list():
        fpn = " --use-fpn" if args.use_fpn else ""
        raise UserError("--network %s%s: the zoo has no %s; use one of %s, or the custom-model "
                        "sub-command for any GluonCV ResNet or mobilenet1.0"
                        % (args.network, fpn, name, ", ".join(get_model_list()[:-1])))
    return name, overrides


def build_network(args, classes, per_device_batch, ctx):
    """(network, its preset) for ``args`` with the data's classes; everything trainable gets a
    gradient."""
    name, overrides = network_spec(args, per_device_batch, len(ctx))
    if checkpoint_args(args.pretrained) is not None:  # fine-tune one of our runs: new classes
        net = load_model(args.pretrained, ctx=ctx[0], **overrides)
        if list(net.classes) != list(classes):
            net.reset_class(classes)
    else:
        pretrained_base = getattr(args, "pretrained_base", None) or (
            not args.no_pretrained_base and not getattr(args, "custom_no_pretrained_base", False))
        net = get_model(name, pretrained=args.pretrained or False, pretrained_base=pretrained_base,
                        classes=classes, ctx=ctx[0], **overrides)
    _materialize(net, ctx[0])
    net.collect_params().reset_ctx(ctx)  # fresh arrays, in MXNet's layout (see _materialize)
    trainable = set(net.collect_train_params().values())
    for param in net.collect_params().values():
        if param not in trainable:
            param.grad_req = "null"
    return net, model_config(name, **overrides)


def no_bias_decay(params):
    """GluonCV's recipe: no weight decay on biases (``wd_mult`` 0 on the names that end in
    ``bias``; BatchNorm's ``beta`` and ``gamma`` keep it). Returns ``params``."""
    for name, param in params.items():
        if name.endswith("bias"):
            param.wd_mult = 0.0
    return params


def _materialize(net, ctx):
    """Give every parameter its shape and initial value now, with one small inference pass.

    Gluon would otherwise initialise most weights at the first training forward, from each
    worker's random state at that moment, and a dist kvstore sends rank 0's weights only at the
    first update: every other worker's first gradient would come from other weights.
    oneDNN's inference reorders convolution weights into its own layout in place, which a
    kvstore or Horovod cannot send: ``reset_ctx`` afterwards copies them into new arrays in
    MXNet's layout.
    """
    forward_once(net, (128, 128), ctx)


class _Run:
    """State of one training run (kept small: the loop itself lives in :func:`fit`)."""

    def __init__(self, args):
        self.args = args
        self.dist = Distributed(args.kv_store, args.horovod)
        self.ctx = self.dist.device_contexts(contexts(args))  # Horovod: the local rank's device
        self.syncbn_on_cpus = args.norm == "syncbn" and len(self.ctx) > 1 and self.ctx[0].device_type == "cpu"
        if self.syncbn_on_cpus:
            reserve_cpu_temp_space()  # before any operator: MXNet reads it once
        self.out_dir = os.path.dirname(os.path.abspath(args.save_prefix)) or "."
        self.log = None
        if self.dist.is_root:
            board = TensorBoardLog(args.tensorboard) if getattr(args, "tensorboard", None) else None
            self.log = MetricsLog(args.save_prefix + "_metrics.jsonl", tensorboard=board)
        self.train_set = _dataset(args, args.train_split, "--train-split", skip_empty=True)
        self.val_set = (_dataset(args, args.val_split, "--val-split", skip_empty=False)
                        if args.val_interval > 0 else None)  # every worker evaluates a shard
        per_device = self.per_device = max(1, args.batch_size // len(self.ctx))
        self.loss_scaler = None
        if args.amp:  # before the network is built: AMP patches the operators it traces
            enable_amp(self.ctx)
            self.loss_scaler = DynamicLossScaler()
        _reseed(args.seed, -1)  # the same initial weights on every worker (and rank 0's are broadcast)
        self.net, self.cfg = build_network(args, self.train_set.classes, per_device, self.ctx)
        if self.syncbn_on_cpus:  # see reserve_cpu_temp_space: MXNet's operators only
            self.net.fast_ops = False
        if args.use_ext and not nvidia_coco_api():
            logger.info("--use-ext: NVIDIA's COCO API is not installed; evaluating with pycocotools")
        if args.verbose:
            logger.info("settings: %s", vars(args))
            logger.info("trainable parameters: %s", ", ".join(self.net.collect_train_params().keys()))
        if args.hybridize:
            self.net.hybridize(static_alloc=args.static_alloc)  # the net's loss block too
        # every worker takes its slice of the same global batches, and every image's random
        # choices come from its own seed: a step is the same computation at any scale
        self.loader, self.sampler = train_loader(
            self.train_set, TrainTransform(self.cfg["short"], self.cfg["max_size"]),
            RPNTargetGenerator.from_preset(self.cfg), per_device * len(self.ctx), args.num_workers,
            args.seed, self.dist.num_workers, self.dist.rank, roi_key_count=self.net.sampler.key_count)
        self.iters_per_epoch = len(self.sampler)
        self.total_parts = len(self.ctx) * self.dist.num_workers  # devices a global step spans
        total_batch = per_device * self.total_parts
        self.base_lr = args.lr if args.lr else default_lr(total_batch)
        self.warmup = args.lr_warmup if args.lr_warmup is not None else default_warmup(total_batch)
        params = no_bias_decay(self.net.collect_train_params())
        self.trainer = self.dist.trainer(params, "sgd", {
            "learning_rate": self.base_lr, "wd": args.wd, "momentum": args.momentum})
        self.clip_norm = args.clip_gradient if args.clip_gradient and args.clip_gradient > 0 else None
        self.dist.broadcast_parameters(self.net)
        self.global_batch = total_batch
        # epoch: epochs done; epoch_batches: batches done of the next one (a mid-epoch checkpoint),
        # in global batches of this run's shape; epoch_done_before: [(global batch, workers,
        # batches)] of the same epoch trained by runs of other shapes; images_seen: all epochs
        self.state = dict(epoch=0, epoch_batches=0, epoch_done_before=[], iteration=0, images_seen=0,
                          best_segm_ap=-1.0, args=vars(args), shape=self.shape(),
                          classes=list(self.net.classes))  # so a checkpoint loads without its dataset

    def shape(self):
        """The job's shape, recorded in checkpoints: workers, devices each, global batch."""
        return {"workers": self.dist.num_workers, "devices": len(self.ctx), "global_batch": self.global_batch}

    def lr(self, iteration):
        a = self.args
        decay = [int(e) * self.iters_per_epoch for e in str(a.lr_decay_epoch).split(",") if e.strip()]
        return learning_rate(iteration, self.base_lr, a.epochs * self.iters_per_epoch,
                             warmup_iters=self.warmup, warmup_factor=a.lr_warmup_factor,
                             mode=a.lr_mode, decay_iters=decay, decay_factor=a.lr_decay)

    def checkpoint(self, name):
        """Write ``PREFIX-name`` (rank 0 only); returns its prefix."""
        if self.loss_scaler is not None:
            self.state["loss_scale"] = self.loss_scaler.state_dict()
        if self.dist.is_root:
            return save_checkpoint("%s-%s" % (self.args.save_prefix, name), self.net, self.trainer, self.state)
        return None

    def save_progress(self, epoch_mean, also=()):
        """The resumable checkpoint of this iteration: ``PREFIX-iterNNNNNNN``, then ``PREFIX-last``
        (and the names in ``also``) pointed at the same files, then the numbered ones beyond
        ``--keep-checkpoints`` deleted. At every moment one complete checkpoint exists."""
        self.state["epoch_mean"] = epoch_mean.state_dict()
        self.state["numpy_rng"] = _numpy_rng_state()
        numbered = self.checkpoint(iteration_checkpoint_name(self.state["iteration"]))
        if numbered is None:
            return None
        prefix = self.args.save_prefix
        for name in ("last",) + tuple(also):
            link_checkpoint(numbered, "%s-%s" % (prefix, name))
        prune_checkpoints(prefix, self.args.keep_checkpoints or 0)
        return prefix + "-last"


def _numpy_rng_state():
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_rng_state(state):
    kind, keys, pos, has_gauss, cached = state
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _dataset(args, split, flag, skip_empty):
    """The split's dataset; a missing or unreadable annotation file names the flags to check."""
    try:
        return COCOInstances(args.dataset_root, split, skip_empty=skip_empty)
    except DataError as err:
        raise DataError("%s (check --dataset-root %s and %s %s)" % (err, args.dataset_root, flag, split)) from None


def _reseed(seed, epoch):
    """Every epoch starts from RNG states that depend only on (seed, epoch), the same on every
    worker (each image's random choices have seeds of their own: see ``SeededTrainView``)."""
    mx.random.seed(seed * 7919 + epoch * 31)
    np.random.seed((seed * 7919 + epoch * 31) % (2 ** 31))


def train_step(run, batch):
    """Forward, backward and update on one batch; returns the mean losses as floats (and,
    with clipping, ``grad_norm``).

    The gradients are summed over devices and workers first, then clipped by the norm of the
    gradient the update applies (that sum over the global step's devices), so that clipping
    is the same at every scale.
    """
    from ..data.batchify import split_batch

    parts = split_batch(batch, run.ctx)
    scale = run.loss_scaler.scale if getattr(run, "loss_scaler", None) else None
    per_device = forward_backward(run.net, parts, executor_threads(run), scale)
    values = {name: sum(float(losses[i].asscalar()) for losses in per_device) / len(parts)
              for i, name in enumerate(LOSS_NAMES)}
    values["total"] = sum(values[name] for name in LOSS_NAMES)
    if not math.isfinite(values["total"]):
        path = run.checkpoint("nonfinite")
        raise NonFiniteLossError("loss became %s at epoch %d, iteration %d (%s); the state before "
                                 "this step is saved as %s. Lower --lr or set --clip-gradient."
                                 % (values["total"], run.state["epoch"], run.state["iteration"],
                                    ", ".join("%s=%.4g" % kv for kv in values.items()), path))
    run.dist.allreduce_grads(run.trainer)  # every device now holds the sum over the global step
    step_scale = run.dist.step_scale(len(parts))
    if scale is not None:  # mixed precision: skip a step whose scaled gradients overflowed
        finite = gradients_finite(run.net.collect_train_params().values(), run.ctx[0])
        values["loss_scale"] = scale
        if not run.loss_scaler.update(finite):
            logger.info("iteration %d: gradients overflowed at loss scale %g; step skipped",
                        run.state["iteration"], scale)
            return values
        step_scale *= scale  # the update divides the summed gradients by this
    if run.clip_norm:  # logged: the applied gradient's norm before clipping
        values["grad_norm"] = clip_summed_gradients(run.net, run.ctx, run.clip_norm,
                                                    run.total_parts * (scale or 1.0))
    run.trainer.update(step_scale)
    return values


def executor_threads(run):
    """Threads for the devices' forward and backward (``--executor-threads``)."""
    return getattr(getattr(run, "args", None), "executor_threads", 1) or 1


def forward_backward(net, parts, threads=1, loss_scale=None):
    """The losses of each device's part of a batch, after their backward pass.

    With ``threads`` > 1 the devices run in that many threads, as GluonCV's
    ``--executor-threads`` does (each device's graph is its own, so the gradients are the same);
    ``loss_scale`` multiplies the losses before the backward pass (mixed precision).
    """
    def scaled(losses):
        total = sum(losses)
        return total * loss_scale if loss_scale is not None else total

    if threads > 1 and len(parts) > 1:
        def one(part):
            with autograd.record():
                losses = net.losses(*part)
                total = scaled(losses)
            total.backward()
            return losses

        # the first device in this thread: a hybridized net traces its graph on a call, and
        # Gluon's tracing is not thread-safe; the others then run the traced graph in threads
        first = one(parts[0])
        with concurrent.futures.ThreadPoolExecutor(min(threads, len(parts) - 1)) as pool:
            return [first] + list(pool.map(one, parts[1:]))
    with autograd.record():
        per_device = [net.losses(*part) for part in parts]
        totals = [scaled(losses) for losses in per_device]
    autograd.backward(totals)
    return per_device


def clip_summed_gradients(net, ctx, max_norm, num_parts):
    """Clip gradients summed over ``num_parts`` devices so that their mean's global L2 norm, the
    gradient an update applies, is at most ``max_norm``; returns that norm before clipping.

    Every device (and worker) holds the same sum, so all compute the same norm and factor.
    Gradients under the limit are left untouched (a pass over every gradient, ~4% of a small
    model's step), unlike ``gluon.utils.clip_global_norm``.
    """
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    flat = [p.grad(ctx[0]).reshape((-1,)) for p in params]  # dot of flat views: MXNet's norm op is ~20x slower
    norm = math.sqrt(nd.add_n(*[nd.dot(f, f) for f in flat]).asscalar()) / num_parts
    if norm > max_norm:
        for param in params:
            for grad in param.list_grad():
                grad *= max_norm / norm
    return norm


def _check_workers_agree(run, epoch):
    """With several workers, compare every parameter's bytes across them (a digest each)."""
    if run.dist.num_workers == 1:
        return
    differing = run.dist.differing_parameters(run.net)
    if differing:
        raise WorkersDivergedError("after epoch %d the workers' parameters differ from rank 0's: %s"
                                   % (epoch + 1, "; ".join("rank %d in %s" % (rank, ", ".join(names[:5]))
                                                           for rank, names in sorted(differing.items()))))
    logger.info("epoch %d: parameters identical on all %d workers", epoch + 1, run.dist.num_workers)


def _evaluate(run, epoch):
    """Every worker predicts its shard of the val split; all get the metrics, and rank 0 logs
    them, draws the gallery, computes the validation loss and keeps the best checkpoint."""
    from .visualize import save_gallery

    args = run.args
    # A hybridized graph is traced for one call signature: re-trace for inference, and back.
    run.net.retrace()
    metrics = evaluate(run.net, run.val_set, ctx=run.ctx[:1],
                       results_file="%s_val_results.json" % args.save_prefix if run.dist.is_root else None,
                       shard=(run.dist.rank, run.dist.num_workers), all_gather=run.dist.all_gather,
                       use_ext=args.use_ext, evaluator=getattr(args, "coco_evaluator", "pycocotools"))
    if not run.dist.is_root:
        run.net.retrace()
        return metrics
    logger.info("epoch %d validation\n%s\nper class (AP)\n%s", epoch, format_metrics(metrics),
                format_per_class(metrics))
    save_gallery(run.net, run.val_set, args.save_prefix + "_predictions.png", ctx=run.ctx[0])
    if run.log.tensorboard is not None:
        run.log.tensorboard.image("val/predictions", args.save_prefix + "_predictions.png", run.state["iteration"])
    run.net.retrace()
    losses = {}
    if args.val_loss:
        values = validation_losses(run.net, run.val_set, run.cfg, run.ctx,  # all: SyncBN's barrier
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
    """Load ``--resume`` (``auto``: rank 0's newest complete checkpoint of ``--save-prefix``, or
    nothing)."""
    args = run.args
    prefix, state = args.resume, None
    if args.resume == "auto":
        prefix, state = find_latest_checkpoint(args.save_prefix) if run.dist.is_root else (None, None)
        prefix = run.dist.all_gather(prefix)[0]  # every worker loads rank 0's choice
        if prefix is None:
            logger.info("--resume auto: no complete checkpoint of %s; starting fresh", args.save_prefix)
            return
    state = load_checkpoint(prefix, run.net, run.trainer, ctx=run.ctx, verified_state=state)
    run.state.update(epoch=state["epoch"], epoch_batches=state.get("epoch_batches", 0),
                     epoch_done_before=state.get("epoch_done_before", []),
                     iteration=state["iteration"], best_segm_ap=state.get("best_segm_ap", -1.0))
    saved_shape = state.get("shape", run.shape())  # checkpoints before shapes were kept: this one
    run.state["images_seen"] = state.get("images_seen", state["iteration"] * saved_shape["global_batch"])
    if saved_shape != run.shape():
        _reshape_schedule(run, saved_shape)
    for key in ("epoch_mean", "numpy_rng", "last_metrics"):
        if key in state:
            run.state[key] = state[key]
    if run.loss_scaler is not None and "loss_scale" in state:
        run.loss_scaler.load_state_dict(state["loss_scale"])
    if run.log:
        run.log.drop_after(state["iteration"])
    logger.info("resumed from %s at epoch %d, batch %d of %d (iteration %d)", prefix, state["epoch"] + 1,
                run.state["epoch_batches"], run.iters_per_epoch, state["iteration"])


def _reshape_schedule(run, saved):
    """Continue a checkpoint of another job shape (workers x devices x images per device).

    The rest of the interrupted epoch is its images not yet seen, in this run's global batches
    (``epoch_done_before`` keeps the parts trained in other shapes). The iteration count and so
    the learning-rate schedule follow the images seen: iteration = images seen // this run's
    global batch, on this run's schedule (its warm-up, decay epochs and, unless ``--lr`` was
    given, its linearly scaled base rate), so every point of the schedule comes after the same
    number of images whatever the shape. Momentum is kept as it was.
    """
    state = run.state
    if state["epoch_batches"]:
        state["epoch_done_before"] = state["epoch_done_before"] + [
            [saved["global_batch"], saved["workers"], state["epoch_batches"]]]
    state["epoch_batches"] = 0
    iteration = state["images_seen"] // run.global_batch
    logger.info("resumed a checkpoint of %d workers x %d devices on %d x %d: global batch %d -> %d; "
                "%d images seen, iteration %d -> %d", saved["workers"], saved["devices"], run.dist.num_workers,
                len(run.ctx), saved["global_batch"], run.global_batch, state["images_seen"],
                state["iteration"], iteration)
    state["iteration"] = iteration


def _start_epoch(run, epoch):
    """Position the data and RNGs at the start of ``epoch``, or where a mid-epoch checkpoint
    stopped; returns (epoch's running loss mean, batches already done, batches left)."""
    _reseed(run.args.seed, epoch)
    mean = RunningMean()
    resumed = epoch == run.state["epoch"]
    done = run.state.get("epoch_batches", 0) if resumed else 0
    done_before = run.state.get("epoch_done_before", []) if resumed else []
    if done or done_before:
        mean.load_state_dict(run.state["epoch_mean"])
        _set_numpy_rng_state(run.state["numpy_rng"])
    run.sampler.set_epoch(epoch, skip=done, done_before=done_before)
    run.state["epoch_done_before"] = done_before
    return mean, done, len(run.sampler)


def _train_epoch(run, epoch, stop):
    """One epoch (or its rest); raises :class:`~gluon_maskrcnn.engine.preemption.TrainingStopped` after a signal."""
    from .progress import Progress

    args = run.args
    mean, done, left = _start_epoch(run, epoch)
    interval_start, interval_images = time.time(), 0  # throughput of each logged interval
    progress = Progress(left, "epoch %d/%d" % (epoch + 1, args.epochs),
                        enabled=run.dist.is_root and not args.quiet)
    for i, batch in enumerate(run.loader, start=done):
        run.trainer.set_learning_rate(run.lr(run.state["iteration"]))
        values = train_step(run, batch)
        mean.update(values)
        run.state["iteration"] += 1
        run.state["images_seen"] += batch[0].shape[0] * run.dist.num_workers
        run.state["epoch_batches"] = i + 1
        progress.update(mean.means(), batch[0].shape[0])
        interval_images += batch[0].shape[0] * run.dist.num_workers
        if run.log and (i + 1) % args.log_interval == 0:
            now = time.time()
            speed, interval_images, interval_start = interval_images / max(now - interval_start, 1e-9), 0, now
            run.log.write("interval", epoch=epoch, iteration=run.state["iteration"], images_per_sec=speed,
                          lr=run.trainer.learning_rate, **mean.means())
        last_of_epoch = i + 1 == done + left
        saved = None
        if args.save_interval_iters and run.state["iteration"] % args.save_interval_iters == 0 and not last_of_epoch:
            saved = run.save_progress(mean)
        if run.dist.any_worker(stop.requested):  # all workers stop at the same iteration
            progress.close()
            saved = saved or run.save_progress(mean)
            run.dist.close()
            raise TrainingStopped("stopped by %s at epoch %d, batch %d of %d (iteration %d); checkpoint %s; "
                                  "continue with --resume auto" % (stop.requested or "a signal to another worker",
                                                                   epoch + 1, i + 1, done + left,
                                                                   run.state["iteration"], saved), saved)
    progress.close()
    return mean


def _train_epochs(run, stop):
    args = run.args
    if args.resume:
        _resume(run)
    elif args.start_epoch:
        run.state["epoch"] = args.start_epoch
    for epoch in range(run.state["epoch"], args.epochs):
        mean = _train_epoch(run, epoch, stop)
        averaged = run.dist.average_statistics(run.net)  # before evaluating, saving, comparing
        if averaged:
            logger.info("epoch %d: %d running statistics averaged over all devices and workers", epoch + 1, len(averaged))
        _check_workers_agree(run, epoch)
        run.state.update(epoch=epoch + 1, epoch_batches=0, epoch_done_before=[])
        if run.log:
            run.log.write("epoch", epoch=epoch, iteration=run.state["iteration"], **mean.means())
        also = ("epoch%04d" % (epoch + 1),) if args.save_interval and (epoch + 1) % args.save_interval == 0 else ()
        run.save_progress(mean, also)
        if run.val_set is not None and ((epoch + 1) % args.val_interval == 0 or epoch + 1 == args.epochs):
            run.state["last_metrics"] = _evaluate(run, epoch + 1)
            run.save_progress(mean)


# MXNet settings for batches whose image shapes vary, as GluonCV's training script makes them;
# read by MXNet when it first creates a convolution (cuDNN) or a GPU's memory pool, so setting
# them before the first GPU array is in time. A value the user exported wins.
GPU_SETTINGS = {
    "MXNET_CUDNN_AUTOTUNE_DEFAULT": "0",  # otherwise cuDNN re-tunes every new image shape
    "MXNET_GPU_MEM_POOL_TYPE": "Round",  # pool sizes rounded, so that new shapes reuse blocks
    "MXNET_GPU_MEM_POOL_ROUND_LINEAR_CUTOFF": "28",  # powers of two up to 256 MB, then linear
}


def apply_gpu_settings(environ=os.environ):
    """Set ``GPU_SETTINGS`` in ``environ`` where it has no value yet; returns what it set."""
    applied = {key: value for key, value in GPU_SETTINGS.items() if key not in environ}
    environ.update(applied)
    return applied


def fit(args):
    """Train as ``args`` say; returns the run state (epoch, iteration, best AP, last metrics).

    SIGTERM or SIGINT stops it after the step in progress, with a checkpoint, by raising
    :class:`~gluon_maskrcnn.engine.preemption.TrainingStopped`; ``--resume auto`` continues exactly where it stopped.
    """
    apply_gpu_settings()
    with StopSignals() as stop:  # before the DataLoader's workers fork: they inherit it
        run = _Run(args)
        try:
            _train_epochs(run, stop)
        finally:  # the workers ignore the one SIGTERM of MXNet's own clean-up (see StopSignals)
            close_dataloader_workers(run.loader)
            if run.log is not None and run.log.tensorboard is not None:
                run.log.tensorboard.close()
    if run.log:
        plot_curves(run.log.read(), args.save_prefix + "_curves.png")
    run.dist.close()
    return dict(run.state, net=run.net, rank=run.dist.rank)


NONFINITE_EXIT_CODE, DIVERGED_EXIT_CODE = 3, 4


def train_command(args):
    """``fit(args)`` as ``scripts/train_mask_rcnn.py`` runs it; returns the exit code.

    0 done, 2 a user error, 3 a loss became NaN or inf, 4 the workers' parameters differ,
    75 (``PREEMPTED_EXIT_CODE``) stopped by SIGTERM/SIGINT with a checkpoint.

    A dist_sync or Horovod worker that fails on its own ends at once (``os._exit``): a normal
    exit runs MXNet's kvstore destructor, whose barrier the other workers never reach, so the
    failed worker would wait there forever and the job with it. Ended, it is seen by the
    launcher (or ``horovodrun``), which stops the others. Stops that every worker makes at the
    same step (a signal, diverged parameters) end normally.
    """
    distributed = str(args.kv_store).startswith("dist") or bool(args.horovod)
    try:
        state = fit(args)
    except TrainingStopped as err:  # a scheduler re-runs the command with --resume auto
        logger.warning("%s", err)
        return PREEMPTED_EXIT_CODE
    except WorkersDivergedError as err:
        logger.error("%s", err)
        return DIVERGED_EXIT_CODE
    except NonFiniteLossError as err:
        logger.error("%s", err)
        code = NONFINITE_EXIT_CODE
    except Exception as err:
        if not distributed:
            raise
        if isinstance(err, UserError):
            print("error: %s" % err, file=sys.stderr)
            code = 2
        else:
            logger.exception("this worker failed; ending it now so that the launcher stops the job")
            code = 1
    else:
        metrics = state.get("last_metrics")
        if metrics:
            print("final segm AP %.3f, bbox AP %.3f" % (metrics["segm"]["AP"], metrics["bbox"]["AP"]))
        return 0
    if distributed:
        _end_process_now(code)
    return code


def _end_process_now(code):
    """Exit without Python's and MXNet's clean-up (see :func:`train_command`)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
