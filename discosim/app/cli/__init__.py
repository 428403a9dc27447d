"""The ``discosim`` command line: :mod:`.main` builds the parser and dispatches."""
