"""Masks encoded from their boxes: equal, run for run, to pycocotools.mask.encode of the full
paste; ``predict(mask_format=...)``; evaluation memory that does not grow with the image."""
import tracemalloc

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from gluon_maskrcnn import masks as masks_module
from gluon_maskrcnn.masks import encode_crops_numpy, encode_masks, mask_crops, paste_crops
from gluon_maskrcnn.ops import rle_library


def full_paste(masks, boxes, height, width, threshold=0.5):
    """The full-image paste as evaluation made it before (each mask resized into an H x W array)."""
    out = np.zeros((len(masks), height, width), np.uint8)
    m = masks.shape[-1]
    grow = (m + 2.0) / m
    for i, (mask, box) in enumerate(zip(np.pad(masks, ((0, 0), (1, 1), (1, 1))), boxes)):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_w, half_h = (box[2] - box[0]) / 2 * grow, (box[3] - box[1]) / 2 * grow
        x0, y0 = int(np.floor(cx - half_w)), int(np.floor(cy - half_h))
        w = max(int(np.ceil(cx + half_w)) - x0, 1)
        h = max(int(np.ceil(cy + half_h)) - y0, 1)
        resized = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > threshold
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if ix1 > ix0 and iy1 > iy0:
            out[i, iy0:iy1, ix0:ix1] = resized[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    return out


def random_case(rng, kind, height, width, n=8):
    """Boxes crossing the border, under one pixel, covering the whole image; empty masks."""
    masks = rng.uniform(0, 1, (n, 14, 14)).astype(np.float32)
    xy = rng.uniform([-30, -30], [width + 10, height + 10], (n, 2))
    wh = rng.uniform(0.1, 100, (n, 2))
    if kind == "tiny":
        wh = rng.uniform(0.01, 1.0, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if kind == "whole image":
        boxes[:] = [0, 0, width, height]
        masks[:, 2:-2, 2:-2] = 1  # ones down to the bottom row, on into the next column
    if kind == "empty":
        masks[:] = 0
    if kind == "full":
        masks[:] = 1
    return masks, boxes


KINDS = ["random", "tiny", "whole image", "empty", "full"]


@pytest.mark.parametrize("encoder", ["C helper", "NumPy"])
@pytest.mark.parametrize("kind", KINDS)
def test_rle_from_the_box_equals_pycocotools_on_the_full_paste(kind, encoder):
    if encoder == "C helper" and rle_library() is None:
        pytest.skip("no C compiler")
    rng = np.random.RandomState(KINDS.index(kind))
    for height, width in ((60, 80), (37, 23), (1, 1), (5, 300)):
        for _ in range(40):
            masks, boxes = random_case(rng, kind, height, width)
            full = full_paste(masks, boxes, height, width)
            crops = mask_crops(masks, boxes, height, width)
            np.testing.assert_array_equal(paste_crops(crops, height, width), full)
            want = mask_utils.encode(np.asfortranarray(full.transpose(1, 2, 0)))
            got = encode_masks(masks, boxes, height, width) if encoder == "C helper" else \
                encode_crops_numpy(crops, height, width)
            assert [r["counts"] for r in got] == [r["counts"] for r in want]
            assert all(r["size"] == [height, width] for r in got)


def test_the_c_helper_splits_work_into_chunks_and_grows_its_buffers(monkeypatch):
    """Many detections over several calls (a small chunk), and a mask whose every pixel changes
    (a checkerboard: the first buffers are too small and are grown)."""
    if rle_library() is None:
        pytest.skip("no C compiler")
    rng = np.random.RandomState(7)
    masks, boxes = random_case(rng, "random", 90, 120, n=40)
    board = (np.indices((28, 28)).sum(axis=0) % 2).astype(np.float32)
    masks = np.concatenate([masks[:, :1, :1].repeat(28, 1).repeat(28, 2) * 0 + board, masks.repeat(2, 1).repeat(2, 2)])
    boxes = np.concatenate([np.float32([[0, 0, 120, 90]] * 40), boxes])
    monkeypatch.setattr(masks_module, "CHUNK_PIXELS", 5000)
    full = full_paste(masks, boxes, 90, 120)
    want = mask_utils.encode(np.asfortranarray(full.transpose(1, 2, 0)))
    assert [r["counts"] for r in encode_masks(masks, boxes, 90, 120)] == [r["counts"] for r in want]


def test_evaluating_a_12_megapixel_image_needs_no_image_sized_array():
    """100 detections on a 4000 x 3000 photo: a full paste alone is 100 x 12 MB = 1.2 GB. Encoded
    from their boxes, the peak is the chunk of resized windows (64 MB of float32 at most) and
    the results: the bound is 120 MB, a tenth of the full paste."""
    from gluon_maskrcnn.engine.evaluation import image_results

    rng = np.random.RandomState(3)
    height, width = 3000, 4000
    xy = rng.uniform(0, [3500, 2500], (100, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 500, (100, 2))], axis=1).astype(np.float32)
    outputs = (np.arange(100, dtype=np.float32).reshape(100, 1) % 3, np.linspace(0.9, 0.1, 100, dtype=np.float32)[:, None],
               boxes, rng.uniform(0, 1, (100, 28, 28)).astype(np.float32))
    meta = {"id": 1, "height": height, "width": width}
    tracemalloc.start()
    results = image_results(outputs, 1.0, meta, [1, 2, 3])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(results) == 100
    print("peak %.1f MB" % (peak / 2 ** 20))
    assert peak < 120 * 2 ** 20


def test_predict_mask_formats_round_trip(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from helpers import tiny_model

    import gluon_maskrcnn as gm

    net, _ = tiny_model(fpn=True, short=128, max_size=192)
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, (100, 140, 3)).astype(np.uint8)
    full, = gm.predict(net, [image], score_thresh=0.0)
    rle, = gm.predict(net, [image], score_thresh=0.0, mask_format="rle")
    crop, = gm.predict(net, [image], score_thresh=0.0, mask_format="crop")
    assert len(full["labels"]) > 5 and full["masks"].shape == (len(full["labels"]), 100, 140)
    assert full["masks"].any()
    for result in (rle, crop):
        np.testing.assert_array_equal(result["boxes"], full["boxes"])
        np.testing.assert_array_equal(result["labels"], full["labels"])
    decoded = mask_utils.decode(rle["masks"]).transpose(2, 0, 1)  # (H, W, N) -> (N, H, W)
    np.testing.assert_array_equal(decoded, full["masks"])
    placed = np.zeros_like(full["masks"])
    for i, (mask, (x0, y0)) in enumerate(zip(crop["masks"], crop["mask_offsets"])):
        placed[i, y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask
    np.testing.assert_array_equal(placed, full["masks"])
    assert sum(m.size for m in crop["masks"]) < full["masks"].size  # crops are smaller than full masks
    with pytest.raises(ValueError, match="mask_format 'png': choose one of full, rle, crop"):
        gm.predict(net, [image], mask_format="png")


def test_the_eval_benchmark_finds_the_box_encoding_identical_to_the_full_paste(tmp_path, capsys):
    from gluon_maskrcnn.benchmarks.coco_scale import run_eval_benchmark

    report = run_eval_benchmark(str(tmp_path), num_images=12, num_annotations=60, detections=20, threads=2)
    assert report["identical"] is True
    assert report["pycocotools"][1]["segm"]["AP"] > 0.05
    out = capsys.readouterr().out
    assert "results identical: True" in out and "masks encoded from their boxes, 2 threads" in out
