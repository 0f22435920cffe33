#!/usr/bin/env bash
# System tools the suite uses (Prometheus and promtool for the metrics tests, Chromium for the console's
# browser test), installed when missing.
set -u
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
      || echo "prepare: could not install prometheus; the tests that need it will be skipped" >&2
  else
    echo "prepare: prometheus/promtool not found; the tests that need it will be skipped" >&2
  fi
fi
# Chromium for the console's browser test (tests/console/test_browser.py), from the distribution's packages.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "prepare: could not install chromium; the browser test will be skipped" >&2
  else
    echo "prepare: chromium not found; the browser test will be skipped" >&2
  fi
fi
# The agent CLIs (Codex, Claude Code) and the Vercel AI SDK, pinned, from npm into ~/.cache/agentgate-test-agents
# when missing
bash "$(dirname "$0")/agents/install.sh"
exit 0
