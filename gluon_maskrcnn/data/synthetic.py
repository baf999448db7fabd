"""An offline COCO-format dataset of overlapping shapes, reproducible from a seed.

``write_synthetic_coco(root)`` writes ``root/{train,val}/*.jpg`` and
``root/annotations/instances_{train,val}.json``: circles, rectangles, triangles and rings of
random colours on textured backgrounds. Masks are exact: an unoccluded polygonal shape is stored
as its polygon, anything else as the RLE of its visible pixels. Category ids are deliberately
not contiguous (1, 3, 5, 7), as in COCO.

Command line: ``python -m gluon_maskrcnn.data.synthetic --root data/synthetic``.
"""
import argparse
import inspect
import json
import os

import cv2
import numpy as np

__all__ = ["write_synthetic_coco", "ensure_synthetic_coco", "CATEGORIES", "main"]

CATEGORIES = [{"id": 1, "name": "circle"}, {"id": 3, "name": "rectangle"},
              {"id": 5, "name": "triangle"}, {"id": 7, "name": "ring"}]
MIN_VISIBLE_PIXELS = 30


def _background(rng, h, w):
    """Smooth colour gradient plus noise and a few random lines."""
    c0, c1 = rng.randint(0, 256, 3), rng.randint(0, 256, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    image = (c0 * (1 - t) + c1 * t) * np.ones((h, 1, 1), np.float32)
    image += rng.normal(0, 12, size=(h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 6)):
        p1 = tuple(int(v) for v in rng.randint(0, [w, h]))
        p2 = tuple(int(v) for v in rng.randint(0, [w, h]))
        cv2.line(image, p1, p2, tuple(int(c) for c in rng.randint(0, 256, 3)), int(rng.randint(1, 4)))
    return image


def _shape(rng, kind, h, w):
    """(mask uint8 HxW, polygon (K, 2) or None) of one random shape."""
    size = rng.uniform(0.18, 0.42) * min(h, w)
    cx, cy = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2)
    mask = np.zeros((h, w), np.uint8)
    polygon = None
    if kind == "circle":
        cv2.circle(mask, (int(cx), int(cy)), int(size / 2), 1, -1)
    elif kind == "ring":
        cv2.circle(mask, (int(cx), int(cy)), int(size / 2), 1, -1)
        cv2.circle(mask, (int(cx), int(cy)), int(size / 4), 0, -1)
    elif kind == "rectangle":
        bw, bh = size * rng.uniform(0.6, 1.0), size * rng.uniform(0.6, 1.0)
        polygon = np.array([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy - bh / 2],
                            [cx + bw / 2, cy + bh / 2], [cx - bw / 2, cy + bh / 2]])
    else:  # triangle
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        polygon = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], axis=1)
    if polygon is not None:  # pixels exactly as pycocotools rasterises the stored polygon
        from pycocotools import mask as mask_utils

        polygon = np.round(polygon, 1).astype(np.float32)
        rle = mask_utils.frPyObjects([polygon.reshape(-1).astype(np.float64).tolist()], h, w)
        mask = mask_utils.decode(mask_utils.merge(rle))
    return mask, polygon


def _annotation(mask, polygon, visible, ann_id, image_id, category_id):
    from pycocotools import mask as mask_utils

    ys, xs = np.nonzero(visible)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    if polygon is not None and np.array_equal(visible, mask):
        segmentation = [polygon.reshape(-1).tolist()]
    else:
        rle = mask_utils.encode(np.asfortranarray(visible))
        segmentation = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "area": int(visible.sum()), "iscrowd": 0, "segmentation": segmentation}


def _add_noise(rng, image, std):
    """Gaussian noise on every pixel, over the colours squeezed into [32, 223] so that few clip."""
    noisy = 32 + image.astype(np.float32) * (191 / 255) + rng.normal(0, std, size=image.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _image(rng, image_id, h, w, max_objects, first_ann_id, pixel_noise=0.0):
    image = _background(rng, h, w)
    shapes = []
    for _ in range(rng.randint(1, max_objects + 1)):
        category = CATEGORIES[rng.randint(len(CATEGORIES))]
        mask, polygon = _shape(rng, category["name"], h, w)
        color = np.array(rng.randint(0, 256, 3), np.uint8)
        image[mask > 0] = color
        shapes.append((category["id"], mask, polygon))
    annotations, covered = [], np.zeros((h, w), bool)
    for category_id, mask, polygon in reversed(shapes):  # later shapes occlude earlier ones
        visible = (mask > 0) & ~covered
        covered |= mask > 0
        if visible.sum() >= MIN_VISIBLE_PIXELS:
            annotations.append(_annotation(mask, polygon, visible.astype(np.uint8),
                                           first_ann_id + len(annotations), image_id, category_id))
    if pixel_noise:
        image = _add_noise(rng, image, pixel_noise)
    return image, annotations[::-1]


def write_split(root, split, num_images, height, width, seed, max_objects=4, pixel_noise=0.0):
    """Write one split; returns the path of its instances JSON."""
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = 1000 + index
        image, anns = _image(rng, image_id, height, width, max_objects, len(annotations) + 1, pixel_noise)
        file_name = "%06d.jpg" % image_id
        cv2.imwrite(os.path.join(root, split, file_name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        annotations.extend(anns)
    path = os.path.join(root, "annotations", "instances_%s.json" % split)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    os.replace(tmp, path)
    return path


SPEC_FILE = "synthetic_spec.json"


def write_synthetic_coco(root, num_train=64, num_val=16, height=256, width=320, seed=0,
                         max_objects=4, pixel_noise=0.0):
    """Write the train and val splits under ``root``, and ``root/synthetic_spec.json`` with the
    arguments that made them; returns the splits' JSON paths.

    ``pixel_noise``: standard deviation of noise added to every pixel (0: none). Without it the
    shapes' fills and the lines are flat colours, which a network maps to exactly equal
    features: max-pooling then meets exact ties, whose winner a one-ulp difference decides.
    """
    spec = dict(num_train=num_train, num_val=num_val, height=height, width=width, seed=seed,
                max_objects=max_objects, pixel_noise=pixel_noise)
    spec_path = os.path.join(root, SPEC_FILE)
    if os.path.exists(spec_path):
        os.remove(spec_path)  # a crash half-way leaves no spec, so the next call writes again
    paths = (write_split(root, "train", num_train, height, width, seed, max_objects, pixel_noise),
             write_split(root, "val", num_val, height, width, seed + 1, max_objects, pixel_noise))
    with open(spec_path + ".tmp", "w") as f:
        json.dump(spec, f)
    os.replace(spec_path + ".tmp", spec_path)
    return paths


def ensure_synthetic_coco(root, num_train, num_val, **kwargs):
    """Write the synthetic dataset under ``root`` unless the one there was made with exactly these
    arguments; returns True if it wrote. Images of a previous, larger dataset are removed."""
    arguments = inspect.signature(write_synthetic_coco).bind(root, num_train, num_val, **kwargs)
    arguments.apply_defaults()  # the spec write_synthetic_coco would record
    spec = {name: value for name, value in arguments.arguments.items() if name != "root"}
    try:
        with open(os.path.join(root, SPEC_FILE)) as f:
            if json.load(f) == spec:
                return False
    except (OSError, ValueError):
        pass
    for split in ("train", "val"):
        folder = os.path.join(root, split)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.endswith(".jpg"):
                os.remove(os.path.join(folder, name))
    write_synthetic_coco(root, **spec)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic COCO-format dataset of shapes.")
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_synthetic_coco(args.root, args.num_train, args.num_val, args.height, args.width,
                                 args.seed, args.max_objects)
    print("wrote %s" % ", ".join(paths))


if __name__ == "__main__":
    main()
