"""One settled forward pass: shapes and initial values for every parameter, safely readable.

MXNet's oneDNN convolution, in inference mode, reorders its weight into oneDNN's layout in
place, with an operation it pushes to the engine while it runs. Reading a parameter from
Python (``asnumpy``, ``save_parameters``) waits only for the writes already pushed, so a read
right after an inference pass can overlap that reorder and copy half-reordered values.
Waiting for every operation first closes that window.
"""
import mxnet as mx

__all__ = ["forward_once"]


def forward_once(net, image_shape=(64, 64), ctx=None):
    """Run ``net`` on a (1, 3, H, W) zero image and wait for all of MXNet's pending work.

    ``ctx``: the input's context (default: the first context of the network's parameters).
    Returns the network's outputs.
    """
    if ctx is None:
        ctx = net.collect_params().list_ctx()[0]
    outputs = net(mx.nd.zeros((1, 3) + tuple(image_shape), ctx=ctx))
    mx.nd.waitall()
    return outputs
