"""The package works outside a source checkout: grammar and model come from the wheel (安装包自带数据).

The wheel is built from a copy of the sources (so the checkout gains no build/ folder), installed
into a temporary folder, and run from another temporary folder with PYTHONPATH pointing only at
the installed copy; the interpreter is this one (its third-party packages are the dependencies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def build_wheel(src: Path, dist: Path, env: dict[str, str]) -> Path:
    """`pip wheel` of the sources with this environment's setuptools (pinned in the test extras)."""
    built = run(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."], src, env)
    assert built.returncode == 0, built.stdout + built.stderr
    return next(dist.glob("*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(ROOT / "engine", src / "engine", ignore=IGNORED)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDPAY_POLICIES")}
    wheel = build_wheel(src, tmp / "dist", env)
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/dsl/medpay.lark" in names and "engine/policy/policy.schema.json" in names
    assert any(n.endswith("model.yaml") and n.startswith("engine/") for n in names)
    site = tmp / "site"
    done = run(["-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], tmp, env)
    assert done.returncode == 0, done.stderr
    return site


def outside_env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDPAY_POLICIES")}
    return {**env, "PYTHONPATH": str(site), **extra}


def copy_policies(target: Path) -> Path:
    shutil.copytree(ROOT / "policies", target)
    return target


@pytest.mark.slow
def test_validate_from_the_wheel_in_another_folder(installed, tmp_path):
    work = tmp_path / "work"
    copy_policies(work / "policies")
    env = outside_env(installed)
    where = run(["-c", "import engine; print(engine.__file__)"], work, env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(installed.resolve())
    done = run(["-m", "engine.cli", "validate"], work, env)  # default: ./policies
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ policies/zibo.yaml: zibo" in done.stdout and "✗" not in done.stdout + done.stderr


@pytest.mark.slow
def test_medpay_policies_names_the_folder(installed, tmp_path):
    elsewhere = copy_policies(tmp_path / "rules")
    (tmp_path / "cwd").mkdir()
    done = run(["-m", "engine.cli", "validate"], tmp_path / "cwd", outside_env(installed, MEDPAY_POLICIES=str(elsewhere)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ {elsewhere / 'hangzhou.yaml'}: hangzhou" in done.stdout


@pytest.mark.slow
def test_no_policies_folder_says_so(installed, tmp_path):
    done = run(["-m", "engine.cli", "validate"], tmp_path, outside_env(installed))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no policy files in {(tmp_path / 'policies').resolve()}: set MEDPAY_POLICIES" in done.stderr
