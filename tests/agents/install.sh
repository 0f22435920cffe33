#!/usr/bin/env bash
# The agent CLIs the suite runs, pinned, installed from npm into a cache folder outside the checkout when missing.
# Usage: install.sh [codex|claude ...] (default: all). Never fails: a CLI that cannot be installed is reported and its
# tests skip with that reason.
set -u
CACHE="${AGENTGATE_TEST_AGENTS:-$HOME/.cache/agentgate-test-agents}"
CODEX_VERSION=0.171.0
CLAUDE_VERSION=2.1.197
install() {  # name package version marker
  local dir="$CACHE/$1-$3"
  [ -e "$dir/$4" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "prepare: npm not found; the $1 CLI tests will be skipped" >&2; return 0
  fi
  mkdir -p "$dir"
  # --ignore-scripts: the packages ship their native binary as an optional dependency; no install script runs
  if ! timeout 600 npm install --prefix "$dir" --no-audit --no-fund --no-save --ignore-scripts --loglevel=error \
      --fetch-retries=1 --fetch-timeout=60000 \
      "$2@$3" >"$dir.log" 2>&1; then
    echo "prepare: could not install $2@$3 from npm (see $dir.log); the $1 CLI tests will be skipped" >&2
  fi
}
want="${*:-codex claude}"
for name in $want; do
  case "$name" in
    codex) install codex @openai/codex "$CODEX_VERSION" node_modules/@openai/codex/bin/codex.js ;;
    claude) install claude-code @anthropic-ai/claude-code "$CLAUDE_VERSION" node_modules/@anthropic-ai/claude-code/package.json ;;
  esac
done
exit 0
