"""Parameter studies: grids in, tidy CSV + JSON sidecars out, resumable, on joblib or dask.

A study is a function of one grid point (a dict of parameters and a SeedSequence) returning
tidy rows (one per order / metric / time ...). The package is four modules:

- :mod:`~discosim.app.studies.registry`: the studies by name (:data:`STUDIES`) and the grammar of
  their grids (:func:`load_grid`, :func:`expand_grid`, :func:`check_point`);
- :mod:`~discosim.app.studies.definitions`: the studies themselves, over the claims' cases
  (:mod:`discosim.cases`), and the random router ensembles (:func:`make_router`);
- :mod:`~discosim.app.studies.identity`: the identity of a saved point (study, base seed, every
  parameter, code version, device, and the SHA-256 of every input file the point reads) and
  the reading of saved points (:func:`point_identity`);
- :mod:`~discosim.app.studies.runner`: :func:`run_study` (skips saved points of the same
  identity, runs the rest, saves each atomically, writes ``results.csv``, ``results.json`` and
  the figure) and :func:`study_figure`.

A point's seed depends only on the base seed and the point's parameters, so an interrupted and
resumed run, any ``n_jobs`` and any backend give the same numbers. A saved point whose identity
differs from the run's (another seed, another study in the same ``out``, other code, a changed
input file) or whose file is unreadable or edited is recomputed; with ``resume=True`` the run
refuses instead, in one line, before computing anything. Every grid value is checked (type,
range, relations such as M < D) before the first point runs.
"""

from discosim._core.cache import code_version
from discosim.app.studies import definitions  # noqa: F401  (registers the studies)
from discosim.app.studies.definitions import ENSEMBLES, make_router, routers_of
from discosim.app.studies.identity import (FileHasher, input_files, point_identity, point_key,
                                           point_seed, read_point, rows_digest)
from discosim.app.studies.registry import STUDIES, check_point, expand_grid, load_grid, study
from discosim.app.studies.runner import run_study, study_figure

__all__ = ["STUDIES", "run_study", "expand_grid", "load_grid", "make_router", "study_figure",
           "point_identity", "check_point", "point_key", "point_seed", "read_point", "rows_digest",
           "input_files", "FileHasher", "routers_of", "ENSEMBLES", "study", "code_version"]
