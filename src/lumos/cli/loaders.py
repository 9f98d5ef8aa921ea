"""The command line's one loader of model and data files: nothing in a file runs as code
unless the user says so (``--trust-model``, or their own ``--factory``).

Model files (:func:`load_model`)
    - a TorchScript archive (``torch.jit.load``: TorchScript's own unpickler, which builds
      only torch types);
    - a state dict (or a checkpoint dict with ``"state_dict"``) read with
      ``torch.load(weights_only=True)`` into the module built by ``--factory module:callable``;
    - a ``torch.export`` archive (``.pt2``). ``torch.export.load`` unpickles weights, constants
      and sample inputs with ``weights_only=False`` fallbacks, evaluates the symbolic shape
      expressions stored in the archive with ``sympy.sympify`` (Python ``eval``) and loads
      compiled AOTInductor libraries; without ``--trust-model`` all three are blocked while it
      runs (pickles are read weights-only, expressions must be plain sympy terms, AOTInductor
      archives are refused);
    - a whole pickled module (``torch.save(model)``): only with ``--trust-model``, since
      unpickling it runs code named in the file;
    - an ONNX file (``.onnx``, a protobuf of operators and weights: no code): onnx2torch for the
      methods that need a torch module, onnxruntime for the others
      (:class:`lumos.integrations.onnx.OnnxModel`);
    - a Keras file (``.keras``, ``.h5``): only with ``--trust-model`` (Keras builds the classes
      its configuration names), read with ``safe_mode`` under the torch backend;
    - a pickled scikit-learn estimator or pipeline (``.joblib``, ``.pkl``, ``.pickle``): only
      with ``--trust-model``; the model-agnostic methods run on it.

Data files (:func:`load_data`, :func:`load_array`)
    ``.npz`` and ``.npy`` with ``allow_pickle=False``, numeric ``.csv``, UCR/UEA text files
    (``.tsv``, ``.ts``, ``.arff``) and, for ``explain-dataset``, Zarr arrays of a numeric
    dtype without a pickle codec.

Every problem with a file is a ``ValueError`` or ``FileNotFoundError`` whose first line says
what is wrong and what to do.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

from lumos.core.model import ExportedModel

TRUST_ADVICE = ("save a state dict (torch.save(model.state_dict(), path)) and pass --factory module:callable, "
                "save TorchScript (torch.jit.script(model).save(path)), or pass --trust-model if you trust the file")


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    if len(line) < 12 and line != type(err).__name__:  # KeyError('101'): say what it is
        line = f"{type(err).__name__}: {line}"
    return line if len(line) <= limit else line[:limit - 1] + "…"


# -- the user's code: --factory ----------------------------------------------------------
def load_factory(spec: str):
    """The callable named by ``module:callable`` (imported with the current directory on
    ``sys.path``) or ``path/to/file.py:callable``."""
    if ":" not in spec:
        raise ValueError(f"--factory must look like 'module:callable', got {spec!r}")
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"factory file {path} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            raise ImportError(f"cannot import {target!r} for --factory ({err})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ValueError(f"{target} has no callable named {attr!r}")
    return fn


# -- models ------------------------------------------------------------------------------
def load_model(path: str | os.PathLike, factory: str | None = None, *, trust_model: bool = False,
               device: str = "cpu"):
    """The model in ``path`` as a ``torch.nn.Module`` in eval mode on ``device``.

    Without ``trust_model`` no code stored in the file runs; a file that cannot be read that
    way (a whole pickled module) is refused with a ``ValueError`` saying what to do.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file {p} does not exist")
    if not p.is_file():
        raise ValueError(f"model file {p} is not a file")
    if factory is not None:
        model = load_factory(factory)()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"--factory {factory} returned {type(model).__name__}, expected a torch.nn.Module")
        state = _state_dict(_torch_load(p, device, trust_model), p)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"the weights in {p} do not fit the model from {factory}: "
                             f"{_first_line(err, 200)}") from None
        return model.to(device).eval()
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        from lumos.integrations.onnx import OnnxModel

        return OnnxModel(p)
    if suffix in (".keras", ".h5"):
        os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: its models are torch modules
        from lumos.integrations.keras import load as load_keras

        return load_keras(p, trust_model=trust_model)
    if suffix in (".joblib", ".pkl", ".pickle"):
        return _load_estimator(p, trust_model)
    if _is_export_archive(p):
        return _load_exported(p, trust_model, device)
    scripted = _torchscript(p, device)
    if scripted is not None:
        return scripted
    obj = _torch_load(p, device, trust_model,
                      what="TorchScript archive, torch.export archive (.pt2) or torch.save file")
    if isinstance(obj, dict):
        raise ValueError(f"{p} holds a state dict, not a TorchScript archive: give --factory module:callable "
                         "that builds the model")
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f"{p} holds a {type(obj).__name__}, expected a torch.nn.Module")
    return obj.to(device).eval()


def _load_estimator(p: Path, trust_model: bool):
    """A pickled scikit-learn estimator (joblib or pickle), with ``--trust-model`` only."""
    if not trust_model:
        raise ValueError(f"{p} is a pickled Python object (joblib/pickle): loading it would run code from the file; "
                         "pass --trust-model if you trust the file (or export the model to ONNX)")
    try:
        if p.suffix.lower() == ".joblib":
            import joblib

            obj = joblib.load(p)
        else:
            import pickle

            with p.open("rb") as fh:
                obj = pickle.load(fh)
    except Exception as err:  # noqa: BLE001 - any failure is a bad file
        raise ValueError(f"cannot read {p} as a pickled model ({_first_line(err)})") from None
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if not any(callable(getattr(obj, m, None)) for m in ("predict_proba", "decision_function", "predict")):
        raise TypeError(f"{p} holds a {type(obj).__name__}, expected a scikit-learn estimator (predict_proba, "
                        "decision_function or predict) or a torch.nn.Module")
    return obj


def _torchscript(p: Path, device: str):
    """The TorchScript module in ``p``, or None when ``p`` is not a TorchScript archive."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(p), map_location=device).eval()
    except (RuntimeError, ValueError):
        return None


def _torch_load(p: Path, device: str, trust_model: bool, what: str = "state dict"):
    """``torch.load`` weights-only; the full unpickler only when ``trust_model``."""
    import pickle

    try:
        return torch.load(str(p), map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise ValueError(f"cannot read {p} as a {what} ({_first_line(err)})") from None
        if not trust_model:
            found = re.search(r"(?i)unsupported (?:global: )?GLOBAL ([\w.]+)", str(err))
            needs = f" (it names {found.group(1)})" if found else ""
            raise ValueError(f"{p} holds pickled Python objects{needs}: loading it would run code from the file; "
                             f"{TRUST_ADVICE}") from None
    except Exception as err:  # noqa: BLE001 - every other failure is a bad file
        raise ValueError(f"cannot read {p} as a {what} ({_first_line(err)})") from None
    try:
        return torch.load(str(p), map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read {p} ({_first_line(err)})") from None


def _state_dict(obj, p: Path) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{p} holds {type(obj).__name__}, expected a state dict")
    return obj


# -- torch.export archives -----------------------------------------------------------------
def _is_export_archive(p: Path) -> bool:
    import zipfile

    if p.suffix.lower() == ".pt2":
        return True
    try:
        with zipfile.ZipFile(p) as z:
            return any(n == "archive_format" or n.endswith("/archive_format") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_exported(p: Path, trust_model: bool, device: str):
    import logging
    import zipfile

    if not trust_model:
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"cannot read {p} as a torch.export archive ({_first_line(err)})") from None
        if any("/data/aotinductor/" in f"/{n}" for n in names):
            raise ValueError(f"{p} holds compiled AOTInductor code (native libraries that would be loaded); "
                             "pass --trust-model if you trust the file")
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    quiet = [lg.disabled for lg in loggers]
    refused: list[str] = []
    try:
        for lg in loggers:  # torch logs whole tracebacks for malformed archives
            lg.disabled = True
        with (contextlib.nullcontext() if trust_model else _export_guard(refused)):
            program = torch.export.load(str(p))
            graph = program.module()
    except _Refused as err:
        raise ValueError(f"{p}: {err}; {TRUST_ADVICE}") from None
    except Exception as err:  # noqa: BLE001
        if refused:
            raise ValueError(f"{p}: {refused[0]}; {TRUST_ADVICE}") from None
        raise ValueError(f"cannot read {p} as a torch.export archive ({_first_line(err)})") from None
    finally:
        for lg, q in zip(loggers, quiet):
            lg.disabled = q
    if refused:
        raise ValueError(f"{p}: {refused[0]}; {TRUST_ADVICE}")
    return ExportedModel(graph).to(device).eval()


class _Refused(Exception):
    """Raised inside ``torch.export.load`` where it would run code from the archive (not a
    RuntimeError, which ``torch.export.load`` catches and retries)."""


#: Names a symbolic shape expression of a torch.export archive may use (sympy terms).
_SYMPY_NAMES = {
    "Symbol", "Integer", "Rational", "Float", "Max", "Min", "Abs", "Mod", "floor", "ceiling", "sqrt", "Piecewise",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Equality", "Unequality", "StrictLessThan",
    "StrictGreaterThan", "LessThan", "GreaterThan", "oo", "zoo", "nan", "pi", "E", "I", "True", "False", "true",
    "false", "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
    "even", "odd", "prime", "rational",
}
_TOKEN = re.compile(r"\s+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|'[A-Za-z_][A-Za-z0-9_]*'"
                    r"|\*\*|//|[<>=!]=|[-+*/%(),<>&|~^]|=")


def _plain_sympy(text: str, allowed) -> bool:
    """Whether ``text`` is built only of numbers, quoted symbol names, operators, and the
    names in ``_SYMPY_NAMES``, ``allowed`` or shaped like shape symbols (``s0``, ``u3``):
    no attribute access, no builtins, so evaluating it runs no code beyond sympy's."""
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return False
        tok = m.group()
        if (tok[0].isalpha() or tok[0] == "_") and not (tok in _SYMPY_NAMES or tok in allowed
                                                        or re.fullmatch(r"[a-z]{1,4}\d+", tok)):
            return False
        pos = m.end()
    return True


@contextlib.contextmanager
def _export_guard(refused: list):
    """For the duration: ``torch.load`` is weights-only, ``pickle.loads`` and TorchScript
    object unpickling in the archive reader refuse, AOTInductor loading refuses, and
    ``sympy.sympify`` takes only plain sympy terms. Restored afterwards."""
    import pickle

    import sympy
    from torch.export.pt2_archive import _package

    def refuse(what):
        def fn(*args, **kwargs):
            refused.append(what)
            raise _Refused(what)
        return fn

    real_load = torch.load
    real_sympify = sympy.sympify

    def weights_only_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        try:
            return real_load(f, *args, **kwargs)
        except pickle.UnpicklingError:
            refused.append("the archive holds pickled Python objects that would run code when loaded")
            raise _Refused(refused[-1]) from None

    def checked_sympify(a, *args, **kwargs):
        if isinstance(a, str) and not _plain_sympy(a, set(kwargs.get("locals") or {})):
            refused.append(f"the archive holds a shape expression that is not plain sympy ({a[:60]!r})")
            raise _Refused(refused[-1])
        return real_sympify(a, *args, **kwargs)

    no_pickle = types.ModuleType("pickle")
    no_pickle.__dict__.update(pickle.__dict__)
    no_pickle.loads = no_pickle.load = refuse("the archive holds pickled Python objects (opaque constants)")
    no_pickle.Unpickler = refuse("the archive holds pickled Python objects")
    patches = [(torch, "load", weights_only_load), (torch.serialization, "load", weights_only_load),
               (_package, "pickle", no_pickle), (sympy, "sympify", checked_sympify),
               (torch._C, "_pickle_load_obj", refuse("the archive holds pickled TorchScript objects")),
               (_package, "_load_aoti", refuse("the archive holds compiled AOTInductor code"))]
    saved = []
    try:
        for obj, name, value in patches:
            if not hasattr(obj, name):  # another torch: fail closed
                raise _Refused(f"this torch version cannot load torch.export archives safely ({name} moved)")
            saved.append((obj, name, getattr(obj, name)))
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


# -- data ----------------------------------------------------------------------------------
DATA_FORMATS = ".npz, .npy, .csv, .tsv, .ts or .arff"


def _numeric(X, p: Path, what: str = "inputs") -> None:
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{p}: {what} must be numeric, got dtype {X.dtype}")


def _npz_array(d, name: str, p: Path):
    try:
        return d[name]
    except ValueError as err:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise ValueError(f"{p}: array {name!r} holds pickled Python objects, which are not read "
                         f"(numeric arrays only; {_first_line(err)})") from None


def _read_npy(p: Path, mmap: bool = False):
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        text = str(err).lower()
        if "pickle" in text or "object" in text:
            raise ValueError(f"{p} holds pickled Python objects, which are not read (numeric arrays only)") from None
        raise ValueError(f"cannot read {p} as .npy ({_first_line(err)})") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read {p} as .npy ({_first_line(err)})") from None


def _open_npz(p: Path):
    try:
        archive = np.load(p, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"cannot read {p} as .npz ({_first_line(err)})") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read {p} as .npz ({_first_line(err)})") from None
    if isinstance(archive, np.ndarray):
        raise ValueError(f"{p} is a .npy file, not a .npz archive")
    return archive


def _label_column(X, header: list[str], column: str, p: Path):
    """Split the column named ``column`` off the table: ``(X, header, y, class_names)``;
    labels that are not whole numbers become class indices of their sorted names."""
    if column not in header:
        from lumos.core.registry import closest

        raise ValueError(f"{p} has no column {column!r} for --label-column{closest(column, header)}; "
                         f"its columns: {', '.join(header[:12])}{' ...' if len(header) > 12 else ''}")
    k = header.index(column)
    raw = X[:, k]
    keep = [j for j in range(X.shape[1]) if j != k]
    try:
        values = raw.astype(np.float64)
        whole = np.all(np.mod(values, 1) == 0)
    except ValueError:
        whole = False
    if whole:
        y, names = values.astype(np.int64), None
    else:
        names = sorted({str(v).strip() for v in raw})
        index = {n: i for i, n in enumerate(names)}
        y = np.array([index[str(v).strip()] for v in raw], dtype=np.int64)
    return X[:, keep], [header[j] for j in keep], y, names


def _read_csv(p: Path, label_column: str | None = None):
    import csv

    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read {p} as .csv ({_first_line(err)})") from None
    if not rows:
        raise ValueError(f"{p} is empty: expected a header row, then one row of numbers per input")
    header, body = rows[0], rows[1:]
    if not body:
        raise ValueError(f"{p} has a header row but no data rows")
    for k, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ValueError(f"{p}: row {k} has {len(r)} cells, the header {len(header)}")
    header = [h.strip() for h in header]
    y = names = None
    if label_column is not None:
        cells, header, y, names = _label_column(np.array(body, dtype=object), header, label_column, p)
        body = cells.tolist()
    try:
        X = np.array([[float(v) for v in r] for r in body], dtype=np.float32)
    except ValueError:
        hint = "" if label_column else " (a column of labels? name it with --label-column)"
        raise ValueError(f"{p}: every column must be numeric (header row, then numbers){hint}") from None
    return X, header, y, names


def load_data(path: str | os.PathLike, label_column: str | None = None) -> dict:
    """Inputs ``X`` (float32) and, where the file has them, ``y``, ``class_names``,
    ``feature_names``, ``sfreq`` and ``times``.

    ``.npz``: ``X`` (or ``x``, ``X_test``, ``inputs``), ``y``/``y_test``, ``class_names``,
    ``ch_names``/``feature_names``, ``sfreq``, ``times``; ``.npy``: the inputs; ``.csv``: a
    header row of names, then numbers (``label_column``: the labels' column, numbers or
    class names, taken out of the inputs); ``.tsv``/``.ts``/``.arff``: a UCR/UEA file.
    Pickled objects are never read.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {p} does not exist")
    if not p.is_file():
        raise ValueError(f"data file {p} is not a file")
    suffix = p.suffix.lower()
    out: dict = {"y": None, "class_names": None, "feature_names": None, "sfreq": None, "times": None}
    if label_column is not None and suffix != ".csv":
        raise ValueError(f"--label-column reads a column of a .csv table; {p.name} is {suffix or 'not'} a .csv "
                         "(a .npz stores its labels as 'y')")
    if suffix == ".npz":
        with _open_npz(p) as d:
            key = next((k for k in ("X", "x", "X_test", "inputs") if k in d.files), None)
            if key is None:
                raise ValueError(f"{p} has no array named X, x, X_test or inputs (found {d.files})")
            out["X"] = _npz_array(d, key, p)
            ykey = {"X": "y", "x": "y", "X_test": "y_test", "inputs": "y"}[key]
            if ykey in d.files:
                y = _npz_array(d, ykey, p)
                _numeric(y, p, f"labels {ykey!r}")
                out["y"] = y.astype(np.int64).reshape(-1)
            for src, dst in (("class_names", "class_names"), ("ch_names", "feature_names"),
                             ("feature_names", "feature_names")):
                if src in d.files:
                    out[dst] = [str(v) for v in np.atleast_1d(_npz_array(d, src, p))]
            if "sfreq" in d.files:
                try:
                    out["sfreq"] = float(_npz_array(d, "sfreq", p))
                except TypeError:
                    raise ValueError(f"{p}: 'sfreq' must be one number") from None
            if "times" in d.files:
                out["times"] = _npz_array(d, "times", p)
                _numeric(out["times"], p, "'times'")
    elif suffix == ".npy":
        out["X"] = _read_npy(p)
    elif suffix == ".csv":
        out["X"], out["feature_names"], out["y"], out["class_names"] = _read_csv(p, label_column)
    elif suffix in (".tsv", ".ts", ".arff", ".txt"):
        from lumos.data.ucr import read_series

        try:
            X, _ = read_series(p)
        except Exception as err:  # noqa: BLE001 - a parser's failure is a bad file
            raise ValueError(f"cannot read {p} as a UCR/UEA {suffix} file ({_first_line(err)})") from None
        out["X"] = X
    else:
        raise ValueError(f"unknown data format {suffix or p.name!r}; use {DATA_FORMATS}")
    X = np.asarray(out["X"])
    _numeric(X, p)
    if X.ndim not in (2, 3, 4):
        hint = (f": one input without its batch axis? add one (np.save(path, x[None]), shape {(1, *X.shape)})"
                if X.ndim == 1 else "")
        raise ValueError(f"{p}: inputs must be (N, d), (N, C, T) or (N, C, H, W); got shape {X.shape}{hint}")
    if len(X) == 0:
        raise ValueError(f"{p} holds no inputs (0 rows)")
    out["X"] = X.astype(np.float32)
    return out


def load_array(path: str | os.PathLike, key: str | None = None):
    """The rows ``explain-dataset`` streams: a ``.npy`` (memory-mapped), one array of a
    ``.npz`` (``key``, else its only array, else ``X``), a Zarr array or group member
    (``key``) of a numeric dtype without a pickle codec, or the inputs of any other
    :func:`load_data` format. Pickled objects are never read."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {p} does not exist")
    suffix = p.suffix.lower()
    if p.is_dir():
        return _zarr_array(p, key)
    if suffix == ".npy":
        X = _read_npy(p, mmap=True)
    elif suffix == ".npz":
        with _open_npz(p) as archive:
            names = archive.files
            name = key
            if name is None:
                name = names[0] if len(names) == 1 else next((k for k in ("X", "x", "X_test", "inputs")
                                                              if k in names), None)
            if name is None:
                raise ValueError(f"{p} holds several arrays {names}; choose one with --key")
            if name not in names:
                raise ValueError(f"{p} has no array {name!r}; it holds {names}")
            X = _npz_array(archive, name, p)
    else:
        return load_data(p)["X"]
    _numeric(X, p)
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"{p}: expected rows of inputs (N, ...), got shape {X.shape}")
    return X


def _codec_ids(meta) -> list[str]:
    found = []
    if isinstance(meta, dict):
        for k, v in meta.items():
            if k in ("id", "name") and isinstance(v, str):
                found.append(v)
            found.extend(_codec_ids(v))
    elif isinstance(meta, (list, tuple)):
        for v in meta:
            found.extend(_codec_ids(v))
    return found


def _zarr_array(p: Path, key: str | None):
    from lumos.scale import _deps

    zarr = _deps.zarr()
    try:  # zarr 3 refuses pickle codecs itself (as object codecs); the check below is for any other
        node = zarr.open(str(p), mode="r")
        if not hasattr(node, "shape") and key is not None and key in node:
            node = node[key]
    except Exception as err:  # noqa: BLE001 - a store zarr cannot open is a bad data folder
        raise ValueError(f"cannot open {p} as a Zarr array ({_first_line(err)})") from None
    if not hasattr(node, "shape"):
        if key is None:
            raise ValueError(f"{p} is a Zarr group; name its array with --key")
        raise ValueError(f"Zarr group {p} has no array {key!r}")
    try:
        meta = json.loads(json.dumps(node.metadata.to_dict(), default=str))
    except Exception as err:  # noqa: BLE001 - unreadable metadata: refuse rather than guess
        raise ValueError(f"cannot read the metadata of Zarr array {p} ({_first_line(err)})") from None
    if any("pickle" in c.lower() for c in _codec_ids(meta)):
        raise ValueError(f"Zarr array {p} uses a pickle codec: reading it would run code from the store")
    try:
        dtype = np.dtype(node.dtype)
    except TypeError:
        raise ValueError(f"Zarr array {p}: inputs must be numeric, got dtype {node.dtype}") from None
    if dtype.kind not in "biuf":
        raise ValueError(f"Zarr array {p}: inputs must be numeric, got dtype {dtype}")
    if len(node.shape) < 2 or node.shape[0] == 0:
        raise ValueError(f"Zarr array {p}: expected rows of inputs (N, ...), got shape {tuple(node.shape)}")
    return node
