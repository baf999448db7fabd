"""Predictions come back in the original image's pixels, on both axes."""
import mxnet as mx
import numpy as np

import gluon_maskrcnn as gm


class BoxFinder:
    """A stand-in network that sees one known object: it returns the object's box scaled exactly
    as the input image was resized (each axis by its own factor), with a full mask."""

    short, max_size, classes = 8, 1000, ["thing"]

    def __init__(self, box, height, width):
        self.box, self.height, self.width = np.float32(box), height, width

    def __call__(self, x):
        _, _, h, w = x.shape
        scale = np.float32([w / self.width, h / self.height] * 2)
        boxes = np.zeros((1, 3, 4), np.float32)
        boxes[0, 0] = self.box * scale
        ids = -np.ones((1, 3, 1), np.float32)
        ids[0, 0] = 0
        scores = np.zeros((1, 3, 1), np.float32)
        scores[0, 0] = 0.9
        return [mx.nd.array(a) for a in (ids, scores, boxes, np.ones((1, 3, 14, 14), np.float32))]


def test_boxes_return_to_the_original_pixels_on_both_axes():
    """105 x 310 resized to a short side of 8 is 8 x 24: x scales by 24/310 = 0.0774, y by
    8/105 = 0.0762. Dividing y by x's scale would put the box's bottom 1.5 px too high."""
    height, width, box = 105, 310, (40.0, 60.0, 250.0, 100.0)
    image = np.zeros((height, width, 3), np.uint8)
    result = gm.predict(BoxFinder(box, height, width), [image], score_thresh=0.5)[0]
    assert result["labels"].tolist() == [0] and result["class_names"] == ["thing"]
    np.testing.assert_allclose(result["boxes"][0], box, atol=0.5)
    mask = result["masks"][0]
    assert mask.shape == (height, width) and mask[61:99, 41:249].all()  # the box, but its edge pixels
    assert not mask[:59].any() and not mask[101:].any() and not mask[:, :39].any() and not mask[:, 251:].any()
