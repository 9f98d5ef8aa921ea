"""The HTML page: one self-contained file (inline CSS, inline JS, base64 PNG figures),
no network access. A little vanilla JavaScript switches sample and class.

Every string that comes from the user (class, feature and file names, titles, method
options, error messages) is HTML-escaped where it is written into the markup; the per-input
data travel as JSON in a ``<script type="application/json">`` block with ``<``, ``>``, ``&``
and U+2028/2029 escaped, and the page's script puts them into the document with
``textContent`` only. A Content-Security-Policy ``<meta>`` tag allows exactly the page's
own two inline scripts (by SHA-256 hash), inline styles and ``data:`` images: no inline
event handlers, no other scripts, no remote loads.

Opening the page with ``#selftest`` (used by the browser test) makes the script check
that every image decoded and that switching sample works, and write the result as JSON
into ``<pre id="lumos-selftest">``; errors raised on the page are collected from the first
line of the document on, so the test sees them.
"""
from __future__ import annotations

import base64
import hashlib
import json
from html import escape

import numpy as np

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
main{padding:16px 24px;max-width:1500px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h2{font-size:17px;margin:0 0 8px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #e3e6ea;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.controls{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin-bottom:8px}
button{font:inherit;padding:4px 10px;border:1px solid #9aa5b1;border-radius:4px;background:#fff;cursor:pointer}
button.active{background:#1f3a5f;color:#fff;border-color:#1f3a5f}
select{font:inherit;padding:3px}
.summary{font-size:15px;margin:6px 0}.summary b{color:#1f3a5f}
.row img{max-width:100%;height:auto;display:block}
.note{color:#7a4b00}.err{color:#a61b1b}.skip{color:#6b7280}
.legend{font-size:13px;color:#374151}
code{background:#f0f2f5;padding:0 3px;border-radius:3px;font-size:12px}
.words{font:15px/2.1 ui-monospace,Menlo,Consolas,monospace;margin:2px 0 6px}.words .m{display:inline-block;min-width:190px;font:13px system-ui,sans-serif;color:#374151}
.words span.w{padding:1px 3px;margin:0 1px;border-radius:2px}
table.eval td.num{white-space:nowrap}table.eval td.best{font-weight:600}table.eval th[title]{cursor:help;text-decoration:underline dotted}
table.eval tr.ref td{color:#6b7280;font-style:italic;border-top:1px solid #9aa5b1}
"""

ERROR_TRAP = """<script>window.__lumosErrors=[];
window.addEventListener('error',function(e){window.__lumosErrors.push(String(e.message||(e.target&&e.target.src?'failed to load '+e.target.tagName:'error')))},true);
document.addEventListener('securitypolicyviolation',function(e){window.__lumosErrors.push('blocked by the content security policy: '+e.violatedDirective)});
(function(){var ce=console.error;console.error=function(){window.__lumosErrors.push(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments)}})();</script>"""

SCRIPT = """<script>
(function(){
  var samples = JSON.parse(document.getElementById('lumos-samples').textContent);
  var state = {sample: 0, rank: 0};
  var select = document.getElementById('sample-select');
  var classBox = document.getElementById('class-buttons');
  var summary = document.getElementById('sample-summary');
  function pct(p){return (100*p).toFixed(1)+'%';}
  // names come from the user: they enter the page as text nodes only (never as markup)
  function clear(node){while (node.firstChild) node.removeChild(node.firstChild);}
  function text(node, t){node.appendChild(document.createTextNode(String(t)));}
  function tag(node, name, t, cls){
    var e = document.createElement(name);
    e.textContent = String(t);
    if (cls) e.className = cls;
    node.appendChild(e);
  }
  function show(){
    var s = samples[state.sample];
    document.querySelectorAll('.row').forEach(function(el){
      el.hidden = !(+el.dataset.sample === state.sample && +el.dataset.rank === state.rank);
    });
    select.value = String(state.sample);
    clear(classBox);
    s.classes.forEach(function(c, r){
      var b = document.createElement('button');
      b.textContent = c[0] + ' (' + pct(c[1]) + ')';
      b.className = r === state.rank ? 'active' : '';
      b.setAttribute('data-rank', String(r));
      b.addEventListener('click', function(){state.rank = r; show();});
      classBox.appendChild(b);
    });
    var cls = s.classes[state.rank], dot = ' \u00b7 ';
    clear(summary);
    text(summary, 'Input ' + (state.sample + 1) + ' of ' + samples.length);
    if (s.true !== null) {text(summary, dot + 'true class: '); tag(summary, 'b', s.true);}
    text(summary, dot + 'prediction: '); tag(summary, 'b', s.pred);
    text(summary, ' (confidence ' + pct(s.prob) + ')');
    if (s.true !== null && s.true !== s.pred) {text(summary, ' '); tag(summary, 'span', '\u2717 misclassified', 'err');}
    text(summary, dot + 'explaining class '); tag(summary, 'b', cls[0]);
    text(summary, ' (p = ' + pct(cls[1]) + ')');
  }
  select.addEventListener('change', function(){state.sample = +select.value; state.rank = 0; show();});
  document.getElementById('prev').addEventListener('click', function(){state.sample = (state.sample + samples.length - 1) % samples.length; state.rank = 0; show();});
  document.getElementById('next').addEventListener('click', function(){state.sample = (state.sample + 1) % samples.length; state.rank = 0; show();});
  document.addEventListener('keydown', function(e){
    if (e.key === 'ArrowRight') document.getElementById('next').click();
    if (e.key === 'ArrowLeft') document.getElementById('prev').click();
  });
  show();
  window.lumosShow = function(i, r){state.sample = i; state.rank = r || 0; show();};
  if (location.hash === '#selftest') {
    window.addEventListener('load', function(){
      var imgs = Array.prototype.slice.call(document.images);
      var broken = imgs.filter(function(im){return !(im.complete && im.naturalWidth > 0);}).length;
      var visible = function(){return Array.prototype.filter.call(document.querySelectorAll('.row'), function(el){return !el.hidden;}).map(function(el){return el.dataset.sample + ':' + el.dataset.rank;});};
      var before = visible();
      var target = samples.length > 1 ? 1 : 0;
      select.value = String(target); select.dispatchEvent(new Event('change'));
      var afterSample = visible();
      var btn = classBox.querySelectorAll('button');
      if (btn.length > 1) btn[1].click();
      var afterClass = visible();
      var out = {images: imgs.length, broken: broken, errors: window.__lumosErrors, before: before,
                 after_sample: afterSample, after_class: afterClass, summary: summary.textContent,
                 n_samples: samples.length, n_classes: btn.length};
      var pre = document.createElement('pre'); pre.id = 'lumos-selftest';
      pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
      window.lumosShow(0, 0);
    });
  }
})();
</script>"""

#: What each metric of the report's evaluation table measures (tooltip and legend); the
#: direction, the needs and the options come from the table (its MetricInfo and attrs).
METRIC_NOTES = {
    "region_perturbation": "AOPC (Samek et al. 2017): mean drop of the class probability as single features, most "
                           "relevant first, are replaced by uniform noise, step after step, over the first fifth of "
                           "the features (at most 100 steps; Samek et al. replace about a sixth of an image)",
    "deletion": "deletion AUC (Petsiuk et al. 2018): area under the class probability as features are set to the "
                "baseline, most relevant first",
    "insertion": "insertion AUC (Petsiuk et al. 2018): area under the class probability as features are inserted "
                 "into a blurred input, most relevant first",
    "sparseness": "Gini index of |attribution| (0 = spread evenly, 1 = one feature)",
    "completeness_residual": "completeness error |f(x) − f(baseline) − Σ attributions| where the method defines it, "
                             "with LRP's absorbed relevance taken out (the real error)",
    "absorbed_relevance": "LRP: relevance kept by the rules at biases and ε stabilisers — part of the completeness "
                          "gap by design (Bach et al. 2015), not an error",
    "relevance_mass_accuracy": "share of positive relevance inside the planted evidence (Arras et al. 2022), over "
                               "the inputs that hold some",
}
TIME_NOTE = "wall time for all explained inputs and classes"


def _option(value) -> str:
    return f"{value:g}" if isinstance(value, float) else (str(value) if np.ndim(value) == 0 else "per feature")


def _tip(table, metric: str) -> str:
    """A column's tooltip: what the metric measures, its direction, what it needs and the
    options it ran with (lumos.metrics.<name>(...))."""
    info = table.info(metric)
    desc = METRIC_NOTES.get(metric, info.describe())
    options = table.attrs.get("metric_options", {}).get(metric, {})
    call = ", ".join(f"{k}={_option(v)}" for k, v in options.items())
    return (f"{desc}. {info.direction[0].upper()}{info.direction[1:]}; needs {', '.join(info.requires)} "
            f"(lumos.metrics.{info.name}({call}))")


def _e(value) -> str:
    """Any value as text safe in HTML content and in quoted attributes."""
    return escape(str(value), quote=True)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return _e(v)


def _eval_table(table) -> str:
    """The evaluation table (a :class:`~lumos.metrics.evaluate.EvaluationTable`): a row per
    method with its family and time (``attrs["methods"]``), a column per metric headed as
    ``to_markdown`` heads it (name and ↑ / ↓), ``mean ± s.e.`` cells, the reference row last.
    Bold: the best mean of each column and every method not distinguishable from it (within two
    standard errors of the difference), so a tie in the noise is not shown as a winner."""
    from lumos.metrics.evaluate import RANDOM_ROW

    if not len(table):
        return "<p class='note'>No method produced local explanations to evaluate.</p>"
    info = table.attrs.get("methods", {})
    metrics = table.metrics
    def se(r):
        return float(r["sem"]) if np.isfinite(r["sem"]) else 0.0

    best = {}  # per metric with a direction, the reference row aside: the best and its statistical ties, bold
    for m in metrics:
        rows = [r for r in table if r["metric"] == m and r["method"] != RANDOM_ROW and np.isfinite(r["mean"])]
        if rows and rows[0]["higher_is_better"] is not None and len(rows) > 1:
            sign = 1.0 if rows[0]["higher_is_better"] else -1.0
            top = max(rows, key=lambda r: sign * r["mean"])
            best[m] = {r["method"] for r in rows
                       if r is top or sign * (top["mean"] - r["mean"]) < 2 * np.hypot(se(top), se(r))}
    head = "".join(f"<th title='{_e(_tip(table, m))}'>{_e(table.heading(m))}</th>" for m in metrics)
    body = []
    for name in table.methods:
        meta = info.get(name, {})
        cells = "".join(f"<td class='num{' best' if name in best.get(m, ()) else ''}'>{_e(table.cell(name, m, 3)) or '–'}"
                        "</td>" for m in metrics)
        ref = " class='ref'" if name == RANDOM_ROW else ""
        body.append(f"<tr{ref}><td>{_e(name)}</td><td>{_e(meta.get('family', ''))}</td>{cells}"
                    f"<td class='num'>{_fmt(meta.get('seconds'))}</td></tr>")
    legend = "".join(f"<li><b>{_e(table.heading(m))}</b>: {_e(_tip(table, m))}</li>" for m in metrics)
    errors = "".join(f"<li class='err'>{_e(r['method'])}: {_e(r['error'])}</li>"
                     for r in {r["method"]: r for r in table if r.get("error")}.values())
    return (f"<table class='eval'><tr><th>method</th><th>family</th>{head}<th title='{_e(TIME_NOTE)}'>time (s)</th>"
            f"</tr>{''.join(body)}</table><p class='legend'>Cells: mean ± standard error over the inputs; ↑ higher "
            f"is better, ↓ lower is better; in bold the best method and any within two standard errors of it (hover a heading for its definition).</p>"
            f"<ul class='legend'>{legend}<li><b>time (s)</b>: {_e(TIME_NOTE)}</li>{errors}</ul>")


def _methods_table(runs) -> str:
    body = []
    for run in runs:
        if run.ok:
            exp = run.explanations[0] if run.explanations else run.global_explanation
            params = json.dumps(exp.params, default=str) if exp is not None else "{}"
            status = "<span>ok</span>"
        elif run.skipped:
            params, status = "", f"<span class='skip'>not applicable: {_e(run.skipped)}</span>"
        else:
            params, status = "", f"<span class='err'>failed: {_e(run.error or '')}</span>"
        body.append(f"<tr><td>{_e(run.name)}</td><td>{_e(run.family)}</td><td>{status}</td>"
                    f"<td class='num'>{run.seconds:.3g}</td><td><code>{_e(params)}</code></td></tr>")
    return ("<table><tr><th>method</th><th>family</th><th>status</th><th>time (s)</th><th>parameters</th></tr>"
            + "".join(body) + "</table>")


def script_json(obj) -> str:
    """JSON that is inert inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes
    (no ``</script>`` or ``<!--`` can form) and, with ``ensure_ascii``, U+2028/2029 too."""
    text = json.dumps(obj, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _body(script: str) -> str:
    """The source between ``<script>`` and ``</script>``: what the browser hashes."""
    return script[len("<script>"):-len("</script>")]


def script_hash(source: str) -> str:
    """The CSP source expression that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy() -> str:
    """The page's policy: its own two inline scripts (by hash), inline styles and ``data:``
    images; nothing else (no inline handlers, no other or remote scripts, styles, fonts,
    frames or form targets)."""
    hashes = " ".join(script_hash(_body(s)) for s in (ERROR_TRAP, SCRIPT))
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def render_page(*, title, info, samples, rows, runs, evaluation, globals_, curve_png, notes, n_ranks) -> str:
    options = "".join(
        f"<option value='{int(s['index'])}'>input {int(s['index']) + 1}"
        f"{' (true ' + _e(s['true']) + ')' if s['true'] is not None else ''}: predicted {_e(s['pred'])}</option>"
        for s in samples)
    row_html = "".join(
        f"<div class='row' data-sample='{int(r['sample'])}' data-rank='{int(r['rank'])}'"
        f"{' hidden' if (r['sample'], r['rank']) != (0, 0) else ''}>"
        + (r["html"] if "html" in r else  # text: word highlights built from escaped words (lumos.report.text)
           f"<img alt='explanations of input {int(r['sample']) + 1} for class {_e(r['class'])}' "
           f"src='data:image/png;base64,{r['png']}'>") + "</div>" for r in rows)
    info_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in info.items())
    glob = "".join(f"<figure><img alt='{_e(n)}' src='data:image/png;base64,{png}'></figure>" for n, png in globals_)
    curve = (f"<img alt='deletion curves' src='data:image/png;base64,{curve_png}'>" if curve_png else "")
    note_html = "".join(f"<li class='note'>{_e(n)}</li>" for n in notes)
    failed = [r for r in runs if r.error]
    if failed:
        note_html += "".join(f"<li class='err'>{_e(r.name)} failed: {_e(r.error)}</li>" for r in failed)
    samples_json = script_json(samples)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">{ERROR_TRAP}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><header><h1>{_e(title)}</h1><p>What the model looked at, method by method. Generated by lumos {_e(info.get('lumos version', ''))}.</p></header>
<main>
<section id="explanations"><h2>Explanations per input</h2>
<div class="controls"><button id="prev" title="previous input (←)">◀</button>
<select id="sample-select" aria-label="input">{options}</select>
<button id="next" title="next input (→)">▶</button>
<span>class to explain (top {int(n_ranks)} by probability):</span><span id="class-buttons"></span></div>
<p class="summary" id="sample-summary"></p>
<p class="legend">Each panel shows one method's attribution for the selected class. <span style="color:#c0392b">Red</span> marks
evidence <i>for</i> the class, <span style="color:#2e6da4">blue</span> evidence <i>against</i>; each map is scaled to its own
largest |value| (the colour bar is relative, not in model units). Absolute methods (saliency) are never blue.</p>
{row_html}</section>
<section id="evaluation"><h2>Evaluation (predicted class of each input)</h2>{_eval_table(evaluation)}{curve}</section>
{f'<section id="global"><h2>Global importance</h2>{glob}</section>' if glob else ''}
<section id="methods"><h2>Methods and parameters</h2>{_methods_table(runs)}</section>
<section id="about"><h2>Model and data</h2><table>{info_html}</table>{f'<ul>{note_html}</ul>' if note_html else ''}</section>
</main>
<script type="application/json" id="lumos-samples">{samples_json}</script>
{SCRIPT}
</body></html>
"""
