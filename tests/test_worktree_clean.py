"""The end-of-session check of conftest (tests write only under pytest's tmp folders): what
it compares of a git checkout and what it reports."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import worktree_changes, worktree_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def test_the_check_sees_new_rewritten_and_ignored_files_not_sources(tmp_path):
    repo = tmp_path / "repo"
    (repo / "figures").mkdir(parents=True)
    (repo / ".gitignore").write_text("/output/\n")
    for name in ("figures/a.png", "figures/b.png", "notes.md", "code.py"):
        (repo / name).write_text("v1")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    (repo / "notes.md").write_text("a developer's uncommitted edit")  # dirty before the session
    (repo / "code.py").write_text("edited")
    before = worktree_state(repo)
    assert worktree_changes(before, worktree_state(repo)) == []  # a dirty tree alone is no failure
    (repo / "figures/a.png").write_text("v2")  # a tracked figure rewritten
    (repo / "notes.md").write_text("rewritten by a test, still ' M'")
    (repo / "code.py").write_text("edited again (developers edit sources while tests run)")
    (repo / "lumos-demo.html").write_text("x")  # written in the current directory
    (repo / "output").mkdir()
    (repo / "output" / "fig.png").write_text("x")  # ignored, but written in the checkout
    changes = worktree_changes(before, worktree_state(repo))
    assert changes == [" M figures/a.png  (written by the test run)",
                       "?? lumos-demo.html  (written by the test run)",
                       " M notes.md  (rewritten by the test run)",
                       "!! output/  (written by the test run)"], changes


def test_outside_a_git_checkout_there_is_nothing_to_compare(tmp_path):
    assert worktree_state(tmp_path) is None or worktree_state(tmp_path) == {}
