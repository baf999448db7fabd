"""A parsed annotation file, cached next to it, so that a second load takes a fraction of a second.

The cache ``instances_SPLIT.json.gmcache.npz`` holds the flat arrays of the parse (before
``skip_empty``), the categories, the images and the skip counts. It is keyed by the file's
size, modification time and SHA-1, by the settings that change the parse (classes, minimum
object size) and by ``CACHE_VERSION``. A cache whose key differs is rebuilt; one that cannot
be read (truncated, corrupt, missing arrays) is named in a warning and rebuilt; it is never
trusted. A folder that cannot be written only costs the cache (a warning says so).
"""
import hashlib
import json
import logging
import os
import zipfile

import numpy as np

from ..files import atomic_write

__all__ = ["CACHE_VERSION", "cache_path", "file_key", "load_cache", "save_cache", "rles_from_cache"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("boxes", "labels", "image_starts", "coords", "polygon_starts", "ann_polygons", "rle_index",
           "image_ids", "image_widths", "image_heights", "image_names", "image_name_starts")


def cache_path(annotation_file):
    return annotation_file + ".gmcache.npz"


def file_key(annotation_file, settings):
    """What a cache must match: the file (size, mtime, SHA-1), the parse settings, the version."""
    sha = hashlib.sha1()
    with open(annotation_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            sha.update(chunk)
    stat = os.stat(annotation_file)
    return json.dumps({"version": CACHE_VERSION, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                       "sha1": sha.hexdigest(), "settings": settings}, sort_keys=True)


def load_cache(annotation_file, key):
    """The cached parse as a dict (arrays, ``categories``, ``rles``, ``skipped``), or None when
    there is no cache, it is stale, or it is unreadable (named in a warning)."""
    path = cache_path(annotation_file)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["key"]) != key:
                logger.info("%s is stale (the annotation file or the settings changed): rebuilding", path)
                return None
            loaded = {name: cache[name] for name in _ARRAYS}
            extra = json.loads(str(cache["extra"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        logger.warning("annotation cache %s is unreadable (%s: %s): rebuilding it", path, type(err).__name__, err)
        return None
    loaded.update(extra)
    return loaded


def save_cache(annotation_file, key, arrays, categories, rles, skipped):
    """Write the cache atomically; a failure is a warning, not an error."""
    extra = json.dumps({"categories": categories, "skipped": skipped, "rles": [_plain_rle(r) for r in rles]})

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), extra=np.array(extra), **arrays)

    try:
        atomic_write(cache_path(annotation_file), write)
    except OSError as err:
        logger.warning("cannot write annotation cache %s (%s): loading will parse the file each time",
                       cache_path(annotation_file), err.strerror or err)


def _plain_rle(rle):
    """A compressed RLE with ``counts`` as text (JSON has no bytes)."""
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def rles_from_cache(rles):
    """The cached RLEs back in pycocotools' form (``counts`` as bytes)."""
    return [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles]
