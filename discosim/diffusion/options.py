"""How a path is stepped: :class:`PathOptions` (law and discretisation), shared by the path
estimators of :mod:`discosim.diffusion.estimators`.

``estimate_first_hit``, ``simulate_first_exit`` and ``estimate_occupation`` take ``path=
PathOptions(...)`` for the process and its time stepping, and ``options=RunOptions(...)`` for how
the run is executed; the same names as keywords still work (a name given both ways is an error).
"""

import dataclasses

from discosim._core.errors import InputError, check_bool, check_choice, check_int, check_positive
from discosim._core.runtime import RUN_FIELDS, Keyword, resolve_run_options

__all__ = ["PathOptions", "PATH_FIELDS", "PROCESSES", "split_keywords"]

PROCESSES = ("bm", "ou")


@dataclasses.dataclass(frozen=True)
class PathOptions:
    """The law of a path and its time stepping (THEORY §6).

    Parameters
    ----------
    dt : float or None
        Time step; None takes the positional ``dt`` of the estimator (give it one way).
    bridge : bool
        Detect crossings between grid times with the Brownian bridge (first exits only).
    depth : int
        Bisection depth of a bridged crossing (0..60; first exits only).
    process : {"bm", "ou"}
        ``bm``: ``x0 + sigma B_t``; ``ou``: ``dX = -theta (X - x0) dt + sigma dB``.
    theta : float
        Mean reversion of ``ou`` (ignored for ``bm``).

    Examples
    --------
    >>> import numpy as np
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(3, 6, k=1, seed=0)
    >>> x0 = 0.3 * np.random.default_rng(1).standard_normal(6)
    >>> coarse = ds.PathOptions(dt=0.01, bridge=False)
    >>> res = ds.estimate_first_hit(router, x0, 1.0, 1.0, None, 200, [0.5], path=coarse,
    ...                             options=ds.RunOptions(seed=0))
    >>> old = ds.estimate_first_hit(router, x0, 1.0, 1.0, 0.01, 200, [0.5], bridge=False,
    ...                             seed=0)
    >>> res.cdf[0].value == old.cdf[0].value     # the same run, spelled two ways
    True
    """

    dt: object = None
    bridge: bool = True
    depth: int = 20
    process: str = "bm"
    theta: float = 1.0

    def __post_init__(self):
        if self.dt is not None:
            object.__setattr__(self, "dt", check_positive("dt", self.dt))
        object.__setattr__(self, "bridge", check_bool("bridge", self.bridge))
        object.__setattr__(self, "depth", check_int("depth", self.depth, 0, 60))
        check_choice("process", self.process, PROCESSES)
        if self.process == "ou":
            object.__setattr__(self, "theta", check_positive("theta", self.theta))

    def to_dict(self):
        return dataclasses.asdict(self)


PATH_FIELDS = tuple(f.name for f in dataclasses.fields(PathOptions) if f.name != "dt")
_PATH_DEFAULTS = PathOptions()


def split_keywords(where, keywords, options, path, dt, run_fields=RUN_FIELDS,
                   path_fields=PATH_FIELDS):
    """``(RunOptions, dt, bridge, depth, process, theta)`` from an estimator's ``**keywords``.

    ``keywords`` holds the old keywords a caller may still pass one by one (the run-control
    names of :class:`~discosim._core.runtime.RunOptions` and ``bridge``, ``depth``, ``process``,
    ``theta``); a name the estimator does not take raises TypeError as Python would. A name given
    as a keyword and in ``options`` or ``path`` is an InputError.
    """
    unknown = sorted(set(keywords) - set(run_fields) - set(path_fields))
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    run = resolve_run_options(where, options,
                              **{f: keywords.get(f, Keyword(f, None)) for f in run_fields})
    if path is not None and not isinstance(path, PathOptions):
        raise InputError(f"{where}: path must be a discosim.PathOptions, got {type(path).__name__}")
    base = _PATH_DEFAULTS if path is None else path
    law = {}
    for name in PATH_FIELDS:
        in_path = path is not None and getattr(path, name) != getattr(_PATH_DEFAULTS, name)
        if name in keywords:
            if name not in path_fields:
                raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
            if in_path:
                raise InputError(f"{where}: {name} is given twice, as a keyword "
                                 f"({keywords[name]!r}) and in path ({getattr(path, name)!r}); "
                                 f"give it once")
            law[name] = keywords[name]
        else:
            if in_path and name not in path_fields:
                raise InputError(f"{where} has no {name} option (path.{name}="
                                 f"{getattr(path, name)!r})")
            law[name] = getattr(base, name)
    if path is not None and path.dt is not None:
        if dt is not None:
            raise InputError(f"{where}: dt is given twice, as an argument ({dt!r}) and in path "
                             f"({path.dt!r}); give it once")
        dt = path.dt
    if dt is None:
        raise InputError(f"{where}: dt is missing (give it as an argument or as PathOptions.dt)")
    return run, dt, law["bridge"], law["depth"], law["process"], law["theta"]
