"""Subcommands of the ``graphix`` command line, one module each (see `graphix.cli`)."""
