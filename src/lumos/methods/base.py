"""The explainer template: configuration in ``__init__``, data in ``explain()``.

:meth:`Explainer.explain` is the one entry point of every method and is never overridden.
It validates the inputs and options, opens a private view of the model
(:func:`lumos.core.view.model_view`: the user's model is never modified, so calls from
several threads do not interfere), plans chunks under one :class:`~lumos.core.batching.RowBudget`,
and assembles the :class:`~lumos.core.explanation.Explanation`. A method implements:

``prepare(x, call, **options) -> state``
    Per-call preparation (baselines, noise, coalitions, the layer to read), returned and
    passed down, never stored on ``self``. The default returns ``State(call)``.
``attribute_chunk(x, targets, state) -> Chunk``
    The attribution of one chunk of inputs (a numpy array). ``targets(scores)`` resolves
    the targets of these rows from scores computed in the same pass (None: the predicted
    class); ``targets.index`` holds the rows' positions in the batch (for per-row seeds).

and optionally ``finish(x, result, state) -> dict`` for fields computed on the whole
batch (``base_value``, ``delta``, ``meta``). The class declares what it needs and supports
as metadata (``layouts``, ``needs_gradients``, ``needs_layer``, ``needs_background``,
``needs_labels``, ``stochastic``, ``torchscript``, ``scope``, ``call_options``); the report, the
command line, ``lumos methods`` and the tests read :meth:`Explainer.capabilities` and
:meth:`Explainer.applicability` instead of guessing from names.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from lumos.core.batching import RowBudget, balanced_slices
from lumos.core.explanation import Explanation
from lumos.core.model import EstimatorScores, ModelAdapter, as_adapter, hook_free_kind, table_columns
from lumos.core.registry import closest
from lumos.core.validate import as_array, check_finite, require_float, resolve_target, targets_of
from lumos.core.view import model_view

LAYOUTS = ("tabular", "timeseries", "image")


def layout_of(shape: tuple[int, ...]) -> str:
    """``"tabular"`` for (N, d), ``"timeseries"`` for (N, C, T), ``"image"`` for (N, C, H, W)
    (and ``"volume"`` for more axes)."""
    return {2: "tabular", 3: "timeseries", 4: "image"}.get(len(shape), "volume")


class Targets:
    """The targets of one chunk: ``targets(scores)`` returns one output index per row
    (as a LongTensor on the scores' device for tensors, int64 numpy otherwise), the given
    ones or, for None, the argmax of the scores; ``index`` holds the rows' positions in
    the explained batch, ``given`` what the user passed for them."""

    __slots__ = ("given", "index")

    def __init__(self, given, index: np.ndarray):
        self.given, self.index = given, index

    def __call__(self, scores):
        if isinstance(scores, torch.Tensor):
            t = resolve_target(self.given, scores.detach().cpu().numpy())
            return torch.as_tensor(t, device=scores.device)
        return resolve_target(self.given, np.asarray(scores))

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class Chunk:
    """What :meth:`Explainer.attribute_chunk` returns for one chunk of rows: values shaped
    like the rows (or broadcastable), the scores ``(n, K)`` and targets ``(n,)`` of the pass
    that produced them, and extras with a leading row axis (concatenated over chunks)."""

    values: Any
    scores: Any = None
    targets: Any = None
    extras: dict = field(default_factory=dict)


def _numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


class Progress:
    """A progress bar over the model rows a call evaluates: shown on a terminal for calls
    that last more than two seconds, never otherwise (``progress=False`` turns it off)."""

    def __init__(self, enabled: bool, total: int | None, label: str):
        self.bar = None
        if enabled and total and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=int(total), unit="rows", unit_scale=True, delay=2.0, desc=label, leave=False)

    def update(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(int(rows))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Call:
    """What one ``explain()`` call knows besides the inputs: the adapter bound to this
    call's private view of the model, the row budget, the seed drawn for the call, the
    offset of the first row (``explain_dataset`` passes it, so row seeds do not depend on
    the chunking) and the progress bar."""

    adapter: ModelAdapter
    budget: RowBudget
    kind: str
    seed: int | None = None
    row_offset: int = 0
    progress: Progress | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """Contexts entered by ``prepare`` (hooks, rules) stay open for the call and close after it."""
    gradient_seen: bool = False
    """Set by gradient methods once any input gradient was non-zero."""
    step_functions: list | None = None
    """Piecewise-constant operations (round, sign...) found in the graph of a zero gradient."""
    positions: np.ndarray | None = None
    """Where row ``i`` stands in the explained batch (None: at ``i``), for per-row seeds."""

    @property
    def model(self):
        return self.adapter.model

    def note_gradient(self, grad: torch.Tensor) -> None:
        if not self.gradient_seen and bool((grad != 0).any()):
            self.gradient_seen = True

    def count_rows(self, rows: int) -> None:
        if self.progress is not None:
            self.progress.update(rows)

    def rows(self, sample_numel: int, kind: str | None = None) -> int:
        """Rows per model call (see :class:`RowBudget`)."""
        return self.budget.rows(sample_numel, kind or self.kind)

    def row_seed(self, i: int) -> np.random.SeedSequence:
        """The seed of row ``i`` of the batch: ``(seed, row_offset + i)``, the same whatever
        the batch size or chunking."""
        at = int(i) if self.positions is None else int(self.positions[int(i)])
        return np.random.SeedSequence([int(self.seed), int(self.row_offset) + at])

    def rng(self, i: int) -> np.random.Generator:
        """A numpy generator for row ``i`` of the batch."""
        return np.random.default_rng(self.row_seed(i))

    def torch_generator(self, i: int) -> torch.Generator:
        """A CPU torch generator for row ``i`` of the batch."""
        return torch.Generator().manual_seed(int(self.row_seed(i).generate_state(1)[0]))

    def shared_rng(self) -> np.random.Generator:
        """A generator for draws shared by every row of the call (coalitions, permutations):
        seeded by the seed alone, so the draws do not depend on the rows either."""
        return np.random.default_rng(int(self.seed))


class State:
    """Per-call state of a method: the call plus whatever ``prepare`` computed."""

    def __init__(self, call: Call, **fields):
        self.call = call
        self.__dict__.update(fields)

    @property
    def adapter(self) -> ModelAdapter:
        return self.call.adapter


class Explainer:
    """Base of every lumos explainer.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The model to explain. Gradient-based methods need a torch module; model-agnostic
        methods accept any ``numpy -> scores`` callable.
    output : {"raw", "softmax", "log_softmax", "sigmoid"}
        Which score to explain; ``"raw"`` (default) is the logit.
    batch_size : int or None
        The most rows one model call sees (None: sized from the input's element count,
        see :class:`~lumos.core.batching.RowBudget`). Results do not depend on it.
    device : str or torch.device, optional
        Run on this device (e.g. ``"cuda"``); the user's model stays where it is.
    progress : bool, default True
        Show a progress bar on a terminal for calls that take more than two seconds.
    embedding : nn.Module or str, optional
        Text (token ids ``(N, T)``): the layer that embeds the ids (default: the
        ``nn.Embedding`` that reads them); see :mod:`lumos.core.text`.
    pad_token, baseline_token : int, optional
        Text: the padding id (positions holding it get relevance 0; default the embedding's
        ``padding_idx``) and the id that stands for a removed token (IG's baseline, the
        occlusion value; default the pad token, else 0).
    """

    name: ClassVar[str] = ""
    # -- declared capabilities ------------------------------------------------------
    layouts: ClassVar[tuple[str, ...]] = LAYOUTS
    """Input layouts the method explains (``tabular`` (N, d), ``timeseries`` (N, C, T), ``image``)."""
    needs_gradients: ClassVar[bool] = False
    """Needs a torch module (takes gradients or hooks)."""
    needs_layer: ClassVar[bool] = False
    """Needs a layer with positions (a conv or recurrent layer): the CAM family."""
    needs_background: ClassVar[bool] = False
    """Needs ``background=`` rows (Shapley values)."""
    needs_labels: ClassVar[bool] = False
    """Needs the true labels as ``target`` (global methods scored against y)."""
    needs_attention: ClassVar[bool] = False
    """Needs a model returning attention weights."""
    stochastic: ClassVar[bool] = False
    """Draws random numbers (takes ``seed``; ``seed=None`` draws a fresh one and records it)."""
    torchscript: ClassVar[bool] = True
    """Works on TorchScript modules (no hooks on submodules)."""
    scope: ClassVar[str] = "local"
    """``"global"`` for methods that explain a whole labelled set (permutation importance)."""
    call_options: ClassVar[dict[str, Any]] = {}
    """Options of ``explain()`` with their defaults (besides ``target`` and ``row_offset``)."""

    def __init__(self, model, *, output: str = "raw", batch_size: int | None = None, device=None,
                 progress: bool = True, embedding=None, pad_token: int | None = None,
                 baseline_token: int | None = None):
        self.adapter: ModelAdapter = as_adapter(model, output=output, torch_module=self._needs_torch())
        if self.needs_gradients and not self.adapter.is_torch:
            why = getattr(self.adapter.model, "lumos_needs_torch", None)
            raise TypeError(
                f"{type(self).__name__} needs gradients, so the model must be a torch.nn.Module; "
                f"got {type(self.adapter.model).__name__}{f' ({why})' if why else ''}. Use a model-agnostic method "
                "(occlusion, lime, kernel_shap) for other models."
            )
        refused = self._hook_free_refusal(self.adapter.model)
        if refused:
            raise TypeError(f"{type(self).__name__} {refused}")
        self.budget = RowBudget(batch_size)
        self.device = device
        self.progress = bool(progress)
        for key, tok in (("pad_token", pad_token), ("baseline_token", baseline_token)):
            if tok is not None and (isinstance(tok, bool) or not isinstance(tok, (int, np.integer)) or tok < 0):
                raise ValueError(f"{key} must be a token id (an int >= 0) or None, got {tok!r}")
        self.text_config = {"embedding": embedding, "pad_token": None if pad_token is None else int(pad_token),
                            "baseline_token": None if baseline_token is None else int(baseline_token)}

    # -- capabilities -----------------------------------------------------------------
    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """What the method needs and supports, as declared by the class."""
        return {"layouts": list(cls.layouts), "needs_gradients": cls.needs_gradients, "needs_layer": cls.needs_layer,
                "needs_background": cls.needs_background, "needs_labels": cls.needs_labels,
                "needs_attention": cls.needs_attention, "stochastic": cls.stochastic,
                "torchscript": cls.torchscript, "scope": cls.scope}

    @classmethod
    def _needs_torch(cls) -> bool:
        """Whether the method needs a torch module (gradients, hooks, a layer, attention)."""
        return cls.needs_gradients or cls.needs_layer or cls.needs_attention or not cls.torchscript

    @classmethod
    def _hook_free_refusal(cls, model) -> str | None:
        """Why this hook-based method cannot run on ``model`` (TorchScript, torch.export,
        Keras), naming the methods that can; None when it can."""
        kind = hook_free_kind(model)
        if kind is None or cls.torchscript:
            return None
        from lumos.core.registry import available

        hook_free = [n for n, c in available().items() if c.torchscript and c.needs_gradients
                     and not c.needs_attention and c.scope == "local"]
        return (f"needs hooks on the model's layers, which {kind} does not have. On it run the hook-free "
                f"gradient methods ({', '.join(hook_free)}) or any model-agnostic one (occlusion, lime, "
                "kernel_shap); for this method " + ("the model must be a PyTorch nn.Module (Keras layers run "
                "outside torch's module calls)" if "Keras" in kind else "load the nn.Module itself (build it in "
                "Python and load_state_dict, or on the command line a state dict with --factory module:callable)"))

    @classmethod
    def applicability(cls, model, layout: str) -> str | None:
        """None when the method applies to ``model`` and inputs of ``layout``, else why not."""
        convert = getattr(model, "lumos_torch_module", None)  # an ONNX model: onnx2torch for torch methods
        if convert is not None and cls._needs_torch() and layout in cls.layouts:
            try:
                model = convert()
            except (ImportError, ValueError) as err:
                return str(err).splitlines()[0]
        is_torch = isinstance(model, torch.nn.Module)
        if cls.needs_gradients and not is_torch:
            return "needs a torch model (gradients)"
        if layout == "text":  # token ids (N, T): every method explains them through lumos.methods.text
            if not (is_torch and any(isinstance(m, torch.nn.Embedding) for m in model.modules())):
                return "explains token ids through the model's nn.Embedding; this model has none"
        elif layout not in cls.layouts:
            return f"explains {', '.join(cls.layouts)} inputs, not {layout}"
        kind = hook_free_kind(model)
        if kind is not None and not cls.torchscript:
            return f"needs hooks on layers, which {kind} does not have; load the nn.Module"
        if cls.needs_layer:
            kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.RNNBase)
            if not (is_torch and any(isinstance(m, kinds) for m in model.modules())):
                return "needs a convolutional or recurrent layer over space or time"
        if cls.needs_attention:
            from lumos.core.model import accepts_keyword

            if not (is_torch and accepts_keyword(model, "return_attention")):
                return "needs a model whose forward takes return_attention=True"
        return None

    @property
    def model(self):
        return self.adapter.model

    def with_model(self, model) -> "Explainer":
        """The same configuration on another model (a randomised copy, a retrained model).
        Layers are held by name, so they are found again in ``model``."""
        other = copy.copy(self)
        other.adapter = as_adapter(model, output=self.adapter.output, torch_module=self._needs_torch())
        return other

    def params(self) -> dict[str, Any]:
        """The configuration recorded in each Explanation."""
        out = {"output": self.adapter.output, "batch_size": self.budget.batch_size}
        if isinstance(self.adapter.model, EstimatorScores):
            out["scores"] = repr(self.adapter.model)  # which method of a scikit-learn estimator gives the scores
        if self.device is not None:
            out["device"] = str(self.device)
        if self.text_config["embedding"] is not None:
            emb = self.text_config["embedding"]
            out["embedding"] = emb if isinstance(emb, str) else type(emb).__name__
        return out

    # -- the template -------------------------------------------------------------------
    def explain(self, inputs, target=None, **options) -> Explanation:
        """Explain a batch of inputs.

        Parameters
        ----------
        inputs : array or tensor, shape (N, ...)
            A batch: (N, d) tables, (N, C, T) time series, (N, C, H, W) images.
        target : None, int or sequence of ints
            Output to explain: None for the predicted class, an int for all inputs,
            or one int per input (for global methods: the true labels).
        **options
            The method's call options (``call_options``), and ``row_offset``: the position
            of the first input in a larger dataset, so that per-row seeds do not depend on
            how the dataset is chunked.
        """
        row_offset = options.pop("row_offset", 0)
        if isinstance(row_offset, bool) or not isinstance(row_offset, (int, np.integer)) or row_offset < 0:
            raise ValueError(f"row_offset must be a non-negative integer, got {row_offset!r}")
        from lumos.methods.text import TEXT_OPTIONS, explain_text, is_text

        passed = set(options)
        text_options = {k: options.pop(k) for k in TEXT_OPTIONS if k in options}
        class_names = options.pop("class_names", None)
        options = self._check_options(options)
        columns = table_columns(inputs)  # a DataFrame's column names: the explanation's features
        if columns is not None and options.get("feature_names", 0) is None and options.get("groups") is None:
            options["feature_names"] = columns  # methods naming their features (groups) take the table's
        raw = as_array(inputs)
        if text_options or is_text(self, raw):  # token ids: the text layout (lumos.methods.text)
            given = self._validate_target(target, raw.shape[0])
            return explain_text(self, raw, given, options, text_options, passed, int(row_offset), self._call_seed())
        x = self._validate(raw)
        if not self.needs_labels:
            target = self.adapter.class_target(target, class_names)  # "malignant" -> its score column
        given = self._validate_target(target, x.shape[0])
        result = self._run(x, given, options, int(row_offset), self._call_seed())
        if columns is not None and result.feature_names is None and len(columns) == x.shape[-1]:
            result.feature_names = columns
        names = class_names if class_names is not None else self.adapter.class_names
        if names is not None and "class_names" not in result.meta:
            result.meta["class_names"] = [str(n) for n in names]
        return result

    def _run(self, x: np.ndarray, given, options: dict, row_offset: int, seed, positions: np.ndarray | None = None,
             model=None) -> Explanation:
        """The template's body on validated inputs: view, prepare, chunks, assembly.
        ``positions``: where the rows of ``x`` stand in the explained batch, for per-row seeds
        (default ``0..N-1``; the text layout explains groups of rows); ``model``: a module
        already built on a private view (explained as it is)."""
        kind = "backward" if self.needs_gradients else "forward"
        opened = model_view(self.adapter.model, self.device) if model is None else contextlib.nullcontext(model)
        with opened as model:
            budget = self.budget.for_model(model)
            call = Call(None, budget, kind, seed, int(row_offset), positions=positions)
            call.adapter = self.adapter.bound(model, batch_size=budget.rows(x[0].size, "forward"),
                                              on_rows=call.count_rows,
                                              automatic=budget.batch_size is None and budget.max_rows is None)
            try:
                with call.stack:
                    state = self.prepare(x, call, **options)
                    call.progress = Progress(self.progress, self.expected_rows(x, state), type(self).__name__)
                    chunks = [self.attribute_chunk(x[sl], Targets(_part(given, sl), np.arange(sl.start, sl.stop)),
                                                   state) for sl in self.plan(x, state)]
                    result = self._assemble(x, given, chunks, state)
            except RuntimeError as err:
                if "modified by an inplace operation" in str(err):
                    raise ValueError(
                        "the model's parameters were modified while it was being explained (a training step in "
                        "another thread?); explain a snapshot instead, e.g. lumos.explain(copy.deepcopy(model), ...)"
                    ) from err
                raise
            finally:
                if call.progress is not None:
                    call.progress.close()
        if self.stochastic:
            result.params["seed"] = seed
        return result

    def _check_options(self, options: dict) -> dict:
        known = dict(self.call_options)
        unknown = [k for k in options if k not in known]
        if unknown:
            from lumos.core.registry import options_of

            key = unknown[0]
            config = [n for n, o in options_of(type(self)).items() if o.where == "config"]
            if key in config:
                hint = f"; {key!r} configures the method: pass it to the constructor, {type(self).__name__}(model, {key}=...)"
            else:
                hint = closest(key, list(known) + config + ["row_offset", "class_names"])
            listed = ", ".join(sorted(known)) or "none besides target"
            raise TypeError(f"{type(self).__name__}.explain() got an unknown option {key!r}{hint}. "
                            f"Its options: {listed}")
        return {**known, **options}

    def _validate(self, inputs) -> np.ndarray:
        x = as_array(inputs)
        if self.needs_gradients:
            require_float(x, type(self).__name__)
        layout = layout_of(x.shape)
        if layout not in self.layouts and not (layout == "volume" and "image" in self.layouts):
            shapes = " or ".join(f"{k} {_LAYOUT_SHAPES[k]}" for k in self.layouts)
            hint = " (N, C, positions...)" if "tabular" not in self.layouts else ""
            raise ValueError(f"{type(self).__name__} needs inputs shaped{hint} as {shapes}; got shape {x.shape}"
                            )
        return x

    def _validate_target(self, target, n: int):
        if self.needs_labels:
            if target is None:
                raise ValueError(f"{type(self).__name__} needs the true labels: explain(X, y)")
            y = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
            if y.ndim != 1 or y.shape[0] != n:
                raise ValueError(f"the labels must be one per input ({n}), got shape {y.shape}")
            check_finite(y, "labels")
            return y
        return targets_of(target, n)

    def _call_seed(self) -> int | None:
        if not self.stochastic:
            return None
        seed = getattr(self, "seed", 0)
        if seed is None:
            return int(np.random.SeedSequence().entropy % (2**63))
        return int(seed)

    # -- what a method implements --------------------------------------------------------
    def prepare(self, x: np.ndarray, call: Call, **options) -> State:
        """Per-call state (never stored on ``self``); ``options`` are the call options."""
        return State(call, **options)

    def attribute_chunk(self, x: np.ndarray, targets: Targets, state) -> Chunk:
        raise NotImplementedError

    def expansion(self, state) -> int:
        """Model rows per input (IG steps, noise samples, perturbed copies), for chunking."""
        return 1

    def expected_rows(self, x: np.ndarray, state) -> int | None:
        """Model rows the call will evaluate, for the progress bar (None: no bar)."""
        return x.shape[0] * (self.expansion(state) + 1)

    def plan(self, x: np.ndarray, state) -> list[slice]:
        """Chunks of inputs: as many as the budget allows given the expansion; global
        methods see the whole set."""
        if self.scope == "global":
            return [slice(0, x.shape[0])]
        call = state.call
        per = call.budget.inputs_per_chunk(x[0].size, self.expansion(state), call.kind)
        return list(balanced_slices(x.shape[0], per))

    def finish(self, x: np.ndarray, result: Explanation, state) -> None:
        """Complete the assembled explanation in place (delta, base value, meta)."""

    # -- assembly ---------------------------------------------------------------------
    def _assemble(self, x, given, chunks: list[Chunk], state) -> Explanation:
        values = np.concatenate([_numpy(c.values) for c in chunks])
        scores = None if chunks[0].scores is None else np.concatenate([_numpy(c.scores) for c in chunks])
        if scores is not None:
            check_finite(scores, "model scores")
        targets = None if chunks[0].targets is None else np.concatenate([_numpy(c.targets) for c in chunks])
        extras = {k: np.concatenate([_numpy(c.extras[k]) for c in chunks]) for k in chunks[0].extras}
        result = Explanation(values=values, target=targets, method=self.name, params=self.params(),
                             prediction=scores, inputs=x, extras=extras, scope=self.scope)
        self.finish(x, result, state)
        return result

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({params})"


def record_completeness(result: Explanation, base_value, dtype=None) -> np.ndarray:
    """Set ``result.base_value`` and the completeness error of each input,
    ``delta = Σ values − (f_target(x) − base_value)`` (summed in ``dtype``); returns f_target(x)."""
    rows = np.arange(len(result.target))
    f_x = result.prediction[rows, result.target]
    result.base_value = base_value
    result.delta = result.values.reshape(len(rows), -1).sum(1, dtype=dtype) - (f_x - base_value)
    return f_x


_LAYOUT_SHAPES = {"tabular": "(N, d)", "timeseries": "(N, C, T)", "image": "(N, C, H, W)"}


def _part(given, sl: slice):
    if given is None or np.ndim(given) == 0:
        return given
    return given[sl]
