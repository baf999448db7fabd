"""gluon_maskrcnn: Mask R-CNN for Apache MXNet Gluon.

The names most code needs: :func:`get_model` and :func:`get_model_list` (the model zoo, whose
module :mod:`gluon_maskrcnn.model_zoo` has the rest), :func:`predict`, :func:`export_model` and
:func:`load_exported`, and the model classes :class:`MaskRCNN` and :class:`FasterRCNN`.
"""
try:
    import mxnet  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised by tests/test_import.py in a subprocess
    raise ImportError(
        "gluon_maskrcnn needs MXNet, which comes through an install extra: "
        "`pip install gluon-maskrcnn[cpu]` for CPU, or `pip install gluon-maskrcnn[cu112]` "
        "for CUDA 11.2 (never both)."
    ) from err

from . import model_zoo  # noqa: E402
from .model_zoo import get_model, get_model_list  # noqa: E402
from .modeling.faster_rcnn import FasterRCNN  # noqa: E402
from .modeling.mask_rcnn import MaskRCNN  # noqa: E402
from .predict import predict  # noqa: E402
from .export import export_model, load_exported  # noqa: E402

from .version import VERSION as __version__  # noqa: E402
__all__ = ["model_zoo", "get_model", "get_model_list", "FasterRCNN", "MaskRCNN", "predict", "export_model",
           "load_exported"]
