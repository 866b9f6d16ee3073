# Shared set-up for the scripts (sourced, not run). Every script builds into one cache
# outside the clone, so wasmtime (inside viceroy-lib) is compiled once per machine and
# shared by the tests, the local server and every clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${EDGEFLAGS_CACHE:-$HOME/.cache/edgeflags}/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

# The pinned toolchain (rust-toolchain.toml) needs the wasm target; rustup does not add
# it by itself here.
ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "edgeflags: adding the wasm32-wasip1 target" >&2
    rustup target add wasm32-wasip1
  fi
}

# The Fastly CLI, pinned. The npm package carries the CLI's own binary (its
# @fastly/cli-linux-x64 dependency), so nothing else is downloaded. Installs it under the
# cache once and sets $fastly to it.
FASTLY_CLI_VERSION=16.1.0
ensure_fastly_cli() {
  cli_dir="${EDGEFLAGS_CACHE:-$HOME/.cache/edgeflags}/fastly-cli-$FASTLY_CLI_VERSION"
  fastly="$cli_dir/node_modules/.bin/fastly"
  if [ ! -x "$fastly" ]; then
    echo "edgeflags: installing the Fastly CLI $FASTLY_CLI_VERSION from npm into $cli_dir" >&2
    mkdir -p "$cli_dir"
    npm install --silent --no-audit --no-fund --prefix "$cli_dir" "@fastly/cli@$FASTLY_CLI_VERSION"
  fi
}
