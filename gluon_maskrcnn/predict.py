"""High-level prediction: images in, per-image instances (pasted masks) out."""
__all__ = ["predict"]


def predict(net, images, ctx=None, score_thresh=0.5, mask_thresh=0.5, mask_format="full"):
    """Run ``net`` on images (paths or HxWx3 uint8 RGB arrays).

    ``net``: a network, a loaded export, or the path of an export: a ``.onnx`` file (run by ONNX
    Runtime) or the prefix of MXNet's symbol files (see :func:`gluon_maskrcnn.export.export_model`).

    Returns one dict per image with ``boxes`` (N, 4) in original pixels, ``labels`` (N,),
    ``scores`` (N,), ``masks`` and ``class_names``. ``mask_format`` says what ``masks`` is:

    - ``"full"``: (N, H, W) uint8, pasted at the original size;
    - ``"rle"``: a list of COCO RLE dicts (``{"size": [H, W], "counts": bytes}``, as
      ``pycocotools.mask.encode`` gives them), computed from each box with no H x W array;
    - ``"crop"``: a list of (h, w) uint8 arrays, each mask inside its box, with
      ``mask_offsets`` (N, 2), each crop's top-left pixel (x, y) in the image.

    Users who keep the results of many images should not pay for full masks: an RLE is a few
    hundred bytes where a full mask of a 12-megapixel photo is 12 MB.
    """
    from .inference import predict_images

    if isinstance(net, str):
        from .export import load_exported

        net = load_exported(net, ctx)
    return predict_images(net, images, ctx=ctx, score_thresh=score_thresh, mask_thresh=mask_thresh,
                          mask_format=mask_format)
