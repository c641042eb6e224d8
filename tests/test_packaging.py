"""ragline installs on Python 3.11, 3.12 and 3.13 (issue 19, item 4): the lock resolves for all three, and every
binary dependency has a Linux x86-64 wheel for each (CI here runs 3.11, the only interpreter these machines have).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILT_FROM_SOURCE = {"llama-cpp-python", "ragline"}  # llama.cpp compiles on the user's machine (make llama)


def test_python_311_to_313_are_supported_and_locked() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    assert lock["requires-python"] == ">=3.11, <3.14"
    missing = []
    for package in lock["package"]:
        wheels = [w["url"].rsplit("/", 1)[1] for w in package.get("wheels", [])]
        if package["name"] in BUILT_FROM_SOURCE or package["name"] == "pywin32" or any(
                w.endswith("-none-any.whl") for w in wheels):
            continue
        for tag in ("cp311", "cp312", "cp313"):
            if not any((tag in w or "abi3" in w or "py3-none" in w) and "x86_64" in w and "linux" in w
                       for w in wheels):
                missing.append(f"{package['name']} {package['version']}: no {tag} wheel")
    assert missing == []
