"""Draw boxes, labels and masks on images (OpenCV), and save PNGs."""
import os

import cv2
import numpy as np

__all__ = ["draw_instances", "save_png", "color_for"]


def color_for(index):
    """A distinct, stable RGB colour for class or instance ``index``."""
    hue = (index * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_instances(image, boxes, labels=None, scores=None, masks=None, class_names=None, alpha=0.45):
    """A copy of ``image`` (HxWx3 uint8 RGB) with masks (N, H, W) blended, boxes and captions.

    ``labels`` are class indices; ``scores`` optional; ``masks`` binary or probabilities (> 0.5).
    """
    out = image.copy()
    boxes = np.asarray(boxes).reshape(-1, 4)
    labels = np.zeros(len(boxes), int) if labels is None else np.asarray(labels).astype(int)
    if masks is not None:
        for mask, label in zip(masks, labels):
            region = np.asarray(mask) > 0.5
            out[region] = (out[region] * (1 - alpha) + np.array(color_for(label)) * alpha).astype(np.uint8)
    for i, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = color_for(label)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        name = class_names[label] if class_names is not None else str(label)
        caption = name if scores is None else "%s %.2f" % (name, scores[i])
        (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 4)), (x1 + tw + 2, y1), color, -1)
        cv2.putText(out, caption, (x1 + 1, max(th, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out


def save_png(path, image):
    """Write an RGB image as PNG (atomically), creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    if not cv2.imwrite(tmp, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError("could not write %s" % path)
    os.replace(tmp, path)
    return path
