"""A PNG gallery of predictions on a few validation images."""
import numpy as np

from ..inference import predict_images
from ..viz import draw_instances, save_png

__all__ = ["save_gallery"]


def save_gallery(net, dataset, path, ctx=None, count=4, score_thresh=0.5):
    """Draw ``net``'s predictions on the first ``count`` images of ``dataset``, side by side."""
    paths = [dataset.image_path(i) for i in range(min(count, len(dataset)))]
    if not paths:
        return None
    from ..data.coco import read_image

    images = [read_image(p) for p in paths]
    results = predict_images(net, images, ctx=ctx, score_thresh=score_thresh)
    drawn = [draw_instances(im, r["boxes"], r["labels"], r["scores"], r["masks"], net.classes)
             for im, r in zip(images, results)]
    height = max(d.shape[0] for d in drawn)
    tiles = [np.pad(d, ((0, height - d.shape[0]), (0, 4), (0, 0)), constant_values=255) for d in drawn]
    return save_png(path, np.concatenate(tiles, axis=1))
