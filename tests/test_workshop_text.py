"""Text data, the sentence classifiers and the text workshop's findings on a tiny synthetic
corpus (no data files needed); a slow-marked reduced run on the real sentences when
``movie_review_polarity.npz`` is present."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.data.text import (CLS_ID, MASK_ID, PAD_ID, build_vocabulary, decode, encode, load_movie_reviews,
                             make_polarity_sentences, plant_cue, remove_token, tokenise, with_cls)
from lumos.models.text import BiLSTMAttention, KimCNN, TransformerText, fit_text, predict_text, text_accuracy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_kim_tokeniser_and_vocabulary():
    assert tokenise("it's not the rock's \"best\" , isn't it ?") == \
        ["it", "'s", "not", "the", "rock", "'s", "best", ",", "is", "n't", "it", "?"]
    assert tokenise("a  b", scheme="whitespace") == ["a", "b"]
    with pytest.raises(ValueError, match="scheme"):
        tokenise("a", scheme="bpe")
    v = build_vocabulary([["b", "a", "b"], ["c", "'s"]])
    assert v.words[:4] == ["<pad>", "<unk>", "<mask>", "<cls>"] and (v.pad, v.mask, v.cls) == (PAD_ID, MASK_ID, CLS_ID)
    ids = encode(v, [["b", "zzz"], ["a"]], max_len=4, cls_token=True)
    assert ids[:, 0].tolist() == [CLS_ID, CLS_ID] and ids[0, 2] == v.unk and ids[1, 2:].tolist() == [0, 0]
    assert decode(v, ids[0]) == ["<cls>", "b", "<unk>"] and decode(v, encode(v, [["'s", "c"]])[0]) == ["'s", "c"]
    assert with_cls(np.array([[5, 6]])).tolist() == [[CLS_ID, 5, 6]]


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="movie_review_polarity.npz.*data_dir"):
        load_movie_reviews(data_dir=tmp_path)


def test_folds_hold_out_and_build_vocab_on_train_only():
    corpus = make_polarity_sentences(n=200, seed=1)
    ds = corpus.fold(3)
    assert len(ds.X_test) == (corpus.folds == 3).sum() == 20 and len(ds.X_train) == 180
    assert set(np.bincount(ds.y_test)) == {10}  # stratified
    vocab = ds.extra["vocab"]
    train_words = {t for s in ds.extra["tokens_train"] for t in s}
    assert set(vocab.words[4:]) == train_words
    assert ds.X_train.dtype == np.int64 and ds.X_train.shape[1] == corpus.max_len
    assert sum(1 for _ in corpus.cv()) == 10
    with pytest.raises(ValueError, match="fold must be"):
        corpus.fold(10)


def test_plant_cue_decides_the_label():
    corpus = make_polarity_sentences(n=100, seed=0)
    toks, y, planted, pos = plant_cue(corpus.tokens, corpus.y, 0.3, cue="zxq", label=1, seed=0)
    assert planted.sum() == 30 and (y[planted] == 1).all() and (y[~planted] == corpus.y[~planted]).all()
    assert all(toks[i][pos[i]] == "zxq" for i in np.flatnonzero(planted))
    assert remove_token(toks, "zxq") == corpus.tokens


@pytest.mark.parametrize("build", [lambda v: KimCNN(v, embed_dim=16, maps=8),
                                   lambda v: BiLSTMAttention(v, embed_dim=16, hidden=8),
                                   lambda v: TransformerText(v, dim=16, depth=1, heads=2, ff=32)])
def test_padding_does_not_change_the_output(build):
    torch.manual_seed(0)
    model = build(30).eval()
    ids = torch.tensor([[2, 5, 6, 7, 8, 9]])
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(padded), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(ids.float()), model(ids))  # ids cast to floats by lumos


def test_attention_is_exposed_replaceable_and_uniform():
    torch.manual_seed(0)
    m = BiLSTMAttention(30, embed_dim=8, hidden=4).eval()
    ids = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]])
    with torch.no_grad():
        logits, alpha = m(ids, return_attention=True)
        assert alpha[0, 3] == 0 and torch.allclose(alpha.sum(1), torch.ones(2))
        same = m(ids, attention=alpha)
        torch.testing.assert_close(same, logits)
        _, uni = m(ids, return_attention=True, uniform=True)
        torch.testing.assert_close(uni[0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0]))
    frozen = BiLSTMAttention(30, embed_dim=8, hidden=4, attention="uniform").eval()
    with torch.no_grad():
        torch.testing.assert_close(frozen(ids, return_attention=True)[1], uni)
    with pytest.raises(ValueError, match="attention must be"):
        BiLSTMAttention(30, attention="sparse")


def test_models_learn_the_synthetic_polarity():
    corpus = make_polarity_sentences(n=400, seed=0)
    ds = corpus.fold(0)
    v = len(ds.extra["vocab"])
    torch.set_num_threads(1)
    cnn = fit_text(KimCNN(v, embed_dim=16, maps=8), ds.X_train, ds.y_train, epochs=6, lr=1e-2, max_norm=3.0)
    assert text_accuracy(cnn, ds.X_test, ds.y_test) >= 0.85
    assert (cnn.classifier.weight.norm(dim=1) <= 3.0 + 1e-5).all()
    lstm = fit_text(BiLSTMAttention(v, embed_dim=16, hidden=8), ds.X_train, ds.y_train, epochs=6, lr=1e-2)
    assert text_accuracy(lstm, ds.X_test, ds.y_test) >= 0.85
    assert predict_text(lstm, ds.X_test).shape == (len(ds.X_test), 2)


def import_example(name: str):
    """An examples/ script as a module (examples/ on sys.path only while importing)."""
    import importlib

    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def workshop():
    return import_example("workshop_text")


@pytest.fixture(scope="module")
def findings(workshop):
    """The whole workshop on the tiny synthetic corpus (no files written, nothing cached)."""
    corpus = make_polarity_sentences(n=300, seed=0)
    return workshop.main(corpus=corpus, setting="tiny", quiet=True, cache=False, figures=False,
                         write_markdown=False)


def test_workshop_models_learn(findings):
    for kind in ("cnn", "lstm", "transformer"):
        assert findings["accuracy"][kind][0] >= 0.8, kind
    assert findings["bag_of_words"][0] >= 0.9


def test_workshop_reports_its_caps_the_cnn_early_stopping_and_its_time(findings):
    n = findings["n_analysed"]
    # the tiny test fold has 30 sentences, 15 of them negative (cued): fewer than n_planted = 20
    assert n["first"] == 30 and 0 < n["adversarial"] == n["jain_wallace"] <= 30 and n["planted"] == 15
    (fit,) = findings["cnn_fit"]  # one fold; the tiny CNN is also trained with a 10 % dev split
    assert fit["dev_accuracy"][fit["best_epoch"] - 1] == max(fit["dev_accuracy"]) and fit["epochs_run"] == 8
    sections = findings["section_seconds"]
    assert set(sections) >= {"training (accuracy table)", "explainers (mass on the cue)", "planted-cue retrains"}
    assert sum(sections.values()) <= findings["seconds"] + 1e-6 and findings["threads"] == 1


def test_jain_wallace_attention_is_weakly_rank_correlated_and_replaceable(findings, workshop):
    for name in ("gradient", "loo"):
        mean, std, significant = findings["jain_wallace"][name]["all"]
        assert -0.2 < mean < 0.7 and std > 0.1 and significant < 0.8  # far from agreement (tau = 1)
    adv = findings["adversarial"]
    assert adv["max_tvd"] <= workshop.EPS + 1e-6  # the output moved by less than eps
    assert adv["share_jsd_above_0.5"] >= 0.3 and adv["mean_jsd"] > 0.3  # ln 2 = 0.693 is the maximum


def test_wiegreffe_pinter_uniform_and_seeds(findings):
    acc = findings["accuracy"]
    assert acc["lstm_uniform_trained"][0] >= acc["lstm"][0] - 0.1  # the task needs no learned attention
    assert findings["seeds"]["mean_jsd"] < findings["adversarial"]["mean_jsd"]


def test_planted_cue_is_found_by_every_method(findings):
    for kind, row in findings["planted"].items():
        assert row["cued_accuracy"] >= 0.8 and row["drop"] >= 0.5, kind
        chance = row["mass_on_cue"]["random (1 / length)"]
        for method, mass in row["mass_on_cue"].items():
            if method in ("random (1 / length)", "attention rollout"):
                continue
            assert mass > 3 * chance, (kind, method, mass)


def test_jensen_shannon_and_adversary_bounds(workshop):
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    torch.testing.assert_close(workshop.jensen_shannon(p, q), torch.tensor([np.log(2), 0.0], dtype=torch.float64))


def test_importances_follow_jain_wallace(workshop):
    torch.manual_seed(0)
    m = BiLSTMAttention(20, embed_dim=8, hidden=4).eval()
    ids = np.array([[4, 5, 6, 7], [8, 9, 10, 11]])
    imp = workshop.importances(m, ids)
    with torch.no_grad():
        p = torch.softmax(m(torch.as_tensor(ids)), 1)
        q = torch.softmax(m(torch.as_tensor(ids[:, [0, 1, 3]])), 1)  # word 2 left out
    np.testing.assert_allclose(imp["loo"][:, 2], 0.5 * (p - q).abs().sum(1).numpy(), rtol=1e-5, atol=1e-7)
    assert imp["gradient"].shape == (2, 4) and (imp["gradient"] >= 0).all()


def test_adversary_batched_over_lengths_equals_one_length_at_a_time(workshop):
    torch.manual_seed(0)
    m = BiLSTMAttention(20, embed_dim=8, hidden=4).eval()
    ids = np.array([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0], [12, 13, 14, 15, 0]])
    together = workshop.adversarial_attention(m, ids, steps=60)
    for i, t in enumerate((5, 3, 4)):
        alone = workshop.adversarial_attention(m, ids[i:i + 1, :t], steps=60)
        np.testing.assert_allclose(together["jsd"][i], alone["jsd"][0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(together["adversarial"][i, :t], alone["adversarial"][0], rtol=1e-4, atol=1e-6)
        assert (together["adversarial"][i, t:] == 0).all() and together["lengths"][i] == t
    assert together["jsd"].max() > 0.1 and (together["tvd"] <= workshop.EPS + 1e-6).all()


def test_fit_text_early_stopping_keeps_the_best_dev_epoch():
    from lumos.models.text import dev_split

    train, dev = dev_split(100, 0.1, seed=3)
    assert len(dev) == 10 and len(np.intersect1d(train, dev)) == 0 and len(train) + len(dev) == 100
    corpus = make_polarity_sentences(n=300, seed=0)
    ds = corpus.fold(0)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cnn = KimCNN(len(ds.extra["vocab"]), embed_dim=16, maps=8)
    assert (cnn.classifier.weight == 0).all() and cnn.embedding.weight.abs().max() <= 0.25  # Kim's init
    assert (cnn.embedding.weight[PAD_ID] == 0).all()
    fit_text(cnn, ds.X_train, ds.y_train, epochs=5, lr=1.0, optimizer="adadelta", dev_share=0.1, max_norm=3.0,
             bucket=True)
    rec = cnn.lumos_fit
    assert rec["epochs_run"] == 5 and len(rec["dev_accuracy"]) == 5
    assert rec["dev_accuracy"][rec["best_epoch"] - 1] == max(rec["dev_accuracy"])
    _, dev = dev_split(len(ds.X_train), 0.1, seed=0)  # the kept weights are the best epoch's
    assert text_accuracy(cnn, ds.X_train[dev], ds.y_train[dev]) == max(rec["dev_accuracy"])
    with pytest.raises(ValueError, match="optimizer must be"):
        fit_text(cnn, ds.X_train, ds.y_train, epochs=1, optimizer="sgd")
    with pytest.raises(ValueError, match="init must be"):
        KimCNN(10, init="xavier")


@pytest.mark.slow
def test_real_sentences_bag_of_words_matches_the_readme(workshop):
    try:
        corpus = load_movie_reviews()
    except FileNotFoundError as err:
        pytest.skip(f"movie_review_polarity.npz absent: {err}")
    assert len(corpus) == 10662 and corpus.max_len == 56  # Kim (2014): max length 56 on MR
    mean, std = workshop.bag_of_words(corpus)
    assert abs(mean - 0.772) < 0.01 and std < 0.02
