"""What every command-line entry point of discosim shares: one-line argparse errors, help that
shows defaults, and the error boundary.

The entry points are ``discosim`` (:mod:`discosim.app.cli.main`), ``python -m
discosim.validation.report`` and ``python -m discosim.checkpoints.synthetic``; each wraps its
work in :func:`run_guarded`. Failures a user can cause and fix (bad input, an unwritable or full
output folder, a corrupted JSON file, more threads than the system allows) end in one line
``discosim: error: ...`` on stderr and exit status 2; Ctrl-C in one line and status 130. Every
other exception is a bug and keeps its traceback. Messages pass :func:`printable`, so text read
from a file cannot forge a second line or send escape codes to the terminal.
"""

import argparse
import json
import os
import sys

from discosim._core.errors import InputError, printable

__all__ = ["ArgumentParser", "HelpFormatter", "run_guarded", "fail", "EXIT_INPUT", "EXIT_INTERRUPT",
           "EXIT_PIPE"]

PROG = "discosim"
EXIT_INPUT = 2
EXIT_INTERRUPT = 130
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


def fail(message):
    """Print ``discosim: error: message`` (escaped, one line) on stderr; returns status 2."""
    sys.stderr.write(f"{PROG}: error: {printable(message)}\n")
    return EXIT_INPUT


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one escaped line, ``discosim: error: ...``, exit status 2."""

    def error(self, message):
        fail(message)
        raise SystemExit(EXIT_INPUT)


def _default_text(value):
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with ``(default: ...)`` unless the default is None or False
    (nothing to show) or the help already states it; lists show as they are typed, ``0.01 0.1``."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "(default" in text or default is None
                or default is False or default is argparse.SUPPRESS):
            return text
        return f"{text} (default: {_default_text(default).replace('%', '%%')})".lstrip()


def _os_error(exc):
    """One line for a failed read or write: the file, then what the system said."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {what}" if where else what


def run_guarded(func, *args):
    """``func(*args)`` inside the error boundary; returns its exit status.

    Known failures become one line and a status (see the module docstring); anything else
    propagates with its traceback.
    """
    try:
        code = func(*args)
        sys.stdout.flush()  # a closed pipe shows here, inside the boundary
        return code
    except InputError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        # chunks stop at once; files already written stay whole (atomic writes)
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPT
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: nothing left to say, and no traceback at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (captured): nothing to redirect
            pass
        return EXIT_PIPE
    except OSError as exc:  # unreadable input, read-only or full output folder
        return fail(_os_error(exc))
    except UnicodeDecodeError as exc:  # a text file that is not UTF-8
        return fail(f"a file is not UTF-8 text ({exc})")
    except json.JSONDecodeError as exc:  # a corrupted results or validate JSON file
        return fail(f"corrupted JSON file ({exc})")
    except MemoryError as exc:  # sizes that validation cannot foresee (e.g. a huge weight file)
        return fail(f"out of memory ({exc or 'MemoryError'}); reduce the sizes")
    except RuntimeError as exc:
        if "can't start new thread" not in str(exc):
            raise  # a bug: keep its traceback
        return fail("the system refused another thread: lower --n-jobs")
