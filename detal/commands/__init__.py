"""Subcommands of the ``detal`` CLI.

Each module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` to a callable ``(args) -> int``. The callables are thin: they parse
arguments and call the Python API, which raises :class:`detal.errors.DetalError`
on bad input; :func:`detal.cli.main` turns that into one line and exit code 1.
"""
