"""The parsed-annotation cache: used when valid, rebuilt when the file, the settings or the
cache itself is not what it should be; never trusted blindly."""
import json
import logging
import os

import numpy as np
import pytest

from gluon_maskrcnn.data import coco
from gluon_maskrcnn.data.annotation_cache import cache_path
from gluon_maskrcnn.data.coco import COCOInstances

from test_flat_annotations import ANNOTATIONS, CATS, IMAGES


def _write(tmp_path, annotations=ANNOTATIONS):
    folder = tmp_path / "annotations"
    folder.mkdir(exist_ok=True)
    path = str(folder / "instances_s.json")
    with open(path, "w") as f:
        json.dump({"images": IMAGES, "annotations": annotations, "categories": CATS}, f)
    return path


def _same(a, b):
    assert [im for im in a.images] == [im for im in b.images] and a.skipped == b.skipped
    for i in range(len(a)):
        x, y = a.instances(i), b.instances(i)
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.labels, y.labels)
        assert [s[0] for s in x.segms] == [s[0] for s in y.segms]
        for s, t in zip(x.segms, y.segms):
            if s[0] == "polygons":
                assert [p.tolist() for p in s[1]] == [p.tolist() for p in t[1]]
            else:
                assert s[1]["size"] == t[1]["size"] and _bytes(s[1]["counts"]) == _bytes(t[1]["counts"])


def _bytes(counts):
    return counts.encode("ascii") if isinstance(counts, str) else counts


def test_second_load_comes_from_the_cache_and_is_identical(tmp_path, monkeypatch):
    path = _write(tmp_path)
    parsed = {skip: COCOInstances(str(tmp_path), "s", skip_empty=skip, cache=False) for skip in (False, True)}
    assert not os.path.exists(cache_path(path))
    COCOInstances(str(tmp_path), "s", skip_empty=False)  # writes the cache
    assert os.path.exists(cache_path(path))
    monkeypatch.setattr(coco, "parse_annotations", None)  # any parse would fail now
    for skip in (False, True):  # skip_empty is applied after the cache
        _same(COCOInstances(str(tmp_path), "s", skip_empty=skip), parsed[skip])


def test_a_changed_file_or_other_settings_rebuild_the_cache(tmp_path, caplog):
    _write(tmp_path)
    COCOInstances(str(tmp_path), "s", skip_empty=False)
    _write(tmp_path, ANNOTATIONS[:2])  # a new file (size, time and hash change)
    with caplog.at_level(logging.INFO):
        changed = COCOInstances(str(tmp_path), "s", skip_empty=False)
    assert "is stale" in caplog.text
    _same(changed, COCOInstances(str(tmp_path), "s", skip_empty=False, cache=False))
    assert sum(len(changed.instances(i)) for i in range(len(changed))) == 2
    only_a = COCOInstances(str(tmp_path), "s", skip_empty=False, classes=["a"])  # other labels
    assert only_a.instances(2).labels.tolist() == []  # annotation 1 is class b
    assert only_a.instances(0).labels.tolist() == [0]


def test_same_size_and_time_but_other_bytes_is_stale(tmp_path):
    path = _write(tmp_path)
    COCOInstances(str(tmp_path), "s", skip_empty=False)
    stat = os.stat(path)
    text = open(path).read().replace('"x.jpg"', '"w.jpg"')  # same length
    with open(path, "w") as f:
        f.write(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert COCOInstances(str(tmp_path), "s", skip_empty=False).images[0]["file_name"] == "w.jpg"


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_cache_is_named_and_rebuilt(tmp_path, caplog, damage):
    path = _write(tmp_path)
    reference = COCOInstances(str(tmp_path), "s", skip_empty=False)
    cache = cache_path(path)
    if damage == "truncate":
        with open(cache, "r+b") as f:
            f.truncate(os.path.getsize(cache) // 2)
    else:
        with open(cache, "wb") as f:
            f.write(b"not a cache at all")
    with caplog.at_level(logging.WARNING):
        again = COCOInstances(str(tmp_path), "s", skip_empty=False)
    assert "annotation cache %s is unreadable" % cache in caplog.text
    _same(again, reference)
    assert np.load(cache)["boxes"].shape == (6, 4)  # rewritten whole


def test_a_big_file_is_parsed_by_a_child_process_that_writes_the_cache(tmp_path, monkeypatch):
    path = _write(tmp_path)
    here = COCOInstances(str(tmp_path), "s", skip_empty=True, cache=False)
    monkeypatch.setattr(coco, "PARSE_IN_CHILD_BYTES", 0)  # every file is big
    monkeypatch.setattr(coco, "parse_annotations", None)  # this process must not parse
    _same(COCOInstances(str(tmp_path), "s", skip_empty=True), here)
    assert os.path.exists(cache_path(path))
