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

# DuckDB for `edgeflags report`: the prebuilt libduckdb.so (1.5.6) that npm's
# @duckdb/node-bindings-linux-x64 ships, which the `duckdb` crate links instead of
# compiling DuckDB's C++ (crates/cli/build.rs gives the binaries its directory as their
# run path). DUCKDB_LIB_DIR is exported even before the install, so every build sees the
# same environment and none rebuilds the crate for a changed variable.
DUCKDB_VERSION=1.5.6
DUCKDB_NPM_VERSION=1.5.6-r.1
export DUCKDB_LIB_DIR="${DUCKDB_LIB_DIR:-${EDGEFLAGS_CACHE:-$HOME/.cache/edgeflags}/libduckdb-$DUCKDB_VERSION/node_modules/@duckdb/node-bindings-linux-x64}"
ensure_duckdb() {
  if [ ! -f "$DUCKDB_LIB_DIR/libduckdb.so" ]; then
    local dir="${EDGEFLAGS_CACHE:-$HOME/.cache/edgeflags}/libduckdb-$DUCKDB_VERSION"
    echo "edgeflags: installing libduckdb $DUCKDB_VERSION from npm into $dir" >&2
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "@duckdb/node-bindings-linux-x64@$DUCKDB_NPM_VERSION"
  fi
}

# chDB (ClickHouse in-process, PyPI's chdb-core) for the test that runs the report's
# ClickHouse query (crates/cli/tests/report_sql.rs). Only the engine's own package, without
# its pandas and pyarrow dependencies, which the test does not use. Sets $chdb_path.
CHDB_VERSION=26.9.0
ensure_chdb() {
  chdb_path="${EDGEFLAGS_CACHE:-$HOME/.cache/edgeflags}/chdb-core-$CHDB_VERSION"
  if [ ! -f "$chdb_path/chdb/__init__.py" ]; then
    echo "edgeflags: installing chdb-core $CHDB_VERSION from PyPI into $chdb_path" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --no-cache-dir --no-deps \
      --target "$chdb_path" "chdb-core==$CHDB_VERSION"
  fi
}
