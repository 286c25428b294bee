"""`mpox` itself: its help lists every package's commands on a kiosk install (no torch), and
the kiosk runtime imports none of the other packages."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_TORCH = """
import sys
class NoTorch:  # a kiosk install: the train extra is missing
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'nncf', 'kornia'):
            raise ImportError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, NoTorch())
from edge.cli import main
try:
    main(sys.argv[1:], prog_name='mpox')
except SystemExit as e:
    sys.exit(e.code)
"""


def mpox_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_help_and_bare_mpox_list_every_command_without_torch():
    for args in (["--help"], []):
        r = mpox_without_torch(*args)
        assert r.returncode == 0, r.stderr
        for command in ("kiosk", "check", "classify", "fleet", "models", "simulate", "train", "ablation", "quantize"):
            assert f"\n  {command} " in r.stdout, (command, r.stdout)
    r = mpox_without_torch("models", "--help")
    assert r.returncode == 0 and "keygen" in r.stdout and "install" in r.stdout


def test_a_training_command_without_torch_says_which_extra():
    r = mpox_without_torch("ablation", "--runs", "x")
    assert r.returncode == 1 and "needs the train extra (torch is missing)" in r.stderr and "Traceback" not in r.stderr


def test_the_kiosk_runtime_imports_no_other_package():
    """edge/ is what a kiosk installs: never the authority's tools, research, training or torch."""
    banned = {"authority", "research", "training", "quantization", "torch", "nncf"}
    found = []
    for path in (ROOT / "edge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found
