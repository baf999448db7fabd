"""High-level prediction: images in, per-image instances (pasted masks) out."""
__all__ = ["predict"]


def predict(net, images, ctx=None, score_thresh=0.5, mask_thresh=0.5):
    """Run ``net`` on images (paths or HxWx3 uint8 RGB arrays).

    ``net``: a network, a loaded export, or the path of an export: a ``.onnx`` file (run by ONNX
    Runtime) or the prefix of MXNet's symbol files (see :func:`gluon_maskrcnn.export.export_model`).

    Returns one dict per image with ``boxes`` (N, 4) in original pixels, ``labels`` (N,),
    ``scores`` (N,), ``masks`` (N, H, W) uint8 pasted at the original size, and ``class_names``.
    """
    from .inference import predict_images

    if isinstance(net, str):
        from .export import load_exported

        net = load_exported(net, ctx)
    return predict_images(net, images, ctx=ctx, score_thresh=score_thresh, mask_thresh=mask_thresh)
