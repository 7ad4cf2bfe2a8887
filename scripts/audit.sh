#!/usr/bin/env bash
# Supply-chain checks (security-tests G24): known advisories with cargo-audit and cargo-deny, checked
# against a local clone of the RustSec advisory database, then cargo-deny's licences, bans and
# sources (deny.toml). The database lives on GitHub, which CI cannot reach, so this is run by hand
# where a clone is at hand:
#   git clone https://github.com/rustsec/advisory-db /tmp/advisory-db
#   bash scripts/audit.sh /tmp/advisory-db
# Installs cargo-audit and cargo-deny from crates.io when they are missing (once, a few minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:?usage: bash scripts/audit.sh PATH_TO_A_CLONE_OF_RUSTSEC_ADVISORY_DB}
DB=$(cd "$DB" && pwd)
cargo audit --version >/dev/null 2>&1 || cargo install --locked cargo-audit
cargo deny --version >/dev/null 2>&1 || cargo install --locked cargo-deny
echo "RustSec advisory database: commit $(git -C "$DB" log -1 --format='%h of %cs')"

# deny.toml holds the one list of accepted advisories; cargo audit is given the same list.
ignores=()
for id in $(grep -o 'RUSTSEC-[0-9]*-[0-9]*' deny.toml); do ignores+=(--ignore "$id"); done
cargo audit --db "$DB" --no-fetch --stale --deny warnings "${ignores[@]}"

# cargo-deny reads its databases from db-path, each in a folder named after its URL. Point db-path
# at a scratch folder, ask cargo-deny which folder it wants there (it names it when it is missing),
# and link the clone in.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^\[advisories\]#[advisories]\ndb-path = \"$work\"#" deny.toml > "$work/deny.toml"
folder=$(cargo deny --offline --config "$work/deny.toml" check advisories 2>&1 \
    | grep -o "cannot change to '[^']*'" | head -1 | sed "s/^cannot change to '//; s/'\$//" || true)
[ -n "$folder" ] && ln -s "$DB" "$folder"
cargo deny --offline --config "$work/deny.toml" check
