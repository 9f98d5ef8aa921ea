"""The HTML report for text: per input and class, each method's words highlighted.

:func:`build_text_report` explains token ids ``(N, T)`` with a set of text methods (for the
top ``n_classes`` predicted classes of each input) and renders the same page as
:func:`lumos.report.build_report` (sample selector, the class switcher, the methods table,
the Content-Security-Policy): each row holds one line of words per method, every word on a
background of the diverging map centred at zero (red raises the class score, blue lowers
it), scaled to that method's largest |relevance| on the sentence; the value is in the
word's tooltip. Words enter the markup HTML-escaped (they come from the user's data).
"""
from __future__ import annotations

import time

import numpy as np

from lumos.core.model import ModelAdapter
from lumos.metrics.evaluate import EvaluationTable, score_row
from lumos.report.builder import Report, _version, mass_rows, ranked_classes
from lumos.report.html import _e, render_page
from lumos.report.methods import MethodRun

DEFAULT_METHODS = ("integrated_gradients", "gradient_x_input", "saliency", "occlusion", "kernel_shap")
DEFAULT_OPTIONS = {"kernel_shap": {"n_samples": 256}, "lime": {"n_samples": 256}, "integrated_gradients": {"n_steps": 32}}


def words_html(pairs, lim: float | None = None) -> str:
    """``<span>`` elements of escaped words on relevance-coloured backgrounds (inline styles only)."""
    from lumos.plot.text import word_colours

    values = [v for _, v in pairs]
    spans = []
    for (w, v), (r, g, b) in zip(pairs, word_colours(values, lim)):
        fg = "#fff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#111"
        spans.append(f"<span class='w' title='{_e(f'{v:+.4g}')}' style='background:rgb({int(r * 255)},"
                     f"{int(g * 255)},{int(b * 255)});color:{fg}'>{_e(w) if w else '&#9251;'}</span>")
    return " ".join(spans)


def _evaluate(runs, masks) -> EvaluationTable:
    """The text report's evaluation table (the type and metric names of lumos.evaluate) on the
    top class: the sparseness of each sentence over its real tokens, the completeness residual
    |delta| where the method defines it (LRP's absorbed relevance is not booked for text), and
    relevance mass accuracy over the sentences that hold evidence."""
    from lumos.metrics import completeness_residual, sparseness

    tables, info = [], {}
    for run in runs:
        exp = run.explanations[0]
        info[run.name] = {"family": run.family, "seconds": run.seconds}
        gini = np.array([sparseness(v[m][None])[0] for v, m in zip(exp.values, exp.extras["attention_mask"])])
        rows = [score_row(run.name, "sparseness", sparseness, gini)]
        if exp.delta is not None:
            rows.append(score_row(run.name, "completeness_residual", completeness_residual,
                                  np.abs(np.asarray(exp.delta, dtype=np.float64).reshape(-1))))
        tables.append(EvaluationTable(rows, {"metric_functions": {"sparseness": sparseness,
                                                                  "completeness_residual": completeness_residual},
                                             "metric_options": {"completeness_residual": {"relative": False}}}))
        if masks is not None:
            m = np.asarray(masks, dtype=bool)
            tables.append(mass_rows(run.name, exp.values, m, len(m)))
    table = EvaluationTable.concat(tables)
    table.attrs["methods"] = info
    return table


def build_text_report(model, ids, *, y=None, tokens=None, attention_mask=None, words=None, class_names=None,
                      methods=DEFAULT_METHODS, n_classes: int = 2, options: dict | None = None, masks=None,
                      title: str = "lumos text report", model_info: dict | None = None,
                      config: dict | None = None) -> Report:
    """Explain the token ids ``ids`` (a handful of sentences) with ``methods`` and build the page.

    ``tokens`` (strings ``(N, T)``), ``attention_mask``, ``words`` are passed to every method
    (see :mod:`lumos.core.text`); ``config`` are constructor options for every method
    (``baseline_token``, ``pad_token``, ``embedding``), ``options`` per-method options by name;
    ``masks`` ``(N, T)`` marks known evidence (a planted token) for the relevance-mass column.
    """
    import lumos
    from lumos.core import registry

    start = time.perf_counter()
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"a text report needs token ids: an integer array (N, T); got {ids.dtype} {ids.shape}")
    call = {k: v for k, v in (("tokens", tokens), ("attention_mask", attention_mask), ("words", words))
            if v is not None}
    mask_kw = {}
    if attention_mask is not None:
        from lumos.core.text import mask_keyword

        key = mask_keyword(model)
        if key is not None:
            import torch

            mask_kw = {key: torch.as_tensor(np.asarray(attention_mask).astype(bool))}
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(ids), **mask_kw)
    probs = ModelAdapter(model, output="softmax").transform(out[0] if isinstance(out, tuple) else out).numpy()
    class_names, n_ranks, targets = ranked_classes(probs, class_names, n_classes)
    runs, options = [], {**DEFAULT_OPTIONS, **(options or {})}
    for name in methods:
        cls = registry.get(name)
        run = MethodRun(name=name, family=cls.__module__.split(".")[2], options=dict(options.get(name, {})))
        t0 = time.perf_counter()
        try:
            for r in range(n_ranks):
                run.explanations.append(lumos.explain(model, ids, name, target=targets[:, r], **(config or {}),
                                                      **call, **run.options))
        except (ValueError, TypeError, RuntimeError) as err:
            run.error = str(err).splitlines()[0]
        run.seconds = time.perf_counter() - t0
        runs.append(run)
    ok = [r for r in runs if r.ok and r.explanations]
    rows = []
    for i in range(len(ids)):
        for r in range(n_ranks):
            lines = [f"<div class='words'><span class='m'>{_e(run.name)}</span>"
                     f"{words_html(run.explanations[r].words(i))}</div>" for run in ok]
            rows.append({"sample": i, "rank": r, "class": class_names[int(targets[i, r])],
                         "prob": float(probs[i, targets[i, r]]), "html": "".join(lines)})
    evaluation = _evaluate(ok, masks)
    samples = [{"index": i, "true": None if y is None else class_names[int(y[i])],
                "pred": class_names[int(targets[i, 0])], "prob": float(probs[i, targets[i, 0]]),
                "classes": [(class_names[int(t)], float(probs[i, t])) for t in targets[i]]} for i in range(len(ids))]
    info = {"lumos version": _version(), "model": type(model).__name__,
            **({"parameters": f"{sum(p.numel() for p in model.parameters()):,}"} if hasattr(model, "parameters") else {}),
            **(model_info or {}), "inputs": f"{len(ids)} sentences × {ids.shape[1]} tokens (text)"}
    notes = ["Text: relevance per word (the sum over its tokens), each method scaled to its own largest |value| on "
             "the sentence; the exact value is in each word's tooltip. Evaluation on the top class, as lumos.evaluate's table "
             "(its metric names, ↑ / ↓, mean ± standard error over the sentences): sparseness over the real tokens, "
             "the completeness residual |δ| where the method defines completeness, relevance mass accuracy on the "
             "given evidence (over the sentences that hold some)."]
    html = render_page(title=title, info=info, samples=samples, rows=rows, runs=runs, evaluation=evaluation,
                       globals_=[], curve_png=None, notes=notes, n_ranks=n_ranks)
    return Report(html=html, runs=runs, evaluation=evaluation, notes=notes, seconds=time.perf_counter() - start)
