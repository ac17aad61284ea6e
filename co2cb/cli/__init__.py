"""The ``co2cb`` command line: one module per subcommand, registered in :mod:`co2cb.cli.main`."""
