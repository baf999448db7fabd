"""Model store: cache lookup, sha1 check, download through a local server, offline errors."""
import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile

import pytest

import gluon_maskrcnn as gm
from gluon_maskrcnn import store
from gluon_maskrcnn.modeling.warmup import forward_once

NAME = "mask_rcnn_resnet18_v1b_coco"


@pytest.fixture(scope="module")
def params_bytes(tmp_path_factory):
    """A parameter file of the network (built once: a C4 forward through res5 takes seconds)."""
    net = gm.get_model(NAME, pretrained_base=False)
    forward_once(net)
    path = tmp_path_factory.mktemp("store") / "src.params"
    net.save_parameters(str(path))
    return path.read_bytes()


@pytest.fixture
def fake_table(monkeypatch, params_bytes):
    sha1 = hashlib.sha1(params_bytes).hexdigest()
    monkeypatch.setattr(store, "sha1_table", lambda: {NAME: sha1})
    return sha1


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cached_file_is_used(tmp_path, params_bytes, fake_table):
    (tmp_path / ("%s-%s.params" % (NAME, fake_table[:8]))).write_bytes(params_bytes)
    net = gm.get_model(NAME, pretrained=True, root=str(tmp_path))
    assert net.classes[0] == "person"


def test_cached_params_never_downloads(tmp_path, monkeypatch, params_bytes, fake_table):
    monkeypatch.setattr(store, "download", lambda *a: pytest.fail("cached_params downloaded"))
    path = tmp_path / ("%s-%s.params" % (NAME, fake_table[:8]))
    assert store.cached_params(NAME, root=str(tmp_path)) is None
    path.write_bytes(b"corrupt")
    assert store.cached_params(NAME, root=str(tmp_path)) is None
    path.write_bytes(params_bytes)
    assert store.cached_params(NAME, root=str(tmp_path)) == str(path)
    assert store.cached_params("mask_rcnn_fpn_syncbn_resnet18_v1b_coco", root=str(tmp_path)) is None  # unpublished


def test_offline_fails_fast_naming_file_and_folder(tmp_path, monkeypatch, fake_table):
    import requests

    monkeypatch.setenv("MXNET_GLUON_REPO", "http://127.0.0.1:%d/" % _closed_port())
    attempts, get = [], requests.get

    def counted(url, **kwargs):
        attempts.append(kwargs.get("timeout"))
        return get(url, **kwargs)

    monkeypatch.setattr(requests, "get", counted)
    with pytest.raises(store.ModelFileError) as err:
        gm.get_model(NAME, pretrained=True, root=str(tmp_path))
    assert attempts == [store.TIMEOUT]  # one attempt, bounded by the download timeout: no retry loop
    message = str(err.value)
    assert "%s-%s.params" % (NAME, fake_table[:8]) in message and str(tmp_path) in message


def test_corrupt_cache_is_replaced_by_download(tmp_path, monkeypatch, params_bytes, fake_table):
    file_name = "%s-%s" % (NAME, fake_table[:8])
    (tmp_path / (file_name + ".params")).write_bytes(b"corrupt")
    served = tmp_path / "repo" / "gluon" / "models"
    served.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(file_name + ".params", params_bytes)
    (served / (file_name + ".zip")).write_bytes(buf.getvalue())
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "repo"), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MXNET_GLUON_REPO", "http://127.0.0.1:%d/" % server.server_address[1])
        path = store.resolve_params(NAME, True, root=str(tmp_path))
    finally:
        server.shutdown()
    assert open(path, "rb").read() == params_bytes
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "nope.params")
    with pytest.raises(store.ModelFileError, match="nope.params"):
        gm.get_model(NAME, pretrained=missing)


def test_unknown_name_and_override():
    with pytest.raises(ValueError, match="unknown model"):
        gm.get_model("mask_rcnn_resnet7_coco")
    with pytest.raises(TypeError, match="unknown preset keys"):
        gm.get_model(NAME, pretrained_base=False, not_a_key=1)
    assert len(gm.get_model_list()) == 9  # GluonCV 0.10.5's Mask R-CNN names
