"""Sphinx configuration: the API reference from docstrings and the sphinx-gallery tutorials.

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
exclude_patterns = ["_build", "tutorials/*", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "auto_tutorials/*.zip"]
html_theme = "furo"
html_title = "gluon_maskrcnn %s" % release
