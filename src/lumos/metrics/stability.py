"""Robustness of explanations to small changes of the input: how much the explanation
moves relative to how much the input (or the model's output or representation) moves.

- :func:`local_lipschitz_estimate` (Alvarez-Melis & Jaakkola 2018, arXiv:1806.08049):
  ``max_s ||Phi(x) - Phi(x_s)||_2 / ||x - x_s||_2`` over Gaussian neighbours ``x_s``.
- :func:`continuity` (Montavon, Samek & Müller 2018, Digital Signal Processing 73):
  ``max_s ||Phi(x) - Phi(x_s)||_1 / ||x - x_s||_2`` over translations ``x_s`` of ``x``
  along its last axis.
- :func:`relative_input_stability`, :func:`relative_output_stability`,
  :func:`relative_representation_stability` (Agarwal et al. 2022, "Rethinking stability
  for attribution-based explanations", arXiv:2203.06877): the relative change of the
  explanation ``||(Phi(x) - Phi(x_s)) / Phi(x)||_2`` over the relative change of the input,
  the change of the logits, or the relative change of internal representations, maximised
  over perturbations that keep the predicted class.
- :func:`consistency` (Dasgupta, Frost & Moshkovitz 2022, ICML, arXiv:2205.05306): the
  probability that two inputs with the same (discretised) explanation get the same
  prediction.

Every metric that runs the explainer builds, for a chunk of inputs, the inputs followed by
all their perturbed copies and explains them in **one** explainer call (the explainer's own
``batch_size`` bounds its model calls), and scores them in one batched model call; the
target of each copy is the one explained at ``x``. Noise is drawn chunk after chunk from
``seed`` (the same draws for any ``batch_size``) as ``rng.<dist>(size=(k, n_samples) +
x.shape[1:])``; each input and its copies keep their positions (``row_offset``) so a
stochastic explainer draws the same noise for them however the inputs are chunked.

Agreement with Quantus 0.6 (tests/test_metrics_quantus_robustness.py): the same noise fed
to Quantus through a ``perturb_func`` that returns ``x + noise[:, step]`` (rounded to the
input dtype, as the model sees it), ``batch_size`` covering all inputs, and normalisation
per input (see :mod:`lumos.metrics.complexity`). Differences from Quantus, by design:
perturbations that change the prediction are *left out* of the maximum (``skip_changed``,
Agarwal et al.'s definition), where Quantus's ``return_nan_when_prediction_changes=True``
makes the whole input NaN; lumos equals Quantus on every input Quantus keeps.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch

from lumos.core.batching import chunk_slices
from lumos.core.explanation import Explanation
from lumos.core.validate import check_choice, check_finite, check_positive_int, targets_of
from lumos.metrics._base import explain_fn, inputs_of, inputs_per_call, metric, scorer
from lumos.metrics.complexity import flat_values, prepare

_EPS_LIPSCHITZ = 1e-10  # Quantus's lipschitz_constant
_EPS_CONTINUITY = 1e-9  # Quantus's Continuity

ATTRIBUTIONS_DOC = (
    "Every metric here takes ``attributions=``: the explanation Phi(x) of the inputs computed beforehand (an "
    ":class:`~lumos.core.explanation.Explanation`, a tensor or an array with one row per input, made by the same "
    "explainer), as the attribution metrics take it and as Quantus's ``a_batch``. Then only the perturbed copies "
    "are explained; ``inputs=None`` takes the inputs an Explanation carries and ``target=None`` its targets. "
    "A stochastic explainer seeds the copies as rows after the inputs (``row_offset``), so they do not reuse "
    "the noise of Phi(x).")


# -- shared machinery ------------------------------------------------------------------
def _second_moment_rows(a: np.ndarray) -> np.ndarray:
    """``a / sqrt(mean(a^2))`` per row (Agarwal et al.'s normalisation, Quantus's
    ``normalise_by_average_second_moment_estimate`` per input); all-zero rows stay."""
    rms = np.sqrt((a ** 2).mean(axis=1, keepdims=True))
    return np.divide(a, rms, out=np.array(a, copy=True), where=rms > 0)


class _Layers:
    """Forward hooks on named modules of a view collecting the flattened outputs of every
    call (several model calls per chunk), per layer in the order the layers first fired.

    Hooks registered on the metric's view are carried into the view an explainer makes of
    it (:func:`lumos.core.view.make_view` copies the hook dictionaries), so the layer outputs
    of the explainer's own forward pass are collected too."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str] | None):
        modules = dict(model.named_modules())
        if names is None:
            chosen = {n: m for n, m in modules.items() if n and not any(True for _ in m.children())}
            chosen = chosen or {"": model}  # a model without submodules: its output
        else:
            names = [names] if isinstance(names, str) else list(names)
            missing = [n for n in names if n not in modules]
            if missing:
                shown = ", ".join(n for n in modules if n)[:400]
                raise ValueError(f"layers {missing} are not modules of the model; candidates: {shown}")
            chosen = {n: modules[n] for n in names}
        if not chosen:
            raise ValueError("no layers to take representations from")
        self.chosen = chosen
        self.store: dict[str, list[np.ndarray]] = {}

    def __enter__(self):
        def make(name):
            def hook(module, inputs, output):
                out = output[0] if isinstance(output, (tuple, list)) else output
                self.store.setdefault(name, []).append(out.detach().cpu().reshape(out.shape[0], -1).numpy())
            return hook

        self.handles = [m.register_forward_hook(make(n)) for n, m in self.chosen.items()]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def take(self, rows: int | None = None) -> list[np.ndarray] | None:
        """The collected outputs, one ``(rows, r_l)`` array per layer (the model's dtype:
        float32, Quantus's arithmetic, half the memory), and the store emptied; None when
        ``rows`` is given and some layer did not see exactly that many rows (the explainer
        ran the model at other points too)."""
        store, self.store = self.store, {}
        parts = [v[0] if len(v) == 1 else np.concatenate(v) for v in store.values()]
        if rows is not None and (len(parts) != len(self.chosen) or any(len(p) != rows for p in parts)):
            return None
        return parts


def _one_forward_at_rows(explainer, view) -> bool:
    """Whether the explainer's forward pass is one pass at exactly the explained rows (the
    single-pass gradient methods: saliency, Gradient x Input, guided backprop, Deconvnet), so
    that the layer outputs it computes are the representations of those rows; the count of
    rows each hook saw is checked as well (:meth:`_Layers.take`)."""
    from lumos.methods.gradient.base import GradientExplainer

    return (isinstance(explainer, GradientExplainer) and explainer.single_pass
            and not any(isinstance(m, torch.jit.ScriptModule) for m in view.modules()))


def _precomputed(attributions, x: np.ndarray) -> np.ndarray:
    """Phi(x) given by the caller as ``(N, d)`` float64 (an Explanation, tensor or array)."""
    a = flat_values(attributions)
    check_finite(a, "attributions")
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"attributions have {a.shape[0]} rows but there are {x.shape[0]} inputs; pass the "
                         "explanations of these inputs (or attributions=None to explain them)")
    return a


def check_width(given: np.ndarray, phi: np.ndarray) -> None:
    """Phi(x) given (N, d) against the explainer's values at the copies (k, S, d')."""
    if phi.shape[2] != given.shape[1]:
        raise ValueError(f"the attributions have {given.shape[1]} values per input but the explainer gives "
                         f"{phi.shape[2]}: pass attributions made by this explainer")


def _runs(explainer, model, inputs, target, n_copies, make_copies, batch_size, layers=False, layer_names=None,
          score=True, attributions=None):
    """For each chunk of inputs: ``(slice, x (k, d), copies (k, S, d), phi (k, S+1, d),
    scores (k, S+1, K) or None, reps)`` with ``phi``/``scores`` of the inputs (index 0) and
    their copies and ``reps`` None or one ``(L(x) (k, r_l), L(x_s) (k, S, r_l))`` pair per layer.

    The inputs and their copies are explained in one explainer call per chunk; the scores are
    the explainer's own (its forward pass at these rows, ``Explanation.prediction``) when it
    returns them, and so are the layer outputs when that pass is one pass at these rows
    (:func:`_one_forward_at_rows`: hooks on the view the explainer runs on), so the rows are
    not run twice; otherwise one more (hooked) model call scores them.

    ``attributions`` (Phi(x), computed beforehand): only the copies are explained (rows
    ``n + i*S + s`` of a stochastic explainer's seeds: after the ``n`` inputs), and the scores and
    layer outputs at x come from the forward pass that resolves the targets, which an
    :class:`Explanation` gives when ``target`` is None. That pass is left out when nothing needs
    it: the targets given, Phi(x) explained here or its scores not asked for, and a lumos
    explainer, which checks the targets' range on its own pass."""
    x = inputs_of(inputs, attributions)
    given = None if attributions is None else _precomputed(attributions, x)
    if given is not None and target is None and isinstance(attributions, Explanation):
        target = attributions.target
    n, shape = x.shape[0], x.shape[1:]
    rows = n_copies + (given is None)  # rows explained per input
    from lumos.methods.base import Explainer

    t = targets_of(target, n)
    # the forward pass over x: for the predicted classes, x's scores and layer outputs when Phi(x) is
    # given, and to check the targets' range for explainers that do not check it on their own pass
    over_x = t is None or (given is not None and (score or layers)) or not isinstance(explainer, Explainer)
    with scorer(model, x[0].size, "raw", batch_size) as adapter:
        hooks = _Layers(adapter.model, layer_names) if layers else None
        if over_x:
            with hooks if hooks is not None and given is not None else contextlib.nullcontext():
                s0 = adapter.scores(x)
            reps0 = hooks.take() if hooks is not None and given is not None else None
            t = adapter.targets(target, s0)
        elif np.ndim(t) == 0:
            t = np.full(n, t, dtype=np.int64)
        fused = hooks is not None and _one_forward_at_rows(explainer, adapter.model)
        run = explain_fn(explainer.with_model(adapter.model) if fused else explainer, with_prediction=True)
        per = inputs_per_call(batch_size, x[0].size, rows)
        for sl in chunk_slices(n, per):
            k = sl.stop - sl.start
            copies = make_copies(x[sl], sl).astype(x.dtype, copy=False)  # (k, S, ...) as the model sees them
            batch = (copies.reshape(-1, *shape) if given is not None
                     else np.concatenate([x[sl, None], copies], axis=1).reshape(-1, *shape))
            offset = n + sl.start * n_copies if given is not None else sl.start * rows
            with hooks if fused else contextlib.nullcontext():
                phi, pred = run(adapter.model if fused else model, batch, np.repeat(t[sl], rows), row_offset=offset)
            reps = hooks.take(len(batch)) if fused else None
            have_pred = pred is not None and np.ndim(pred) == 2 and len(pred) == len(batch)
            if hooks is not None and (reps is None or not have_pred):
                with hooks:
                    pred = adapter.scores(batch)
                reps, have_pred = hooks.take(), True
            scores = None
            if score or hooks is not None:
                scores = (pred if have_pred else adapter.scores(batch)).reshape(k, rows, -1).astype(np.float64)
            phi = flat_values(phi).reshape(k, rows, -1)
            if given is not None:
                check_width(given, phi)
                phi = np.concatenate([given[sl, None], phi], axis=1)
                if scores is not None:
                    scores = np.concatenate([s0[sl, None].astype(np.float64), scores], axis=1)
            if reps is not None and given is not None:
                reps = [(r0[sl], r.reshape(k, n_copies, -1)) for r0, r in zip(reps0, reps)]
            elif reps is not None:
                reps = [(r[:, 0], r[:, 1:]) for r in (r.reshape(k, rows, -1) for r in reps)]
            yield (sl, x[sl].reshape(k, -1).astype(np.float64), copies.reshape(k, n_copies, -1).astype(np.float64),
                   phi, scores, reps)


def _changed(scores: np.ndarray) -> np.ndarray:
    """(k, S): whether copy s changes the predicted class of its input."""
    pred = scores.argmax(axis=2)
    return pred[:, 1:] != pred[:, :1]


def _max(values: np.ndarray, scores: np.ndarray | None, skip_changed: bool) -> np.ndarray:
    """Max over copies, those changing the class left out when ``skip_changed``."""
    if skip_changed:
        values = np.where(_changed(scores), np.nan, values)
        out = np.full(values.shape[0], np.nan)
        ok = ~np.isnan(values).all(axis=1)
        out[ok] = np.nanmax(values[ok], axis=1)
        return out
    return values.max(axis=1)


def _noise(rng, n_samples: int, kind: str, a: float, b: float):
    """Copies ``x + noise``: ``"uniform"`` on [a, b), ``"gaussian"`` with mean a, std b."""
    if kind == "uniform" and not b > a:
        raise ValueError(f"the upper bound must exceed the lower bound, got [{a}, {b}]")
    if kind == "gaussian" and b < 0:
        raise ValueError(f"noise_std must be >= 0, got {b}")

    def make(xk, sl):
        size = (xk.shape[0], n_samples) + xk.shape[1:]
        noise = rng.uniform(a, b, size) if kind == "uniform" else rng.normal(a, b, size)
        return xk[:, None] + noise
    return make


def _relative(diff: np.ndarray, ref: np.ndarray, eps: float) -> np.ndarray:
    """``||diff / (ref + (ref == 0) eps)||_2`` over the last axis (Quantus's guard)."""
    return np.linalg.norm(diff / (ref + (ref == 0) * eps), axis=-1)


def _relative_squares(ref: np.ndarray, copies: np.ndarray, eps: float) -> np.ndarray:
    """``||(ref - copies) / (ref + (ref == 0) eps)||_2^2`` (k, S) for ``ref`` (k, r) and
    ``copies`` (k, S, r), in the representations' dtype as Quantus computes it (the difference
    and the quotient, here as a product with the reciprocal taken once per feature, not per
    copy), the squares summed in float64. Summed over layers, it is the squared relative
    change of their concatenation."""
    inv = (1.0 / (ref + (ref == 0) * eps)).astype(copies.dtype, copy=False)
    diff = ref[:, None] - copies
    diff *= inv[:, None]
    return np.einsum("ksr,ksr->ks", diff, diff, dtype=np.float64)


# -- Lipschitz and continuity --------------------------------------------------------------
@metric("local_lipschitz_estimate", "robustness", higher_is_better=False, needs="explainer")
def local_lipschitz_estimate(explainer, model, inputs, target=None, *, n_samples: int = 200, noise_std: float = 0.1,
                             noise_mean: float = 0.0, normalise: bool = True, absolute: bool = False,
                             skip_changed: bool = False, batch_size: int | None = None, seed=0,
                             attributions=None) -> np.ndarray:
    """Local Lipschitz estimate per input (Alvarez-Melis & Jaakkola 2018), lower is better.

    ``L(x) = max_s ||Phi(x) - Phi(x_s)||_2 / (||x - x_s||_2 + 1e-10)`` with
    ``x_s = x + N(noise_mean, noise_std^2)`` per feature, ``n_samples`` neighbours, Phi
    normalised by its max |.| per input (``normalise``) and made absolute (``absolute``)
    first. ``skip_changed`` leaves out neighbours whose predicted class differs from x's
    (NaN if all do). Quantus 0.6 ``LocalLipschitzEstimate`` defaults (nr_samples=200,
    perturb_std=0.1, normalise=True, abs=False, return_nan_when_prediction_changes=False).
    A constant explainer scores 0.

    ``attributions``: Phi(x) already computed (an Explanation or array, as Quantus's
    ``a_batch``), so that only the neighbours are explained (:data:`ATTRIBUTIONS_DOC`)."""
    n_samples = check_positive_int(n_samples, "n_samples")
    rng = np.random.default_rng(seed)
    out = np.empty(len(inputs_of(inputs, attributions)))
    for sl, x, xs, phi, scores, _ in _runs(explainer, model, inputs, target, n_samples,
                                           _noise(rng, n_samples, "gaussian", noise_mean, noise_std), batch_size,
                                           score=skip_changed, attributions=attributions):
        phi = prepare(phi.reshape(-1, phi.shape[2]), normalise, absolute).reshape(phi.shape)
        num = np.linalg.norm(phi[:, 1:] - phi[:, :1], axis=2)
        den = np.linalg.norm(xs - x[:, None], axis=2) + _EPS_LIPSCHITZ
        out[sl] = _max(num / den, scores, skip_changed)
    return out


def translate(x: np.ndarray, shift: int, fill: np.ndarray) -> np.ndarray:
    """``x`` (N, ..., L) moved by ``shift`` positions along the last axis (right for
    ``shift > 0``), the uncovered positions set to ``fill`` (one value per input)."""
    length = x.shape[-1]
    s = int(np.clip(shift, -length, length))
    out = np.empty_like(x)
    out[...] = fill.reshape((-1,) + (1,) * (x.ndim - 1))
    if s > 0:
        out[..., s:] = x[..., :length - s]
    elif s < 0:
        out[..., :length + s] = x[..., -s:]
    else:
        out[...] = x
    return out


def fill_values(x: np.ndarray, fill) -> np.ndarray:
    """One fill value per input: ``"min"`` (Quantus's "black": the input's minimum),
    ``"max"`` ("white"), ``"mean"`` or a number."""
    flat = x.reshape(x.shape[0], -1)
    if isinstance(fill, str):
        check_choice(fill, "fill", ("min", "max", "mean"))
        return getattr(flat, fill)(axis=1)
    return np.full(x.shape[0], float(fill), dtype=x.dtype)


@metric("continuity", "robustness", higher_is_better=False, data=("timeseries", "image"), needs="explainer")
def continuity(explainer, model, inputs, target=None, *, n_steps: int = 28, fill="min", normalise: bool = True,
               absolute: bool = True, skip_changed: bool = False, batch_size: int | None = None,
               attributions=None) -> np.ndarray:
    """Continuity per input (Montavon et al. 2018), lower is better.

    ``C(x) = max_s ||Phi(x) - Phi(x_s)||_1 / (||x - x_s||_2 + 1e-9)`` over ``n_steps``
    translations ``x_s`` of x along its last axis (the width of an image, the time of a
    series) by ``-L + s * ((2L + 1) // n_steps)``, s = 1..n_steps, positions uncovered set to
    ``fill`` (``"min"``: the input's minimum, Quantus's "black"). Phi is normalised by its
    max |.| per input and made absolute (Quantus's defaults). Quantus 0.6 ``Continuity``
    with ``nr_steps=n_steps`` (its ``nr_patches`` is unused; it supports images only; a
    ``(C, T)`` series is its ``(C, 1, T)`` image). ``(N, d)`` tables are translated along
    their features, which means something only where their order does (spectra).
    ``attributions``: Phi(x) already computed (:data:`ATTRIBUTIONS_DOC`)."""
    x0 = inputs_of(inputs, attributions)
    if x0.ndim < 2:
        raise ValueError(f"continuity translates along the last axis of (N, C, T) series or (N, C, H, W) images; "
                         f"got inputs of shape {x0.shape}")
    n_steps = check_positive_int(n_steps, "n_steps")
    length = x0.shape[-1]
    dx = max((2 * length + 1) // n_steps, 1)
    n_steps = min(n_steps, 2 * length + 1)  # every translation once when more are asked for than exist
    shifts = [-length + dx * (s + 1) for s in range(n_steps)]

    def make(xk, sl):
        f = fill_values(xk, fill).astype(xk.dtype)
        return np.stack([translate(xk, s, f) for s in shifts], axis=1)

    out = np.empty(len(x0))
    for sl, x, xs, phi, scores, _ in _runs(explainer, model, x0, target, n_steps, make, batch_size,
                                           score=skip_changed, attributions=attributions):
        phi = prepare(phi.reshape(-1, phi.shape[2]), normalise, absolute).reshape(phi.shape)
        num = np.abs(phi[:, 1:] - phi[:, :1]).sum(axis=2)
        den = np.linalg.norm(xs - x[:, None], axis=2) + _EPS_CONTINUITY
        out[sl] = _max(num / den, scores, skip_changed)
    return out


# -- relative stability (Agarwal et al. 2022) -------------------------------------------------
def _relative_stability(kind, explainer, model, inputs, target, n_samples, low, high, eps_min, normalise, absolute,
                        skip_changed, batch_size, seed, layers=None, attributions=None):
    n_samples = check_positive_int(n_samples, "n_samples")
    if low < 0:
        raise ValueError(f"low must be >= 0, got {low}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(inputs_of(inputs, attributions)))
    for sl, x, xs, phi, scores, reps in _runs(explainer, model, inputs, target, n_samples,
                                              _noise(rng, n_samples, "uniform", low, high), batch_size,
                                              layers=kind == "representation", layer_names=layers,
                                              score=skip_changed or kind != "input", attributions=attributions):
        flat = phi.reshape(-1, phi.shape[2])
        if normalise:
            flat = _second_moment_rows(flat)
        phi = (np.abs(flat) if absolute else flat).reshape(phi.shape)
        num = _relative(phi[:, :1] - phi[:, 1:], phi[:, :1], eps_min)
        if kind == "input":
            den = _relative(x[:, None] - xs, x[:, None], eps_min)
        elif kind == "output":
            den = np.linalg.norm(scores[:, :1] - scores[:, 1:], axis=2)
        else:
            den = np.sqrt(sum(_relative_squares(ref, copies, eps_min) for ref, copies in reps))
        den = den + (den == 0) * eps_min
        out[sl] = _max(num / den, scores, skip_changed)
    return out


_STABILITY_DOC = """
    ``{name}(x) = max_s ||(Phi(x) - Phi(x_s)) / Phi(x)||_2 / {den}`` over ``n_samples``
    copies ``x_s = x + U[low, high)`` per feature (Quantus's default noise: always
    positive, 0.02 to 0.2), left out when they change the predicted class
    (``skip_changed``; NaN if all do). Divisions by zero are guarded as in Quantus:
    ``Phi(x) + eps_min`` where ``Phi(x) = 0`` and ``eps_min`` for a zero denominator.
    ``normalise`` divides each map by ``sqrt(mean(Phi^2))`` (Agarwal et al.; off by
    default as in Quantus). Lower is more stable. Equal to Quantus 0.6
    ``{cls}(nr_samples=n_samples)`` with the same noise on every input Quantus keeps.
    ``attributions``: Phi(x) already computed (Quantus's ``a_batch``; :data:`ATTRIBUTIONS_DOC`)."""


@metric("relative_input_stability", "robustness", higher_is_better=False, needs="explainer")
def relative_input_stability(explainer, model, inputs, target=None, *, n_samples: int = 200, low: float = 0.02,
                             high: float = 0.2, eps_min: float = 1e-6, normalise: bool = False,
                             absolute: bool = False, skip_changed: bool = True, batch_size: int | None = None,
                             seed=0, attributions=None) -> np.ndarray:
    return _relative_stability("input", explainer, model, inputs, target, n_samples, low, high, eps_min, normalise,
                               absolute, skip_changed, batch_size, seed, attributions=attributions)


@metric("relative_output_stability", "robustness", higher_is_better=False, needs="explainer")
def relative_output_stability(explainer, model, inputs, target=None, *, n_samples: int = 200, low: float = 0.02,
                              high: float = 0.2, eps_min: float = 1e-6, normalise: bool = False,
                              absolute: bool = False, skip_changed: bool = True, batch_size: int | None = None,
                              seed=0, attributions=None) -> np.ndarray:
    return _relative_stability("output", explainer, model, inputs, target, n_samples, low, high, eps_min, normalise,
                               absolute, skip_changed, batch_size, seed, attributions=attributions)


@metric("relative_representation_stability", "robustness", higher_is_better=False, needs="explainer")
def relative_representation_stability(explainer, model, inputs, target=None, *, layers=None, n_samples: int = 200,
                                      low: float = 0.02, high: float = 0.2, eps_min: float = 1e-6,
                                      normalise: bool = False, absolute: bool = False, skip_changed: bool = True,
                                      batch_size: int | None = None, seed=0, attributions=None) -> np.ndarray:
    return _relative_stability("representation", explainer, model, inputs, target, n_samples, low, high, eps_min,
                               normalise, absolute, skip_changed, batch_size, seed, layers=layers,
                               attributions=attributions)


relative_input_stability.__doc__ = "Relative input stability per input (Agarwal et al. 2022).\n" + _STABILITY_DOC.format(
    name="RIS", den="max(||(x - x_s) / x||_2, eps_min)", cls="RelativeInputStability")
relative_output_stability.__doc__ = "Relative output stability per input (Agarwal et al. 2022).\n" + _STABILITY_DOC.format(
    name="ROS", den="max(||h(x) - h(x_s)||_2, eps_min)`` with ``h`` the logits (the raw outputs)",
    cls="RelativeOutputStability")
relative_representation_stability.__doc__ = (
    "Relative representation stability per input (Agarwal et al. 2022).\n" + _STABILITY_DOC.format(
        name="RRS", den="max(||(L(x) - L(x_s)) / L(x)||_2, eps_min)`` with ``L`` the flattened outputs of "
                        "``layers`` (module names; None: every leaf module, as Quantus's default on a Sequential "
                        "model; a model without submodules: its output) concatenated in the order they run",
        cls="RelativeRepresentationStability(layer_names=layers)"))


# -- consistency (Dasgupta et al. 2022) ----------------------------------------------------------
DISCRETISE = ("top_n", "first_n_sign", "sign", "rank", "round")


def discretise(a: np.ndarray, how: str = "top_n", n: int = 5, decimals: int = 2) -> np.ndarray:
    """One integer label per row of ``a`` (N, d): rows get the same label iff their
    discretised explanations are equal.

    - ``"top_n"``: the positions of the ``n`` largest values, in order (ties by position).
    - ``"first_n_sign"``: the signs of the first ``n`` features of the flattened map
      (Quantus 0.6's ``top_n_sign``, its default, which despite its name reads the first
      ``n`` features, not the largest).
    - ``"sign"``: the sign of every feature; ``"rank"``: the full ranking (ties by
      position); ``"round"``: the values rounded to ``decimals``.
    """
    check_choice(how, "discretise", DISCRETISE)
    if how == "top_n":
        n = check_positive_int(n, "n")
        keys = np.argsort(-a, axis=1, kind="stable")[:, :n].astype(np.float64)
    elif how == "first_n_sign":
        keys = np.sign(a[:, :check_positive_int(n, "n")])
    elif how == "sign":
        keys = np.sign(a)
    elif how == "rank":
        keys = np.argsort(a, axis=1, kind="stable")[:, ::-1].astype(np.float64)
    else:
        keys = np.round(a, decimals)
    keys = keys + 0.0  # -0.0 and 0.0 are one value
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


@metric("consistency", "robustness", higher_is_better=True)
def consistency(model, inputs, attributions, target=None, *, discretise_by: str = "top_n", n: int = 5,
                decimals: int = 2, normalise: bool = True, absolute: bool = True, batch_size: int | None = None
                ) -> np.ndarray:
    """Consistency per input (Dasgupta et al. 2022): among the *other* inputs whose
    discretised explanation equals this one's, the fraction predicted as the same class
    (NaN when no other input shares its explanation; Quantus returns 0 there). Higher is
    better: an explanation that determines the prediction scores 1.

    The explanations are made absolute and normalised first (Quantus's defaults), then
    discretised (:func:`discretise`; Quantus's default is ``"first_n_sign"``). The score
    is over all inputs given; Quantus 0.6 ``Consistency`` computes it within each of its
    batches, so the two agree when its ``batch_size`` covers the inputs. O(N): labels are
    grouped, not compared pairwise. The explained target is not used (predictions are the
    model's argmax)."""
    x = inputs_of(inputs, attributions)
    a = prepare(flat_values(attributions), normalise, absolute)
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"attributions have {a.shape[0]} rows but there are {x.shape[0]} inputs")
    labels = discretise(a, discretise_by, n, decimals)
    with scorer(model, x[0].size, "raw", batch_size) as adapter:
        pred = adapter.scores(x).argmax(axis=1)
    _, pair = np.unique(np.stack([labels, pred], axis=1), axis=0, return_inverse=True)
    pair = pair.reshape(-1)
    same_label = np.bincount(labels)[labels] - 1
    same_both = np.bincount(pair)[pair] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(same_label > 0, same_both / np.maximum(same_label, 1), np.nan)
