#!/usr/bin/env bash
# Builds js/dist/sluice.min.js from js/sluice.js with terser (a dev tool from
# js/package.json; the script itself has no dependencies) and prints its sizes.
#
#   ./build.sh           build, print raw/min/gzip sizes, update the sizes block in README.md
#   ./build.sh --check   build into a temp dir and fail (exit 1) if dist/sluice.min.js or the
#                        README sizes differ from what is committed (for CI)
#
# Exit codes: 0 ok; 1 failure or --check mismatch; 3 package registries unreachable and
# terser is not installed yet.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 1 ;;
esac

die() { echo "js build: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || die "node not found on PATH"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
command -v gzip >/dev/null 2>&1 || die "gzip not found on PATH"

want_terser="$(node -p "require('./package.json').devDependencies.terser")"
have_terser="$(node -p "require('./node_modules/terser/package.json').version" 2>/dev/null || true)"
if [[ "$have_terser" != "$want_terser" ]]; then
  if ! npm view "terser@$want_terser" version --fetch-timeout=20000 --fetch-retries=1 >/dev/null 2>&1; then
    echo "js build: package registry unreachable; cannot install terser $want_terser (npm ci)" >&2
    exit 3
  fi
  echo "js build: installing terser $want_terser (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
fi

node --check sluice.js || die "sluice.js does not parse"

out_dir="dist"
if [[ "$mode" == check ]]; then
  out_dir="$(mktemp -d)"
  trap 'rm -rf "$out_dir"' EXIT
fi
mkdir -p "$out_dir"
min="$out_dir/sluice.min.js"

# ecma 2017 output; keep only the /*! ... */ banner comment.
node_modules/.bin/terser sluice.js \
  --ecma 2017 \
  --compress passes=2 \
  --mangle \
  --comments '/^!/' \
  --output "$min"
printf '\n' >>"$min"

raw_bytes=$(wc -c <sluice.js | tr -d ' ')
min_bytes=$(wc -c <"$min" | tr -d ' ')
gz_bytes=$(gzip -9 -n -c "$min" | wc -c | tr -d ' ')

echo "sluice.js raw:  $raw_bytes bytes"
echo "minified:       $min_bytes bytes ($min)"
echo "min + gzip -9:  $gz_bytes bytes"
(( gz_bytes < 4096 )) || echo "js build: WARNING: gzipped size $gz_bytes >= 4096 bytes (budget: < 4 KB)" >&2

# The sizes block in README.md, between the two marker lines.
sizes_block="$(printf '| file | bytes |\n| --- | --- |\n| `js/sluice.js` (source) | %s |\n| `js/dist/sluice.min.js` (terser %s) | %s |\n| `js/dist/sluice.min.js`, gzip -9 | %s |' \
  "$raw_bytes" "$want_terser" "$min_bytes" "$gz_bytes")"
readme_with_sizes() {
  SIZES="$sizes_block" node -e '
    const fs = require("fs");
    const text = fs.readFileSync("README.md", "utf8");
    const re = /(<!-- sizes:begin -->\n)[\s\S]*?(<!-- sizes:end -->)/;
    if (!re.test(text)) { console.error("js build: README.md has no sizes markers"); process.exit(1); }
    process.stdout.write(text.replace(re, (_, a, b) => a + process.env.SIZES + "\n" + b));
  '
}

if [[ "$mode" == check ]]; then
  cmp -s "$min" dist/sluice.min.js || die "dist/sluice.min.js is stale: run js/build.sh and commit it"
  readme_with_sizes | cmp -s - README.md || die "README.md sizes are stale: run js/build.sh and commit it"
  echo "js build: dist/sluice.min.js and README sizes are up to date"
else
  if [[ -f README.md ]]; then
    new_readme="$(readme_with_sizes)"
    printf '%s\n' "$new_readme" >README.md
  fi
fi
