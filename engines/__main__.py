"""`python -m engines --model ...`: run one engine worker (same options as `agentgate engine`)."""

from engines.worker.cli import main

raise SystemExit(main())
