"""Sphinx configuration: the user guide (MyST Markdown), the API reference from docstrings, the
command-line reference from the scripts' parsers, the benchmarks page from committed JSON, and
the sphinx-gallery tutorials.

Build (from the repository root): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The tutorials are executed during the build, offline, on the synthetic dataset.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
os.environ.setdefault("MPLBACKEND", "Agg")

import gluon_maskrcnn  # noqa: E402

project = "gluon_maskrcnn"
author = "the gluon_maskrcnn developers"
copyright = "2026, " + author
version = release = gluon_maskrcnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinxarg.ext",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3

# Every cross-reference must resolve (-W turns a miss into a failure). The names below are
# other projects' types and the informal words of docstrings' type fields; without network
# access at build time there is no intersphinx inventory to resolve them against.
nitpicky = True
nitpick_ignore_regex = [
    # other projects' types
    ("py:class", r"(mx|mxnet|np|numpy|gluon|nn|onnx|onnxruntime|argparse|gluoncv|concurrent|collections)\..*"),
    ("py:class", r"NDArray|Symbol|HybridBlock|Block|Context|SymbolBlock|Parameter|ParameterDict|Trainer|KVStore|"
                 r"DataLoader|Namespace|Counter|Path|Thread|Popen|InferenceSession|ModelProto|Dataset|Sampler"),
    # the informal words of type fields: "sequence of int", "shape (N, 4)", "float32", "'keep'"
    ("py:class", r"(?!gluon_maskrcnn\.)[^A-Z].*"),
    ("py:class", r".*\s.*"),
    ("py:class", r"[A-Z]"),  # a shape letter: (B, N, 4)
]

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/\d\d_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "image_scrapers": ("matplotlib",),
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "tutorials/*", "notes/_generated/*", "benchmarks/*", "examples/*", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "auto_tutorials/*.zip"]
html_theme = "furo"
html_title = "gluon_maskrcnn %s" % release


# The benchmarks page's plots and tables, drawn from the committed --json results.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "benchmarks"))
from plots import make_benchmark_page  # noqa: E402

make_benchmark_page(os.path.join(os.path.dirname(__file__), "notes", "_generated"))
