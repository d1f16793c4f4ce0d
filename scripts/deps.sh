#!/usr/bin/env bash
# Dependency checks: licenses, banned crates (one TLS stack: rustls + ring) and sources
# (crates.io only) from deny.toml, then RustSec advisories: known vulnerabilities, unmaintained
# and yanked crates, as strict as deny.toml says.
#
# The advisory database is the live RustSec clone when it can be fetched. When it cannot (no
# route to GitHub), the database is made from the snapshot of its files in
# ../shared/advisory-db (or $CALSEG_ADVISORY_SNAPSHOT): a git repository under
# target/advisory-dbs/, committed once with the snapshot's date, which cargo-deny reads with
# --offline. Either way the check runs and fails on any finding; it prints which database it
# checked and how old it is. Before trusting a database, it is shown to find a known
# vulnerability (scripts/deny-canary depends on smallvec 1.6.0, RUSTSEC-2021-0003).
# With no database at all, this fails: advisories are never skipped silently.
# Installs cargo-deny if missing (about 3 minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

command -v git >/dev/null || { echo "deps: git is missing: apt-get install -y git" >&2; exit 1; }
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "deps: installing cargo-deny from crates.io" >&2
  cargo install cargo-deny --locked --quiet
fi

cargo deny --locked check --hide-inclusion-graph licenses bans sources
echo "deps: licenses, bans and sources ok"

# deny.toml reads the database from $CALSEG_ADVISORY_DBS (see its [advisories] db-path).
export CALSEG_ADVISORY_DBS=$here/target/advisory-dbs
mkdir -p "$CALSEG_ADVISORY_DBS"
offline=()
if fetch_log=$(timeout 120 cargo deny fetch db 2>&1); then
  database="the live RustSec advisory database"
else
  reason=$(printf '%s\n' "$fetch_log" | grep -E 'fatal:|error|ERROR' | tail -n 1)
  snapshot=${CALSEG_ADVISORY_SNAPSHOT:-$here/../shared/advisory-db}
  if [ ! -f "$snapshot/SNAPSHOT" ] || [ ! -d "$snapshot/crates" ]; then
    echo "deps: cannot fetch the RustSec advisory database (${reason:-no answer}) and no snapshot at $snapshot" >&2
    echo "deps: set CALSEG_ADVISORY_SNAPSHOT to a copy of https://github.com/RustSec/advisory-db's files" >&2
    exit 1
  fi
  snapshot=$(cd "$snapshot" && pwd)
  commit=$(grep -oE 'commit [0-9a-f]{40}' "$snapshot/SNAPSHOT" | awk '{print $2}' || true)
  date=$(grep -oE 'committed [0-9]{4}-[0-9]{2}-[0-9]{2}' "$snapshot/SNAPSHOT" | awk '{print $2}' || true)
  [ -n "$date" ] || { echo "deps: $snapshot/SNAPSHOT names no 'committed YYYY-MM-DD' date" >&2; exit 1; }
  # cargo-deny keeps each database in a directory named after its URL: ask it which, with an
  # empty db-path where it names the directory it misses.
  probe=$(mktemp -d)
  db_name=$(CALSEG_ADVISORY_DBS=$probe cargo deny --offline check advisories 2>&1 |
    grep -oE "$probe/[^ '\"\`/]+" | head -n1 || true)
  rm -rf "$probe"
  db_name=${db_name##*/}
  [ -n "$db_name" ] || { echo "deps: could not learn where cargo-deny looks for the advisory database" >&2; exit 1; }
  db_dir=$CALSEG_ADVISORY_DBS/$db_name
  stamp="$commit $date"
  if [ "$(cat "$db_dir/.calseg-snapshot" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$db_dir"
    mkdir -p "$db_dir"
    cp -r "$snapshot"/. "$db_dir"/
    chmod -R u+w "$db_dir"
    (
      cd "$db_dir"
      git init -q -b main
      git add -A
      GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
        git -c user.name=calseg -c user.email=calseg@localhost -c commit.gpgsign=false \
        commit -q -m "RustSec advisory-db snapshot of $commit"
    )
    echo "$stamp" > "$db_dir/.calseg-snapshot"
  fi
  database="the RustSec advisory-db snapshot $snapshot (commit ${commit:-unknown}, $date), as $db_dir"
  echo "deps: the live database cannot be fetched (${reason:-no answer}); using the snapshot" >&2
  offline=(--offline)
fi

# The database must find what it should: a canary crate that depends on a vulnerable smallvec
# (fetched from crates.io first: cargo-deny reads crate metadata, and --offline downloads none).
(cd scripts/deny-canary && cargo fetch --locked --quiet)
if canary=$(cd scripts/deny-canary && cargo deny "${offline[@]}" --locked check --hide-inclusion-graph advisories 2>&1); then
  echo "$canary" >&2
  echo "deps: the advisory database found nothing in scripts/deny-canary (smallvec 1.6.0): it is empty or broken" >&2
  exit 1
fi
if ! grep -q RUSTSEC-2021-0003 <<<"$canary"; then
  echo "$canary" >&2
  echo "deps: the canary failed without reporting RUSTSEC-2021-0003; the check itself is broken" >&2
  exit 1
fi

echo "deps: checking RustSec advisories against $database"
cargo deny "${offline[@]}" --locked check --hide-inclusion-graph advisories
echo "deps: advisories ok ($database)"
