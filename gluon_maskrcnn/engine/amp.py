"""Mixed precision (``--amp``): MXNet's AMP casts the graph to float16 on GPUs; the losses are
scaled so that small gradients survive float16, with the scale adjusted as training goes.

:class:`DynamicLossScaler` is plain Python so that its logic is tested on CPU: a step whose
gradients overflow (inf or NaN) is skipped and the scale halves; after ``growth_interval``
clean steps in a row it doubles. Its state goes into the checkpoint.
"""
import math

import mxnet as mx
from mxnet import nd

from ..errors import UserError

__all__ = ["DynamicLossScaler", "enable_amp", "init_amp", "gradients_finite", "FLOAT32_OPERATORS"]

# Operators that AMP must run in float32 beyond MXNet's own list (mxnet.contrib.amp.lists), each
# with its reason. AMP casts the inputs of a listed operator to float32; an operator in no list
# keeps its inputs' types, and one whose inputs mix float16 and float32 fails type inference.
FLOAT32_OPERATORS = {
    "_contrib_box_decode": "decodes deltas from float16 layers onto float32 anchors and ROIs (two "
                           "input types), and box coordinates need float32's precision at 1333 px",
}


class DynamicLossScaler:
    """The loss scale of mixed-precision training (MXNet's AMP defaults: 2**16, x2 every 2000
    clean steps, /2 on overflow)."""

    def __init__(self, init_scale=2.0 ** 16, factor=2.0, growth_interval=2000, min_scale=1.0):
        self.scale = float(init_scale)
        self.factor = float(factor)
        self.growth_interval = int(growth_interval)
        self.min_scale = float(min_scale)
        self.clean_steps = 0

    def update(self, finite):
        """Record a step whose gradients were ``finite``; returns whether to apply it."""
        if not finite:
            self.scale = max(self.min_scale, self.scale / self.factor)
            self.clean_steps = 0
            return False
        self.clean_steps += 1
        if self.clean_steps >= self.growth_interval:
            self.scale *= self.factor
            self.clean_steps = 0
        return True

    def state_dict(self):
        return {"scale": self.scale, "clean_steps": self.clean_steps}

    def load_state_dict(self, state):
        self.scale = float(state["scale"])
        self.clean_steps = int(state["clean_steps"])


def gradients_finite(params, ctx):
    """Whether every gradient of ``params`` on ``ctx`` is finite (one reduction, one sync)."""
    grads = [p.grad(ctx).reshape((-1,)) for p in params if p.grad_req != "null"]
    if not grads:
        return True
    total = nd.add_n(*[nd.sum(nd.abs(g)) for g in grads]).asscalar()
    return math.isfinite(float(total))


def enable_amp(contexts):
    """Turn MXNet's AMP on before the network is built; GPUs only (float16 kernels).

    Raises ValueError naming the flag when a context is not a GPU.
    """
    if any(ctx.device_type != "gpu" for ctx in contexts):
        raise UserError("--amp: mixed precision needs GPUs (--gpus 0,1,...) and a CUDA build of "
                         "MXNet (pip install .[cu112]); MXNet's float16 kernels do not run on CPU")
    init_amp()
    return mx.context.num_gpus()


def init_amp():
    """MXNet's ``amp.init()`` (float16), with ``FLOAT32_OPERATORS`` added to its float32
    list. Patches MXNet's operator functions for the whole process: call it before building."""
    from mxnet.contrib import amp
    from mxnet.contrib.amp.lists import symbol_fp16

    float32 = list(symbol_fp16.FP32_FUNCS) + [op for op in FLOAT32_OPERATORS if op not in symbol_fp16.FP32_FUNCS]
    amp.init(target_dtype="float16", fp32_ops=float32)
