"""CPU extension operators, compiled on first use against the installed MXNet.

MXNet (>= 1.7) loads operators from a shared library built with its ``lib_api.h``; the
wheel ships that header and ``src/lib_api.cc``. The first call of :func:`load` compiles
``*.cc`` here with the C++ compiler (``$CXX``, default ``g++``) into a cache folder
(``$GLUON_MASKRCNN_OPS_CACHE``, default ``~/.cache/gluon_maskrcnn/ops``), keyed by the
sources, the MXNet version and the compiler, and loads it; later processes only load.

Operators:

- ``gm_multi_roi_align(rois, levels, *feats)``: ROIAlign of each ROI on its own FPN level in
  one pass; forward bit-identical to ``contrib.ROIAlign``; both passes vectorised over
  channels (channels-last), the backward parallel over channel ranges (contrib's CPU backward
  is one serial loop).
- ``gm_proposal_nms(data)``: the RPN's ``contrib.box_nms`` + top rows, the same rows, but
  each candidate is compared with the kept boxes only and it stops once enough are kept.

``rle.c`` (plain C, loaded with ctypes by :func:`rle_library`) is the COCO RLE encoder of
:mod:`gluon_maskrcnn.masks`.

Everything has a portable fallback built from MXNet's own operators, used on GPUs, in
exported graphs, with Horovod (MXNet's library loader crashes next to ``horovod.mxnet``),
when ``GLUON_MASKRCNN_FAST_OPS=0``, and when no compiler is found (a warning says why, once).
"""
import contextlib
import ctypes
import glob
import hashlib
import logging
import os
import subprocess
import sys
import tempfile

import mxnet as mx

__all__ = ["load", "available", "unavailable_reason", "rle_library"]

_LOG = logging.getLogger(__name__)
_HERE = os.path.dirname(os.path.abspath(__file__))
_state = {}


def _sources():
    return sorted(glob.glob(os.path.join(_HERE, "*.cc")))


def _library_path(cxx):
    digest = hashlib.sha1()
    for path in _sources():
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(("%s|%s" % (mx.__version__, cxx)).encode())
    return os.path.join(_cache_folder(), "libgm_ops-%s.so" % digest.hexdigest()[:16])


def _cache_folder():
    return os.environ.get("GLUON_MASKRCNN_OPS_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "gluon_maskrcnn", "ops"))


def _build_atomically(cmd, target):
    """Run the compiler command ``cmd`` (its output file left out) into ``target`` atomically
    (a temporary file, then a rename); RuntimeError with the compiler's message on failure."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
    os.close(fd)
    try:
        done = subprocess.run(cmd + ["-o", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), done.stderr[-2000:]))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _compile(cxx, target):
    """Build the operator library into ``target``."""
    mxnet_dir = os.path.dirname(os.path.abspath(mx.__file__))
    lib_api = os.path.join(mxnet_dir, "src", "lib_api.cc")
    if not os.path.exists(lib_api):
        raise RuntimeError("this MXNet install has no %s" % lib_api)
    # -ffp-contract=off: no fused multiply-adds, so results match MXNet's own operators bit for bit
    _build_atomically([cxx, "-O3", "-std=c++17", "-fopenmp", "-fPIC", "-shared", "-ffp-contract=off",
                       "-I", os.path.join(mxnet_dir, "include"), lib_api] + _sources(), target)


_RLE_SOURCE = os.path.join(_HERE, "rle.c")


def rle_library():
    """The C RLE encoder of :mod:`gluon_maskrcnn.masks` (``rle.c``, built with ``$CC``, default
    ``gcc``, into the same cache folder, and loaded with ctypes), or None when it cannot be
    built (a warning says why, once)."""
    if "rle" in _state:
        return _state["rle"]
    _state["rle"] = None
    cc = os.environ.get("CC", "gcc")
    with open(_RLE_SOURCE, "rb") as f:
        digest = hashlib.sha1(f.read() + cc.encode()).hexdigest()[:16]
    target = os.path.join(_cache_folder(), "libgm_rle-%s.so" % digest)
    try:
        if not os.path.exists(target):
            _build_atomically([cc, "-O3", "-fPIC", "-shared", _RLE_SOURCE], target)
        library = ctypes.CDLL(target)
        library.gm_encode_windows.restype = ctypes.c_int
        library.gm_encode_windows.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 6 + [
            ctypes.c_float, ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
        _state["rle"] = library
    except (OSError, RuntimeError) as err:
        _LOG.warning("gluon_maskrcnn's RLE encoder unavailable, encoding masks with NumPy: %s", err)
    return _state["rle"]


def load():
    """Compile (once per machine) and load the extension operators; True when they are usable."""
    if "ok" in _state:
        return _state["ok"]
    _state["ok"] = False
    if os.environ.get("GLUON_MASKRCNN_FAST_OPS", "1") == "0":
        _state["why"] = "GLUON_MASKRCNN_FAST_OPS=0"
        return False
    # MXNet's library loader crashes in a process with horovod.mxnet (SIGFPE when loading after
    # it; loading before it corrupted the heap in a test run, so Horovod workers import it first)
    if "horovod.mxnet" in sys.modules:
        _state["why"] = "horovod.mxnet is loaded"
        _LOG.warning("gluon_maskrcnn CPU operators off: %s", _state["why"])
        return False
    cxx = os.environ.get("CXX", "g++")
    target = _library_path(cxx)
    try:
        if not os.path.exists(target):
            _LOG.info("compiling gluon_maskrcnn CPU operators into %s", target)
            _compile(cxx, target)
        with _operator_functions_kept():
            mx.library.load(target, verbose=False)
        _state["ok"] = True
    except (OSError, RuntimeError, mx.base.MXNetError) as err:
        _state["why"] = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _LOG.warning("gluon_maskrcnn CPU operators unavailable, using MXNet's slower "
                     "contrib ROIAlign and box_nms instead: %s", err)
    return _state["ok"]


@contextlib.contextmanager
def _operator_functions_kept():
    """Keep the function objects of MXNet's existing operators across ``mx.library.load``.

    The loader regenerates every operator's Python function in ``mx.nd``, ``mx.sym`` and their
    submodules, so code that imported one before and compares by identity stops recognising
    it: GluonCV's FPN checks ``norm_layer is SyncBatchNorm`` against the one it imported, and
    its SyncBN models failed to build after our operators loaded. The old functions call the
    same operators, so they are put back; only the new operators' functions are added.
    """
    prefixes = ("mxnet.ndarray", "mxnet.symbol", "mxnet.numpy", "mxnet.numpy_extension")
    saved = {name: dict(vars(module)) for name, module in list(sys.modules.items())
             if module is not None and name.startswith(prefixes)}
    try:
        yield
    finally:
        for name, before in saved.items():
            module = sys.modules.get(name)
            for attr, value in before.items():
                if callable(value) and getattr(module, attr, None) is not value:
                    setattr(module, attr, value)


def unavailable_reason():
    """Why :func:`load` found the operators unusable (one line), or None if they load."""
    return None if load() else _state.get("why", "unknown")


def available(ctx):
    """Whether the extension operators can run on ``ctx`` (CPU only, loaded on demand)."""
    return ctx.device_type == "cpu" and load()
