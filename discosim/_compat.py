"""Old import paths (discosim 0.1), kept for one release: ``import discosim.volume`` still works,
gives the module at its new place (the same object, so patches reach it) and warns once.

``python -m discosim.report`` also still runs, as ``python -m discosim.validation.report``.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__all__ = ["MOVED", "install"]

MOVED = {
    "discosim.errors": "discosim._core.errors",
    "discosim.seeding": "discosim._core.seeding",
    "discosim.estimates": "discosim._core.results",
    "discosim.fitting": "discosim._core.fitting",
    "discosim.parallel": "discosim._core.runtime",
    "discosim.devices": "discosim._core.devices",
    "discosim.fileio": "discosim._core.io",
    "discosim.cache": "discosim._core.cache",
    "discosim.router": "discosim.model.router",
    "discosim.weights": "discosim.model.weights",
    "discosim.points": "discosim.model.inputs",
    "discosim.gates": "discosim.model.gates",
    "discosim.routing": "discosim.model.selection",
    "discosim.volume": "discosim.volumes.estimators",
    "discosim.constants": "discosim.volumes.constants",
    "discosim.hitting": "discosim.diffusion.estimators",
    "discosim.cli": "discosim.app.cli.main",
    "discosim.cli_audit": "discosim.app.cli.audit",
    "discosim.studies": "discosim.app.studies",
    "discosim.plots": "discosim.plotting.figures",
    "discosim.audit_plot": "discosim.plotting.audit",
    "discosim.report": "discosim.validation.report",
    "discosim.claims": "discosim.validation",
    "discosim.claims.core": "discosim.validation.rules",
    "discosim.claims.volumes": "discosim.validation.volumes",
    "discosim.claims.diffusion": "discosim.validation.diffusion",
    "discosim.claims.smoothing": "discosim.validation.smoothing",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == "discosim.claims")

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the module is the new one, already executed

    def get_code(self, fullname):
        # `python -m discosim.report` runs the new module as __main__
        return compile(f"import runpy; runpy.run_module({MOVED[fullname]!r}, run_name='__main__', "
                       "alter_sys=True)", f"<{fullname}>", "exec")


def install():
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before the path finder, which would load a second copy
