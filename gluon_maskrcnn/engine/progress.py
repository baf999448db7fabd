"""A progress bar with the running losses, images per second and ETA."""
import sys
import time

__all__ = ["Progress"]


class Progress:
    def __init__(self, total, description, enabled=True):
        self.enabled = enabled
        self.start = time.time()
        self.images = 0
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, file=sys.stderr, dynamic_ncols=True,
                             bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining} {postfix}")

    def update(self, losses, images):
        self.images += images
        if self._bar is None:
            return
        speed = self.images / max(time.time() - self.start, 1e-9)
        shown = {k: "%.3f" % v for k, v in losses.items() if k in ("total", "rpn_cls", "rcnn_cls", "mask")}
        self._bar.set_postfix_str(" ".join("%s=%s" % kv for kv in shown.items()) + " %.2f img/s" % speed)
        self._bar.update(1)

    def close(self):
        if self._bar is not None:
            self._bar.close()
