"""Shared fixtures: small reference models (seeded) and the offline real data when present.

Tests write only under pytest's temporary folders: for the whole session ``LUMOS_CACHE``
(fitted weights) and ``LUMOS_FIGURES`` (the workshops' figures) point there, set before any
fixture of any scope runs; Hypothesis' storage (its example database and the constants cache it
writes while test modules are collected) goes to a temporary folder set when this file is
imported, before any test module, and removed at exit. At the end of a session run inside a git
checkout, ``git status --porcelain`` must be what it was at the start, and every file it
lists (already modified or untracked ones too) must keep its size and time: a test that
wrote into the repository fails the run and is named. Ignored paths (``git status
--ignored``: caches, build outputs) that changed are reported as a warning. Python sources
are not compared (developers may edit them while the tests run);
``LUMOS_TESTS_SKIP_WORKTREE_CHECK=1`` turns the check off.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.data import find_data_dir

torch.set_num_threads(1)  # tests are small; threads only add contention on CI's 2 cores


def _hypothesis_under_tmp() -> None:
    """Hypothesis writes ``.hypothesis/`` in the working directory by default: its constants
    cache while ``@given`` tests are collected (before any fixture), its example database
    whenever a test runs. Both go to a temporary folder, removed at exit."""
    try:
        from hypothesis import configuration, settings
        from hypothesis.database import DirectoryBasedExampleDatabase
    except ImportError:
        return
    home = Path(tempfile.mkdtemp(prefix="lumos-hypothesis-"))
    atexit.register(shutil.rmtree, home, True)
    configuration.set_hypothesis_home_dir(home)
    settings.register_profile("lumos-tests", database=DirectoryBasedExampleDatabase(home / "examples"))
    settings.load_profile("lumos-tests")


_hypothesis_under_tmp()

# -- tests write only where they are told ------------------------------------------------
SESSION_ENV = ("LUMOS_CACHE", "LUMOS_FIGURES")


@pytest.fixture(scope="session", autouse=True)
def _writes_under_tmp(tmp_path_factory):
    """Point every place lumos and the workshops write to at this session's temporary folder
    (a session cache: the weights trained once are reused by the tests that follow). Session
    scope and autouse: set before module-scoped fixtures run."""
    base = tmp_path_factory.mktemp("lumos-session")
    before = {k: os.environ.get(k) for k in SESSION_ENV}
    os.environ["LUMOS_CACHE"] = str(base / "cache")
    os.environ["LUMOS_FIGURES"] = str(base / "figures")
    yield base
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


_SKIPPED_PARTS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache"}


def _listed_state(path: Path):
    """What to compare of a path ``git status`` lists: a file's size and mtime, a folder's
    files (recursively, caches skipped), or None when it is gone."""
    if path.is_file():
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    if path.is_dir():
        files = []
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d not in _SKIPPED_PARTS]
            for name in names:
                if name.endswith(".py"):
                    continue
                f = Path(root) / name
                try:
                    st = f.stat()
                except OSError:
                    continue
                files.append((str(f.relative_to(path)), st.st_size, st.st_mtime_ns))
        return tuple(sorted(files))
    return None


def worktree_state(root: Path) -> dict[str, tuple] | None:
    """``{path: (git status code, state)}`` for every path git lists as changed, untracked
    or ignored in the checkout at ``root`` (None when it is not a git checkout). Python
    sources are left out (a developer may edit them while the tests run), and so are
    caches (``__pycache__``, ``.pytest_cache``, the virtualenv, ``*.egg-info``)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=normal"],
                             cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    state, fields = {}, out.stdout.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        code, name = entry[:2], entry[3:]
        if code[0] in "RC":  # a rename is followed by its source path
            i += 1
        parts = Path(name.rstrip("/")).parts
        if (not parts or _SKIPPED_PARTS & set(parts) or parts[-1].endswith(".egg-info")
                or name.endswith(".py")):
            continue
        state[name] = (code, _listed_state(root / name))
    return state


def _git_root(config) -> Path | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=config.rootpath, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def pytest_sessionstart(session):
    config = session.config
    config._lumos_worktree = None
    if hasattr(config, "workerinput") or os.environ.get("LUMOS_TESTS_SKIP_WORKTREE_CHECK"):
        return
    root = _git_root(config)
    if root is not None:
        config._lumos_worktree = (root, worktree_state(root))


def worktree_changes(before: dict, after: dict) -> list[str]:
    """One line per path whose status or contents differ between two worktree states."""
    lines = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name):
            continue
        if name not in before:
            lines.append(f"{after[name][0]} {name}  (written by the test run)")
        elif name not in after:
            lines.append(f"{before[name][0]} {name}  (restored or removed by the test run)")
        else:
            lines.append(f"{after[name][0]} {name}  (rewritten by the test run)")
    return lines


def pytest_sessionfinish(session, exitstatus):
    recorded = getattr(session.config, "_lumos_worktree", None)
    if not recorded or recorded[1] is None:
        return
    root, before = recorded
    after = worktree_state(root)
    if after is None:
        return
    changes = worktree_changes(before, after)
    failures = [line for line in changes if not line.startswith("!!")]
    ignored = [line for line in changes if line.startswith("!!")]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    if reporter is not None and changes:
        reporter.write("\n")  # after the progress line
    if ignored:
        if reporter is not None:
            reporter.write_sep("=", "warning: git-ignored files written in the checkout", yellow=True)
        say("the test session wrote ignored files in the git checkout (they belong under pytest's tmp folders):"
            "\n  " + "\n  ".join(ignored))
    if failures:
        if reporter is not None:
            reporter.write_sep("=", "files written outside the tmp folders", red=True)
        say(f"the test session changed `git status` of the checkout {root} (tests must write under pytest's "
            "tmp folders only):\n  " + "\n  ".join(failures))
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def shared_data(name: str):
    """Path of an archive in ../shared/data, or skip the test with the reason."""
    try:
        return find_data_dir(name) / name
    except FileNotFoundError as err:
        pytest.skip(f"real data not available: {err}")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    return 0


@pytest.fixture
def mlp():
    """A 12-feature, 3-class MLP (seeded); modules that need another model define their own."""
    from lumos.models import MLP

    torch.manual_seed(0)
    return MLP(12, 3, hidden=(16,))


@pytest.fixture
def X():
    """53 tabular rows for :func:`mlp`."""
    return np.random.default_rng(0).normal(size=(53, 12)).astype(np.float32)


def model_state(model: torch.nn.Module) -> dict:
    """Everything a guard must restore: modes, requires_grad, hooks, parameters."""
    return {
        "modes": [m.training for m in model.modules()],
        "grads": [p.requires_grad for p in model.parameters()],
        "hooks": [sum(len(getattr(m, d, {})) for d in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                        "_backward_pre_hooks")) for m in model.modules()],
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def rows_per_call(model: torch.nn.Module, fn):
    """``(fn(), rows of every call of model during it)``: lumos's private view copies the model's
    hooks, so a forward pre-hook on the user's model sees the rows lumos sends."""
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        return fn(), seen
    finally:
        handle.remove()


def assert_same_state(before: dict, after: dict) -> None:
    assert before["modes"] == after["modes"], "training modes changed"
    assert before["grads"] == after["grads"], "requires_grad flags changed"
    assert before["hooks"] == after["hooks"], "hooks left on the model"
    for k, v in before["params"].items():
        assert torch.equal(v, after["params"][k]), f"parameter {k} changed"


def setup_for_method(name: str, mlp: torch.nn.Module, X: np.ndarray):
    """A model, 12 inputs and options that the registered method ``name`` applies to, read
    from what the class declares (never from its name): the given MLP on tabular rows; a
    1-D CNN with a GAP head on (N, 2, 16) series for methods that need a layer or do not
    take tables; an AttentionRNN for attention; a background for the methods that need one
    (and player groups for exact Shapley values); labels for global methods."""
    from lumos.core import registry
    from lumos.models import CNN1d
    from lumos.models.attention_rnn import AttentionRNN

    cls = registry.get(name)
    torch.manual_seed(0)
    series = np.random.default_rng(1).normal(size=(12, 2, 16)).astype(np.float32)
    if cls.needs_attention:
        return AttentionRNN(2, 3, hidden=4), series, {}
    if getattr(cls, "needs_transformer", False):  # token ids (as floats) into a small lumos text encoder
        from lumos.models.transformer import TextEncoder

        ids = np.random.default_rng(1).integers(0, 20, (12, 6)).astype(np.float32)
        return TextEncoder(vocab=20, dim=8, depth=1, heads=2, num_classes=3, max_len=8), ids, {}
    options = {}
    if cls.needs_layer or "tabular" not in cls.layouts:
        model, x = CNN1d(2, 3, channels=(4, 4)), series
        if getattr(cls, "needs_prefixes", False):  # called on every prefix x[..., :t+1]: a GRU takes any length
            from lumos.models.reference import RecurrentClassifier

            model = RecurrentClassifier(2, 3, hidden=4)
        if cls.needs_background:
            options["background"] = np.random.default_rng(2).normal(size=(8, 2, 16)).astype(np.float32)
        return model, x, options
    if cls.needs_background:
        options = {"background": X[-8:]}
        if name == "exact_shapley":
            options["groups"] = np.arange(X.shape[1]) // 2  # 6 players
    if cls.needs_labels:
        options["y"] = np.arange(12) % 3
    return mlp, X[:12], options
