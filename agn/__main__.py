"""``python -m agn`` runs the command line."""
from agn.cli import main

raise SystemExit(main())
