"""`python -m journeys`: the `journeys` command (how `serve --workers N` starts its workers)."""

from journeys.cli import main

raise SystemExit(main())
