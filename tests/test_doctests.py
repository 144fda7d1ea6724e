"""The Examples sections of the docstrings run and print what they show (doctest), in every
module of the installed package."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import subpixel_ext

# Every module but __main__, which runs the command line when imported.
MODULES = ["subpixel_ext"] + sorted(
    info.name
    for info in pkgutil.iter_modules(subpixel_ext.__path__, "subpixel_ext.")
    if info.name != "subpixel_ext.__main__"
)
# Modules whose docstrings have examples: a doctest run that finds none there is a failure.
WITH_EXAMPLES = {"subpixel_ext._api", "subpixel_ext._layers", "subpixel_ext._weights", "subpixel_ext.conventions"}
# Modules of an optional extra: skipped (with the reason) where the extra is not installed.
EXTRAS = {"subpixel_ext.dask": "dask", "subpixel_ext.torch": "torch"}


def test_modules_with_examples_exist() -> None:
    assert WITH_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name in EXTRAS:
        pytest.importorskip(EXTRAS[name], reason=f"{name} needs the [{EXTRAS[name]}] extra")
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module)
    assert failed == 0, capsys.readouterr().out  # doctest's report of each failing example
    if name in WITH_EXAMPLES:
        assert attempted > 0, f"no examples found in {name}"
