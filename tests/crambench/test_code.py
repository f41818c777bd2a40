"""Which harness code ran: a checkout with local changes says so in its version, and a new
run keeps the difference beside itself."""

import subprocess
import sys
from pathlib import Path

import pytest

from crambench import code


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout holding a copy of crambench/code.py as the harness."""
    (tmp_path / "crambench").mkdir()
    source = Path(code.__file__).read_text()
    (tmp_path / "crambench" / "code.py").write_text(source)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "harness"], check=True)
    return tmp_path


def _version(root: Path) -> str:
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from crambench import code; "
              "print(code.code_version()); print(len(code.local_changes()))")
    out = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True,
                         text=True, check=True, cwd=root).stdout.split()
    return out[0], int(out[1])


@pytest.mark.subprocess
def test_a_modified_checkout_says_so(checkout):
    version, changed = _version(checkout)
    assert not version.endswith(".dirty") and changed == 0
    path = checkout / "crambench" / "code.py"
    path.write_text(path.read_text() + "\n# a local change\n")
    version, changed = _version(checkout)
    assert version.endswith(".dirty") and changed > 0


@pytest.mark.subprocess
def test_a_new_untracked_package_file_is_a_local_change(checkout):
    (checkout / "crambench" / "extra.py").write_text("SCALE = 2\n")
    (checkout / "notes.txt").write_text("outside the packages: not the harness\n")
    version, changed = _version(checkout)
    assert version.endswith(".dirty") and changed > 0
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from crambench import code; "
              "print(code.local_changes())")
    diff = subprocess.run([sys.executable, "-c", script, str(checkout)], capture_output=True,
                          text=True, check=True, cwd=checkout).stdout
    assert "+SCALE = 2" in diff and "crambench/extra.py" in diff and "notes" not in diff
