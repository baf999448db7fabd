"""Packaging for gluon-maskrcnn.

MXNet comes through an extra so that the CPU and CUDA wheels are never installed together:
``pip install .[cpu]`` or ``pip install .[cu112]``.
"""
from setuptools import find_packages, setup

# Newer releases of these need numpy 2, which MXNet 1.9.1 and GluonCV cannot use.
COMMON = [
    "numpy<1.24",
    "opencv-python<4.9",
    "matplotlib<3.9",
    "pandas<2.1",
    "scipy<1.12",
    "gluoncv==0.10.5.post0",
    "pycocotools",
    "Pillow",
    "tqdm",
    "portalocker",
    "requests",
]

setup(
    name="gluon-maskrcnn",
    version="0.1.0",
    description="Mask R-CNN for Apache MXNet Gluon, compatible with GluonCV's model zoo",
    license="Apache-2.0",
    classifiers=["License :: OSI Approved :: Apache Software License",
                 "Programming Language :: Python :: 3.11",
                 "Topic :: Scientific/Engineering :: Image Recognition"],
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluon_maskrcnn", "gluon_maskrcnn.*"]),
    package_data={"gluon_maskrcnn": ["ops/*.cc", "ops/*.c"]},
    license_files=["LICENSE"],
    python_requires=">=3.8",
    install_requires=COMMON,
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "cu112": ["mxnet-cu112==1.9.1"],
        "test": ["pytest", "pytest-timeout", "faster-coco-eval", "onnx>=1.14,<1.17", "onnxruntime>=1.16",
                 "tensorboardX>=2.6", "tensorboard"],
        # --tensorboard writes events with tensorboardX; tensorboard itself shows them
        "tensorboard": ["tensorboardX>=2.6"],
        "fast-eval": ["faster-coco-eval"],
        # MXNet 1.9.1's ONNX exporter reads onnx.mapping, which onnx 1.19 removed; 1.16.2 is
        # the version tested. Its translations target opsets 12 and 13: we write opset 13.
        "onnx": ["onnx>=1.14,<1.17", "onnxruntime>=1.16"],
        "docs": ["sphinx==9.0.4", "sphinx-gallery==0.22.1", "furo==2025.12.19", "myst-parser==5.2.0",
                 "sphinx-argparse==0.6.1", "onnx>=1.14,<1.17", "onnxruntime>=1.16"],
    },
    entry_points={
        "console_scripts": [
            "gluon-maskrcnn-synthetic=gluon_maskrcnn.data.synthetic:main",
        ],
    },
)
