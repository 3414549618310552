"""The package facade: `occamtune.<verb>` stays the function users call."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import occamtune

# subpackages / modules that share a name with a function of the API
SHARED = {"train": "occamtune.train.run", "compress": "occamtune.compress.base",
          "export": "occamtune.export", "report": "occamtune.report.render",
          "serve": "occamtune.serve.app"}


def test_importing_a_submodule_does_not_replace_the_function() -> None:
    for name, module in SHARED.items():
        importlib.import_module(module)  # what the CLI, the server or a user's script may import
        assert inspect.isfunction(getattr(occamtune, name)), (
            f"occamtune.{name} became {getattr(occamtune, name)!r} after importing {module}")


def test_no_module_imported_later_takes_an_api_name() -> None:
    """Importing a module `occamtune.<name>` binds it on the package: a module first imported
    after the package (as `occamtune.export_gguf` was, by the CLI) would replace the function
    `occamtune.<name>` of the same name."""
    for info in pkgutil.walk_packages(occamtune.__path__, "occamtune."):
        if not info.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(info.name)
    replaced = [n for n in occamtune.__all__ if inspect.ismodule(getattr(occamtune, n))]
    assert not replaced, f"occamtune.{replaced} became modules"
