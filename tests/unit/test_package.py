"""The package facade: `occamtune.<verb>` stays the function users call."""

from __future__ import annotations

import importlib
import inspect

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
