"""Speed and equality comparisons with GluonCV and torchvision (not part of the model API).

- ``inference``: inference time of ours, GluonCV's and torchvision's Mask R-CNN;
- ``train``: training step time, each framework in its own process;
- ``data``: the data pipeline's time per image;
- ``parity``: stage-by-stage, end-to-end and training comparisons with GluonCV's models;
- ``timing``: median times and peak memory (standard library only);
- ``torchvision_worker``: run as a file by a Python with ``torch``, without MXNet.
"""
