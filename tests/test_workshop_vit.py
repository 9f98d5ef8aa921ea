"""The ViT workshop's findings on scikit-learn's 8 x 8 digits (no data files needed): the
planted square decides the class, the attention-aware methods find it, AttnLRP equals LXT."""
from __future__ import annotations

import pytest

from tests.test_workshop_text import import_example


@pytest.fixture(scope="module")
def findings():
    from lumos.data import load_digits

    return import_example("workshop_vit").main(quiet=True, setting="tiny", cache=False, mnist=load_digits(), figures=False)


def test_the_planted_square_decides_the_class(findings):
    assert findings["clean_accuracy"] >= 0.7
    assert findings["cued_called_7"] >= 0.8 > 0.1 >= findings["clean_others_called_7"]


def test_methods_beat_a_random_ranking_and_find_the_square(findings):
    aopc, mass, area = findings["aopc"], findings["mass_on_square"], findings["square_area_share"]
    for method in ("rollout", "Chefer", "AttnLRP", "IG"):
        assert aopc[method][0] > aopc["random"][0], method
    for method in ("Chefer", "AttnLRP", "IG"):
        assert mass[method] > 3 * area, method


def test_attnlrp_equals_lxt(findings):
    pytest.importorskip("lxt")
    assert findings["lxt"]["rel_diff"] < 1e-5
