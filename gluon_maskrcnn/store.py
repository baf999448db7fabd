"""Published parameter files: GluonCV's model store (URL, sha1 check, cache folder).

Files live in ``$MXNET_HOME/models`` (default ``~/.mxnet/models``) as ``NAME-SHA1[:8].params``.
A missing file is downloaded from ``$MXNET_GLUON_REPO`` (GluonCV's default repository) with a
timeout, verified, and moved into place atomically. Offline, the error says which file to put
where.
"""
import hashlib
import io
import os
import zipfile

from .errors import UserError
from .internals import gluoncv_model_sha1

__all__ = ["model_root", "resolve_params", "cached_params", "sha1_of", "sha1_table", "download",
           "ModelFileError"]

DEFAULT_REPO = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"
TIMEOUT = float(os.environ.get("GLUON_MASKRCNN_DOWNLOAD_TIMEOUT", "20"))


class ModelFileError(UserError, RuntimeError):
    """A parameter file is missing or corrupt and could not be fetched."""


def sha1_table():
    """{file name: sha1} of the published parameter files."""
    return gluoncv_model_sha1()


def model_root(root=None):
    if root is None:
        root = os.path.join(os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet")), "models")
    return os.path.expanduser(root)


def sha1_of(path, chunk=1 << 20):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _published_file(name, root=None):
    """(sha1, file name, folder) of ``name``'s published parameter file."""
    table = sha1_table()
    if name not in table:
        raise ModelFileError("GluonCV publishes no COCO parameter file for %r: build it with "
                             "pretrained=False (pretrained_base=True loads ImageNet weights into "
                             "its backbone), or pass pretrained=PATH to a .params file" % name)
    sha1 = table[name]
    return sha1, "%s-%s.params" % (name, sha1[:8]), model_root(root)


def cached_params(name, root=None):
    """Path of ``name``'s published parameter file if it is cached and intact, else None.

    Never downloads: use it to decide, offline, whether ``pretrained=True`` will load. None too
    for a name GluonCV publishes no file for.
    """
    if name not in sha1_table():
        return None
    sha1, file_name, folder = _published_file(name, root)
    path = os.path.join(folder, file_name)
    return path if os.path.isfile(path) and sha1_of(path) == sha1 else None


def resolve_params(name, pretrained=True, root=None):
    """Path of the parameter file for ``name``.

    ``pretrained`` True: the published file (cached or downloaded); a str that names an
    existing file: that file. Raises :class:`ModelFileError` naming the file and folder.
    """
    if isinstance(pretrained, str) and (os.path.sep in pretrained or pretrained.endswith(".params")
                                        or os.path.exists(pretrained)):
        if not os.path.isfile(pretrained):
            raise ModelFileError("parameter file %r for %s does not exist" % (pretrained, name))
        return pretrained
    cached = cached_params(name, root)
    if cached:
        return cached
    sha1, file_name, folder = _published_file(name, root)
    return download(name, file_name, sha1, folder)


def download(name, file_name, sha1, folder):
    import requests

    repo = os.environ.get("MXNET_GLUON_REPO", DEFAULT_REPO)
    url = "%sgluon/models/%s.zip" % (repo if repo.endswith("/") else repo + "/", file_name[:-7])
    hint = ("put %s (sha1 %s) in %s, or set MXNET_HOME / MXNET_GLUON_REPO"
            % (file_name, sha1, folder))
    try:
        response = requests.get(url, timeout=TIMEOUT)
        response.raise_for_status()
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            payload = archive.read(file_name)
    except (requests.RequestException, zipfile.BadZipFile, KeyError) as err:
        raise ModelFileError("parameters of %s are not cached and could not be downloaded from "
                             "%s (%s): %s" % (name, url, type(err).__name__, hint)) from err
    if hashlib.sha1(payload).hexdigest() != sha1:
        raise ModelFileError("downloaded %s from %s but its sha1 does not match: %s"
                             % (file_name, url, hint))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_name)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(payload)
    os.replace(tmp, path)
    return path
