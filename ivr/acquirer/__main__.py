"""``python -m ivr.acquirer``: run the acquirer simulator."""

from ivr.acquirer.server import main

raise SystemExit(main())
