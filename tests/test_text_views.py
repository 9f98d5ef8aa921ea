"""Text views (#17 item 2): Explanation.plot() word highlights, the HTML report with escaped
words and the class switcher (checked in headless chromium when installed), the terminal."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import lumos
from lumos.data.synthetic_text import make_planted_text
from lumos.models.train import fit
from lumos.plot.text import ansi_words, word_colours
from lumos.report.text import build_text_report, words_html
from tests.test_report_html import _chromium, _run
from tests.test_text import TinyCNN

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    data = make_planted_text(300, seed=2)
    torch.manual_seed(0)
    return data, fit(TinyCNN(len(data.vocab)), data.ids, data.labels, epochs=15, lr=1e-2, seed=0)


def test_colours_are_a_diverging_scale_centred_at_zero():
    c = word_colours([-2.0, 0.0, 2.0, 1.0])
    assert c[1] == pytest.approx((1.0, 1.0, 1.0), abs=0.01)  # white at 0
    assert c[0][2] > 0.9 and c[0][0] < 0.1  # blue negative
    assert c[2][0] > 0.9 and c[2][2] < 0.1  # red positive
    assert c[3][0] > 0.9 and 0.3 < c[3][2] < 0.7  # half way: light red


def test_plot_draws_every_word(trained):
    import matplotlib

    matplotlib.use("Agg")
    data, model = trained
    rows = np.flatnonzero(data.labels == 1)[:2]
    exp = lumos.explain(model, data.ids[rows], "ig", target=1, tokens=data.tokens[rows], n_steps=16)
    fig = exp.plot(0)
    drawn = [t.get_text() for t in fig.axes[0].texts]
    assert drawn == [w for w, _ in exp.words(0)]
    face = {t.get_text(): t.get_bbox_patch().get_facecolor() for t in fig.axes[0].texts}
    assert face["zephyr"][0] > 0.9 and face["zephyr"][2] < 0.2  # the planted word: strong red
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_terminal_words():
    pairs = [("good", 1.0), ("bad", -0.5), ("the", 0.01)]
    coloured = ansi_words(pairs)
    assert coloured.count("\x1b[0m") == 3 and "48;2;255;0;0" in coloured  # full red background on the max
    assert ansi_words(pairs, colour=False) == "good(+1) bad(-0.5) the"


def test_words_html_escapes_markup():
    html = words_html([("<img src=x onerror=alert(1)>", 1.0), ("a&b", -1.0)])
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "a&amp;b" in html
    assert "background:rgb(255,0,0)" in html and "background:rgb(0,0,255)" in html


PAYLOAD = "<img src=x onerror=\"document.title='XSS'\">"


@pytest.fixture(scope="module")
def report(trained):
    data, model = trained
    x = data.ids[:4]
    tokens = data.tokens[:4].astype(object)
    tokens[0, 1] = PAYLOAD  # a token whose text is markup
    rep = build_text_report(model, x, y=data.labels[:4], tokens=tokens, class_names=["no cue", "cue </script>"],
                            methods=["integrated_gradients", "occlusion", "kernel_shap"], masks=data.planted_mask()[:4],
                            config={"baseline_token": data.vocab.mask})
    return rep, data


def test_text_report_content(report):
    rep, data = report
    html = rep.html
    rows = html.split('<section id="explanations">')[1].split("</section>")[0]
    assert "<img" not in rows  # word rows, no images, and no injected tag
    assert "&lt;img src=x onerror=" in html and "</script><script>" not in html
    assert html.count("<div class='row'") == 4 * 2 and html.count("class='words'") == 4 * 2 * 3
    assert all(r.ok for r in rep.runs), [r.error for r in rep.runs]
    mass = {r["method"]: r["mean"] for r in rep.evaluation if r["metric"] == "relevance_mass_accuracy"}
    assert all(m > 0.5 for m in mass.values()), mass  # on the planted token
    samples = json.loads(re.search(r'id="lumos-samples">(.*?)</script>', html, re.S).group(1))
    assert samples[0]["classes"][0][0] in ("no cue", "cue </script>")


def test_text_report_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    rep, _ = report
    path = rep.save(tmp_path / "text_report.html")
    out = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", f"file://{path}#selftest"], tmp_path)
    m = re.search(r'<pre id="lumos-selftest">(.*?)</pre>', out.stdout, re.S)
    assert m, f"the page's self-test did not run; chromium said: {out.stderr[-500:]}"
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == [], result["errors"]
    assert result["before"] == ["0:0"] and result["after_sample"] == ["1:0"] and result["after_class"] == ["1:1"]
    assert "<title>XSS" not in out.stdout
    shot = tmp_path / "text_report.png"
    _run(browser, [f"--screenshot={shot}", "--window-size=1400,1100", f"file://{path}"], tmp_path)
    assert shot.exists() and shot.stat().st_size > 10_000


TEXT_FACTORY = """
import torch
from torch import nn

class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 4, padding_idx=0)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids):
        ids = ids.round().long() if ids.is_floating_point() else ids
        return self.fc(self.emb(ids).sum(1))

def make():
    return Bag()
"""


def test_cli_explain_prints_words(tmp_path, capsys, monkeypatch):
    from lumos.cli import main
    from lumos.core.explanation import Explanation

    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "textmodels.py").write_text(TEXT_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    torch.manual_seed(0)
    model = importlib.import_module("textmodels").make()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    data = make_planted_text(6, seed=0)
    np.savez(tmp_path / "text.npz", X=data.ids, y=data.labels, tokens=data.tokens, attention_mask=data.mask)
    out = tmp_path / "e.npz"
    assert main(["-q", "explain", "--model", str(tmp_path / "w.pt"), "--factory", f"{tmp_path / 'textmodels.py'}:make",
                 "--data", str(tmp_path / "text.npz"), "--method", "ig", "--target", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    exp = Explanation.load(out)
    assert exp.meta["layout"] == "text" and exp.values.shape == data.ids.shape
    assert exp.words(0)[0][0] == data.sentences[0].split()[0]
    assert printed[0].startswith("[0] class 1: ") and "\x1b[" not in printed[0]  # not a tty: the plain words
    assert printed[-1].endswith("e.npz") and len(printed) == 7
