"""Quantus 0.6.0's robustness, complexity, localisation and axiom metrics on a small fixed
CNN: the reference that ``tests/test_metrics_quantus_robustness.py`` checks lumos against
(live when Quantus is installed, from the frozen
``tests/data/quantus_robustness_reference.json`` otherwise). Regenerate with
``python -m benchmarks.quantus_robustness_reference``.

The same model, inputs, attributions, explainer and noise in both libraries:

- the explainer is lumos's signed :class:`~lumos.Saliency`, handed to Quantus as its
  ``explain_func`` (inputs cast to float32, as lumos's copies are);
- noise: lumos draws ``default_rng(seed).<dist>(size=(N, n_samples) + x.shape[1:])``
  (chunk after chunk, the same for any batch size); Quantus gets it through a
  ``perturb_func`` returning ``x + noise[:, step]`` rounded to float32, with one batch
  covering all inputs;
- normalisation: Quantus's ``normalise_by_max`` divides by the maximum of the whole batch;
  ``normalise_func_kwargs={"normalise_axes": (1, 2, 3)}`` makes it per input, as lumos;
- prediction changes: ``return_nan_when_prediction_changes=True`` makes an input NaN in
  Quantus where lumos leaves the changing copies out (the test compares where Quantus is
  finite); ``False`` is compared everywhere with ``skip_changed=False``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "quantus_robustness_reference.json"
N, SAMPLES, SEED = 8, 6, 0
PER_INPUT = {"normalise_axes": (1, 2, 3)}


def setup():
    """A seeded (untrained) CNN, 8 inputs 1 x 12 x 12 with a dark top band, the predicted
    classes, signed saliency, a 5 x 5 mask and 2 x 2 mosaic tiles."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nn = torch.nn
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 16), nn.ReLU(),
                              nn.Linear(16, 3)).eval()
    rng = np.random.default_rng(1)
    x = rng.random((N, 1, 12, 12)).astype(np.float32)
    x[:, :, :3] = 0
    with torch.no_grad():
        y = model(torch.as_tensor(x)).argmax(1).numpy()
    a = explain(model, x, y)
    mask = np.zeros_like(x)
    mask[:, :, 4:9, 4:9] = 1
    tiles = rng.random((N, 4)) < 0.5
    tiles[:, 0] = True
    return model, x, y, a, mask, tiles


def consistency_setup():
    """A seeded linear classifier on Gaussian inputs (its predictions vary: 3 classes over
    8 inputs) and signed maps made of 3 prototypes rescaled by random positive factors,
    prototype 2 with the first feature's sign flipped in the odd inputs: the sign
    discretisations group inputs 0/3/6, 1/4/7 and 2 apart from 5."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 3)).eval()
    rng = np.random.default_rng(2)
    xc = rng.standard_normal((N, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        yc = clf(torch.as_tensor(xc)).argmax(1).numpy()
    protos = rng.standard_normal((3, 144))
    maps = protos[np.arange(N) % 3] * rng.uniform(0.5, 2.0, (N, 1))
    maps[5, 0] = -maps[5, 0]
    return clf, xc, yc, maps.reshape(xc.shape).astype(np.float32)


def explain(model, inputs, targets, **kwargs):
    from lumos import Saliency

    return Saliency(model, absolute=False).explain(np.asarray(inputs, dtype=np.float32),
                                                   target=np.asarray(targets)).values


def noise(kind: str, a: float, b: float, shape) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    size = (N, SAMPLES) + tuple(shape)
    return rng.uniform(a, b, size) if kind == "uniform" else rng.normal(a, b, size)


class Replay:
    """A Quantus ``perturb_func``: ``arr + noise[:, step]`` as float32, step after step."""

    def __init__(self, z: np.ndarray):
        self.z, self.step = z, 0

    def __call__(self, arr, indices=None, **kwargs):
        out = (arr + self.z[:, self.step].reshape(arr.shape[0], -1)).astype(np.float32)
        self.step += 1
        return out


def import_quantus():
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():
        import quantus

    return quantus


def quantus_values(quantus) -> dict[str, list]:
    model, x, y, a, mask, tiles = setup()
    clf, xc, yc, maps = consistency_setup()
    common = dict(model=model, x_batch=x, y_batch=y, batch_size=N)
    out = {}

    def put(name, values):
        out[name] = [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]

    put("effective_complexity", quantus.EffectiveComplexity(eps=1e-2, normalise_func_kwargs=PER_INPUT,
                                                            disable_warnings=True)(a_batch=a, **common))
    put("local_lipschitz_estimate", quantus.LocalLipschitzEstimate(
        nr_samples=SAMPLES, perturb_func=Replay(noise("gaussian", 0.0, 0.1, x.shape[1:])),
        normalise_func_kwargs=PER_INPUT, disable_warnings=True)(a_batch=a, explain_func=explain, **common))
    classes = {"input": quantus.RelativeInputStability, "output": quantus.RelativeOutputStability,
               "representation": quantus.RelativeRepresentationStability}
    for kind, cls in classes.items():
        for high, skip in ((0.2, True), (3.0, True), (3.0, False)):
            put(f"relative_{kind}_stability/high={high}/nan={skip}", cls(
                nr_samples=SAMPLES, perturb_func=Replay(noise("uniform", 0.02, high, x.shape[1:])),
                return_nan_when_prediction_changes=skip, disable_warnings=True)(a_batch=a, explain_func=explain,
                                                                                 **common))
    put("continuity", quantus.Continuity(nr_steps=12, normalise_func_kwargs=PER_INPUT, disable_warnings=True)(
        a_batch=a, explain_func=explain, **common))
    dis = quantus.functions.discretise_func
    for how, fn in (("first_n_sign", dis.top_n_sign), ("sign", dis.sign)):
        put(f"consistency/{how}", quantus.Consistency(discretise_func=fn, abs=False, normalise_func_kwargs=PER_INPUT,
                                                      disable_warnings=True)(
            model=clf, x_batch=xc, y_batch=yc, a_batch=maps, batch_size=N))
    put("non_sensitivity", quantus.NonSensitivity(eps=1e-3, perturb_baseline=0.0, normalise_func_kwargs=PER_INPUT,
                                                  disable_warnings=True)(a_batch=a, **common))
    put("attribution_localisation", quantus.AttributionLocalisation(disable_warnings=True)(
        a_batch=a, s_batch=mask, **common))
    put("top_k_intersection", quantus.TopKIntersection(k=20, disable_warnings=True)(a_batch=a, s_batch=mask,
                                                                                   **common))
    put("focus", quantus.Focus(disable_warnings=True)(a_batch=a, custom_batch=[tuple(t) for t in tiles.astype(int)],
                                                      **common))
    from lumos import IntegratedGradients

    ig = IntegratedGradients(model, n_steps=64).explain(x, target=y)
    captured = []
    quantus.Completeness(normalise=False, perturb_baseline=0.0, disable_warnings=True,
                         output_func=lambda d: (captured.append(np.asarray(d)), d)[1])(a_batch=ig.values, **common)
    put("completeness/f(x)-f(0)", captured[0])
    return out


def main():
    quantus = import_quantus()
    values = quantus_values(quantus)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps({"quantus": quantus.__version__, "values": values}, indent=1) + "\n")
    print(f"wrote {REFERENCE} ({len(values)} entries)")


if __name__ == "__main__":
    main()
