"""Training, evaluation and checkpointing.

>>> from gluon_maskrcnn.engine import fit, training_args                 # doctest: +SKIP
>>> state = fit(training_args(dataset="synthetic", gpus="", tiny=True))  # doctest: +SKIP
"""
from .cli import training_args
from .evaluation import evaluate, format_metrics
from .loading import load_model
from .trainer import fit

__all__ = ["fit", "training_args", "load_model", "evaluate", "format_metrics"]
