"""The package works outside a source checkout: grammar and model come from the wheel (安装包自带数据).

The wheel is built from a copy of the sources (so the checkout gains no build/ folder), installed
into a temporary folder, and run from another temporary folder with PYTHONPATH pointing only at
the installed copy; the interpreter is this one (its third-party packages are the dependencies).
"""

from __future__ import annotations

import base64
import hashlib
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
    """`pip wheel` of the sources; where setuptools cannot make wheels (setuptools < 70.1 without the
    `wheel` package), the same files that the wheel would hold, selected by setuptools' build_py from
    pyproject.toml, zipped with a minimal dist-info."""
    built = run(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."], src, env)
    if built.returncode == 0:
        return next(dist.glob("*.whl"))
    assert "invalid command 'bdist_wheel'" in built.stdout + built.stderr, built.stdout + built.stderr
    staged = src / "staged"
    done = run(["-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(staged)], src, env)
    assert done.returncode == 0, done.stderr
    return zip_wheel(staged, dist)


def zip_wheel(staged: Path, dist: Path) -> Path:
    """A pure-Python wheel of a staged folder, with METADATA, WHEEL and a hashed RECORD."""
    info = "medpay-0.1.0.dist-info"
    meta = {f"{info}/METADATA": "Metadata-Version: 2.1\nName: medpay\nVersion: 0.1.0\n",
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files = {f.relative_to(staged).as_posix(): f.read_bytes() for f in sorted(staged.rglob("*")) if f.is_file()}
    files.update({k: v.encode() for k, v in meta.items()})
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    dist.mkdir(parents=True, exist_ok=True)
    wheel = dist / "medpay-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


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
