#!/usr/bin/env bash
# Quickstart on a fresh machine: build luodi, create a knowledge base from the bundled sample
# handbook (简体 and 繁體; md, html, docx, pdf, xlsx, GBK txt), and search it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
LUODI=./target/release/luodi
export LUODI_HOME="${LUODI_HOME:-.luodi}"
$LUODI kb create handbook 2>/dev/null || true
$LUODI ingest handbook samples/handbook
$LUODI search handbook "出差住宿报销标准是多少" -k 3
$LUODI search handbook "VPN 密碼忘記了怎麼辦" -k 3
