"""The only calls into MXNet's and GluonCV's non-public names, each with the reason.

MXNet 1.9.1 and GluonCV 0.10.5 offer no public call for these steps. Keeping every use here
means one file to read when either library changes, and no private name anywhere else.
"""

__all__ = ["gluoncv_model_sha1", "structural_params", "kvstore_barrier", "init_trainer_kvstore", "trainer_params",
           "gluoncv_roi_settings", "gluoncv_pyramid_pooling", "set_gluoncv_pyramid_pooling",
           "set_gluoncv_max_dets", "gluoncv_sampler_settings", "onnx_translations", "mxnet_onnx_graph",
           "close_dataloader_workers", "child_blocks", "trainer_updaters", "optimizer_update_counts",
           "set_optimizer_update_counts"]


def gluoncv_model_sha1():
    """{file name: sha1} of GluonCV's published parameter files (GluonCV keeps the table private)."""
    from gluoncv.model_zoo.model_store import _model_sha1

    return dict(_model_sha1)


def structural_params(block):
    """{structural name: Parameter}, the names ``save_parameters`` writes (``features.0.weight``);
    ``collect_params`` keys by prefixed names instead, and Gluon exposes only the private call."""
    return block._collect_params_with_prefix()


def kvstore_barrier(kv):
    """Wait until every worker of a dist kvstore reaches this point (MXNet's Python API exposes
    its barrier only as ``_barrier``)."""
    kv._barrier()


def init_trainer_kvstore(trainer):
    """Make ``gluon.Trainer`` create its kvstore and initialise the parameters not yet in it, which
    it otherwise does lazily inside the first ``step`` or ``allreduce_grads``."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    trainer._init_params()


def trainer_updaters(trainer):
    """The per-device updaters of a ``gluon.Trainer`` that updates on the workers: they hold the
    optimizer states. Gluon reaches them only through ``save_states``/``load_states``, which
    pickle them, and checkpoints must not unpickle what they are handed."""
    return list(trainer._updaters)


def optimizer_update_counts(optimizer):
    """{parameter index: updates so far} of an MXNet optimizer (kept private by MXNet)."""
    return dict(optimizer._index_update_count)


def set_optimizer_update_counts(optimizer, counts):
    """Restore :func:`optimizer_update_counts` (and ``num_update``, their largest value)."""
    optimizer._index_update_count = {int(k): int(v) for k, v in counts.items()}
    optimizer.num_update = max(optimizer._index_update_count.values(), default=0)


def trainer_params(trainer):
    """The parameters a ``gluon.Trainer`` updates, in its kvstore key order."""
    return list(trainer._params)


def gluoncv_roi_settings(net):
    """(roi_size, strides, roi_mode) of a GluonCV R-CNN, which it keeps in private attributes."""
    return net._roi_size, net._strides, net._roi_mode


def gluoncv_pyramid_pooling(net):
    """The unbound FPN ROI pooling method of a GluonCV R-CNN's class."""
    return type(net)._pyramid_roi_feats


def set_gluoncv_pyramid_pooling(net, pool):
    """Replace a GluonCV R-CNN's FPN ROI pooling by ``pool(F, feats, rois, ...)``."""
    net._pyramid_roi_feats = pool


def set_gluoncv_max_dets(net, max_dets):
    """Detections per image of a GluonCV R-CNN. Its R50/R101 builders fix ``rcnn_max_dets=1000``
    and pass the user's keywords as well, so the keyword cannot change it."""
    net._rcnn_max_dets = max_dets


def gluoncv_sampler_settings(net):
    """A GluonCV R-CNN's ROI sampler settings, which it keeps private: a dict of ``num_sample``,
    ``max_pos``, ``max_num_gt`` and ``num_proposal``."""
    sampler = net.sampler
    return dict(num_sample=sampler._num_sample, max_pos=sampler._max_pos,
                max_num_gt=sampler._max_num_gt, num_proposal=sampler._num_proposal)


def onnx_translations():
    """{opset: {MXNet operator: translation}} of MXNet's ONNX exporter, which keeps its registry
    on a class of a private module; its public ``export_model`` offers neither the opset nor a
    way to add a translation."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    return MXNetGraph.registry_


def mxnet_onnx_graph(sym, params, input_shape, opset, dynamic_shape):
    """MXNet's ONNX translation of ``sym`` as an ONNX GraphProto, at ``opset``.

    MXNet's public ``export_model`` uses the installed ``onnx``'s newest opset whatever its
    translations were written for (12 and 13); the graph builder it calls takes the opset."""
    from onnx import TensorProto
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    return MXNetGraph().create_onnx_graph_proto(sym, params, [input_shape], [TensorProto.FLOAT],
                                                opset_version=opset, dynamic=True,
                                                dynamic_input_shapes=[dynamic_shape])


def close_dataloader_workers(loader):
    """End a ``DataLoader``'s worker processes by closing their pool: each exits after its last
    task. MXNet's ``DataLoader.__del__`` calls ``Pool.terminate`` instead, one SIGTERM per
    worker, which workers forked inside the trainer's ``StopSignals`` take as a stop request
    and outlive: the join then waits forever. The pool is a private attribute."""
    pool = getattr(loader, "_worker_pool", None)
    if pool is None:
        return
    loader._worker_pool = None
    pool.close()
    pool.join()


def child_blocks(block):
    """The direct children of a Gluon block (Gluon keeps them in a private dict)."""
    return list(block._children.values())
