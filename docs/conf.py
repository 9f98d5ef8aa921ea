"""Sphinx configuration of the lumos documentation (``sphinx-build -W -b html docs <out>``)."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "lumos"
author = "the lumos developers"
copyright = "2026, the lumos developers"  # noqa: A001 - Sphinx's name
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "myst_parser", "lumos_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"  # signatures stay readable; types are in the docstrings
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as fields: a dataclass field is then documented once
# optional integrations are documented when installed and skipped otherwise
autodoc_mock_imports = ["zarr", "dask", "distributed", "mne", "braindecode", "transformers", "onnx", "onnxruntime",
                        "onnx2torch", "keras"]
# links into the repository (examples/, benchmarks/) from the included benchmark tables point outside the site;
# ":ivar name:" fields link the attribute name, which several classes share (Explanation.extras, Chunk.extras):
# Sphinx then links the first, and says so as an ambiguous reference
suppress_warnings = ["myst.xref_missing", "ref.python"]
html_theme = "alabaster"
html_title = "lumos"
html_static_path = ["_static"]
html_css_files = ["lumos.css"]
# wide tables (methods, formats) and the CLI help need the page's width, not alabaster's 940 px
html_theme_options = {"page_width": "95%", "sidebar_width": "220px", "body_max_width": "none"}
