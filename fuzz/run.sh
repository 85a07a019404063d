#!/usr/bin/env bash
# Runs samgate's fuzz targets, each for a bounded time, on a scratch copy of its committed corpus.
#   fuzz/run.sh                    every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=300 fuzz/run.sh id_token proxy_path
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (or RUSTC_BOOTSTRAP=1 on
# stable). New interesting inputs go to fuzz/work/<target>/ (not committed); crashes to
# fuzz/artifacts/<target>/ — minimise one with `cargo fuzz tmin`, then commit it under
# fuzz/corpus/<target>/ so `cargo test` replays it for ever (tests/it/hardening.rs).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-60}
# samgate forbids unsafe code; AddressSanitizer would mostly re-check dependencies at twice the
# build and run time. FUZZ_SANITIZER=address turns it on.
sanitizer=${FUZZ_SANITIZER:-none}
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

if cargo +nightly --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
flags=(--sanitizer "$sanitizer" --debug-assertions)

"${fuzz[@]}" build "${flags[@]}"
# Run the built binaries directly: `cargo fuzz run` would rebuild whenever src/ changed meanwhile.
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "work/$target" "artifacts/$target"
  echo "== $target: ${seconds}s"
  if ! "$bin_dir/$target" "work/$target" "corpus/$target" \
      -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1; then
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a failure"
