#!/usr/bin/env bash
# The agent clients the suite runs, pinned, installed from npm into a cache folder outside the checkout when
# missing: the Codex and Claude Code CLIs, and the Vercel AI SDK in two majors (ai v5 and v7, each with the
# providers made for it, in a folder of its own).
# Usage: install.sh [codex|claude|aisdk|aisdk7 ...] (default: all). Never fails: a client that cannot be installed
# is reported and its tests skip with that reason.
set -u
CACHE="${AGENTGATE_TEST_AGENTS:-$HOME/.cache/agentgate-test-agents}"
CODEX_VERSION=0.171.0
CLAUDE_VERSION=2.1.332
AISDK_VERSION=5.0.277  # `ai`; the providers and zod pinned with it below (keep in step with conftest.py)
AISDK7_VERSION=7.0.173  # the current major; it and its providers below share @ai-sdk/provider(-utils) 4.0.38/5.0.81
install() {  # name version marker package...
  local name=$1 version=$2 marker=$3
  shift 3
  local dir="$CACHE/$name-$version"
  [ -e "$dir/$marker" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "prepare: npm not found; the $name tests will be skipped" >&2; return 0
  fi
  mkdir -p "$dir"
  # --ignore-scripts: the CLIs ship their native binary as an optional dependency; no install script runs
  if ! timeout 600 npm install --prefix "$dir" --no-audit --no-fund --no-save --ignore-scripts --loglevel=error \
      --fetch-retries=1 --fetch-timeout=60000 \
      "$@" >"$dir.log" 2>&1; then
    echo "prepare: could not install $* from npm (see $dir.log); the $name tests will be skipped" >&2
  fi
}
want="${*:-codex claude aisdk aisdk7}"
for name in $want; do
  case "$name" in
    codex) install codex "$CODEX_VERSION" node_modules/@openai/codex/bin/codex.js "@openai/codex@$CODEX_VERSION" ;;
    claude) install claude-code "$CLAUDE_VERSION" node_modules/@anthropic-ai/claude-code/package.json \
      "@anthropic-ai/claude-code@$CLAUDE_VERSION" ;;
    aisdk) install aisdk "$AISDK_VERSION" node_modules/@ai-sdk/anthropic/package.json "ai@$AISDK_VERSION" \
      @ai-sdk/openai-compatible@1.0.61 @ai-sdk/openai@2.0.131 @ai-sdk/anthropic@2.0.112 zod@4.6.7 ;;
    aisdk7) install aisdk "$AISDK7_VERSION" node_modules/@ai-sdk/anthropic/package.json "ai@$AISDK7_VERSION" \
      @ai-sdk/openai-compatible@3.0.92 @ai-sdk/openai@4.0.118 @ai-sdk/anthropic@4.0.105 zod@4.6.7 ;;
  esac
done
exit 0
