"""``python -m co2cb`` is the ``co2cb`` command."""

from co2cb.cli.main import main

raise SystemExit(main())
