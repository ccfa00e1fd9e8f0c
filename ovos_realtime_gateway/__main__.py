"""`python -m ovos_realtime_gateway` is the `ovos-realtime` command."""

from .cli import main

raise SystemExit(main())
