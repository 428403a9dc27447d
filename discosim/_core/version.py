"""The version of discosim (one place: setup.cfg and ``discosim.__version__`` read it)."""

__version__ = "0.3.0"
