"""The curated API: every advertised name resolves, and the README's Python example runs."""

import importlib
import re
import shutil
from pathlib import Path

import pytest

import xafsmap

PACKAGES = ["xafsmap", *(f"xafsmap.core.{p}" for p in ("settings", "io", "prepare", "spectra", "model", "mapping",
                                                        "explore", "trust", "simulate", "job"))]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name):
    package = importlib.import_module(name)
    for public in package.__all__:
        assert getattr(package, public) is not None, f"{name}.{public}"
    if hasattr(package, "NAMES"):
        assert sorted(dir(package)) == sorted(package.NAMES)


def test_the_readme_example_runs(tmp_path, monkeypatch):
    from xafsmap.core.simulate.sample import bundled_reference_paths, make_sample

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "import xafsmap\n" in code and "xafsmap.core" not in code
    sample = make_sample((40, 50), n_grains=8, rng=1)
    xafsmap.write_stack(tmp_path / "stack.tif", sample.stack, sample.energies)
    for name, path in bundled_reference_paths().items():
        shutil.copy(path, tmp_path / f"{name}.xdi")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    for folder in ("maps", "maps2"):
        assert (tmp_path / folder / "labels.tif").is_file() and (tmp_path / folder / "report.json").is_file()
