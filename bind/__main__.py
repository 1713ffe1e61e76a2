"""``python -m bind ...``: the command line, reachable where the shell's own ``bind`` builtin shadows it."""
from .apps.cli import main

raise SystemExit(main())
