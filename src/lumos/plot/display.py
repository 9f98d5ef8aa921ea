"""How an :class:`~lumos.core.explanation.Explanation` shows itself: ``.plot()`` and Jupyter.

``exp.plot()`` returns the matplotlib Figure. Run as a script with an interactive backend it
also opens the window (``plt.show()``), so the README's quick start ending in ``.plot()``
shows something; in a Jupyter kernel the figure is closed after drawing so that the returned
Figure displays once (the inline backend would otherwise draw it a second time); with
``ax=`` the caller composes the figure and nothing is shown. ``show=True/False`` overrides.

``exp._repr_html_()`` is what Jupyter renders for an Explanation: a short table (method,
shape, targets, completeness) and the first sample's figure as an embedded PNG. Every user
string in it is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
import sys

import numpy as np

KINDS = ("auto", "waterfall", "beeswarm", "bar")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - any IPython oddity means "not a kernel"
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _interactive_backend() -> bool:
    import matplotlib

    backend = matplotlib.get_backend().lower()
    return not any(word in backend for word in ("agg", "pdf", "svg", "ps", "cairo", "template", "inline"))


def draw(exp, index: int = 0, *, kind: str = "auto", ax=None, show: bool | None = None, **kwargs):
    """Draw ``exp`` and return the Figure; see the module docstring for when it is shown."""
    import matplotlib.pyplot as plt

    from lumos.plot import tabular
    from lumos.plot.explanation import plot_explanation

    if kind not in KINDS:
        from lumos.core.registry import closest

        raise ValueError(f"unknown plot kind {kind!r}{closest(kind, KINDS)}; kinds: {', '.join(KINDS)}")
    if kind == "waterfall":
        fig = tabular.waterfall(exp, index, ax=ax, **kwargs)
    elif kind == "beeswarm":
        fig = tabular.beeswarm(exp, ax=ax, **kwargs)
    elif kind == "bar":
        fig = tabular.bar(exp, ax=ax, **kwargs)
    else:
        fig = plot_explanation(exp, index=index, ax=ax, **kwargs).figure
    if show is None:
        show = ax is None and not _in_notebook() and _interactive_backend()
    if show:
        plt.show()
    elif ax is None and _in_notebook():
        plt.close(fig)  # the returned Figure is displayed once, by its own repr
    return fig


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _summary_rows(exp) -> list[tuple[str, str]]:
    rows = [("method", exp.method or "?"), ("scope", exp.scope), ("values", f"{tuple(exp.values.shape)} "
                                                                          f"{exp.values.dtype}")]
    if exp.target is not None and exp.scope == "local":
        t = np.asarray(exp.target).reshape(-1)
        rows.append(("target", ", ".join(str(int(v)) for v in t[:8]) + (" …" if t.size > 8 else "")))
    if exp.delta is not None and np.asarray(exp.delta).size:
        rows.append(("completeness error", f"max |Σ values − (f(x) − base)| = {float(np.max(np.abs(exp.delta))):.3g}"))
    if exp.feature_names:
        names = exp.feature_names
        rows.append(("features", ", ".join(names[:6]) + (f" … ({len(names)})" if len(names) > 6 else "")))
    seed = exp.params.get("seed") if isinstance(exp.params, dict) else None
    if seed is not None:
        rows.append(("seed", str(seed)))
    return rows


def to_html(exp) -> str:
    """The Jupyter view of an Explanation (escaped text, the first sample as a PNG)."""
    import matplotlib

    table = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in _summary_rows(exp))
    image = ""
    try:
        with matplotlib.rc_context({"figure.max_open_warning": 0}):
            fig = draw(exp, 0, show=False)
        image = f"<img alt='{html.escape(exp.method or 'explanation')}' src='data:image/png;base64,{_png(fig)}'/>"
    except Exception as err:  # noqa: BLE001 - the table still tells what the object is
        image = f"<p><em>no figure: {html.escape(str(err))}</em></p>"
    return f"<div class='lumos-explanation'><table>{table}</table>{image}</div>"
