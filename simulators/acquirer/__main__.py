"""``python -m simulators.acquirer``: run the acquirer simulator."""

from simulators.acquirer.server import main

raise SystemExit(main())
