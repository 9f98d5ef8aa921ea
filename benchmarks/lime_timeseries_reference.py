"""captum 0.9's ``Lime`` on a small rare-feature series (Crabbé & van der Schaar's ARMA
experiment with the white box ``SalientSquares``): the reference that
``tests/test_lime_timeseries.py`` checks lumos's captum configuration against (live when
captum is installed, from the frozen ``tests/data/lime_timeseries_captum.json`` otherwise).
Regenerate with ``python -m benchmarks.lime_timeseries_reference``.

captum runs with its defaults (``SkLearnLasso(alpha=0.01)``, the exponential kernel on the
cosine distance with width 1, the mask's groups switched to the baseline) on the samples
lumos draws for ``Lime(penalty="l1", alpha=0.01, kernel="cosine", include_input=False)``,
handed to captum through ``perturb_func``: the same design, so the two must agree to float
rounding (captum computes the kernel in float32).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import lumos
from lumos.data.synthetic_ts import make_rare_feature
from lumos.methods.agnostic.masking import window_groups
from lumos.models.temporal import SalientSquares

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "lime_timeseries_captum.json"
N, C, T, SUBSET, WINDOW, SAMPLES, SEED = 3, 8, 12, 3, 3, 60, 0
CAPTUM_CONFIG = {"penalty": "l1", "alpha": 0.01, "kernel": "cosine", "include_input": False}
"""lumos's options for captum's default ``Lime``."""


def setup():
    """The white box, inputs (N, C, T) float64, the baseline (the mean of 32 other series)
    and the groups (each channel in windows of 3 steps: 32 groups)."""
    ds = make_rare_feature(N, T, C, SUBSET, seed=0)
    model = SalientSquares(ds.extra["salient"]).double().eval()
    baseline = make_rare_feature(32, T, C, SUBSET, seed=1000).X.mean(0)
    groups = window_groups((C, T), (1, WINDOW))[0]
    return model, ds.X.astype(np.float64), baseline, groups, ds.mask


def lumos_with_draws(model, x, baseline, groups, seed=SEED, n_samples=SAMPLES, **options):
    """lumos's explanation and the samples it drew, {batch position: (M, G) array}."""
    lime = lumos.Lime(model, n_samples=n_samples, seed=seed, **{**CAPTUM_CONFIG, **options})
    drawn, blocks_of = {}, lime._blocks

    def recording(call, i, n_groups):
        blocks = blocks_of(call, i, n_groups)
        drawn[i] = np.concatenate([z for _, z in blocks()])
        return blocks

    lime._blocks = recording
    return lime.explain(x, target=0, baseline=baseline, groups=groups), drawn


def captum_values(model, x, baseline, groups, drawn=None, seed=SEED, n_samples=SAMPLES):
    """captum's default ``Lime`` per input (its values per element); on ``drawn[i]``'s samples
    when given, else on its own draws after ``torch.manual_seed(seed)``."""
    from captum.attr import Lime

    torch.manual_seed(seed)
    mask = torch.as_tensor(np.asarray(groups))[None]
    out = []
    for i in range(len(x)):
        kwargs = {}
        if drawn is not None:
            rows = iter(torch.as_tensor(drawn[i]).long())
            kwargs["perturb_func"] = lambda inp, **kw: next(rows)[None]
        a = Lime(model, **kwargs).attribute(torch.from_numpy(x[i:i + 1]), target=0, n_samples=n_samples,
                                            feature_mask=mask, baselines=torch.from_numpy(baseline[None]))
        out.append(a.detach().numpy()[0])
    return np.stack(out)


def main():
    import captum

    model, x, baseline, groups, _ = setup()
    _, drawn = lumos_with_draws(model, x, baseline, groups)
    values = captum_values(model, x, baseline, groups, drawn)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps({"captum": captum.__version__, "values": values.tolist()}) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
