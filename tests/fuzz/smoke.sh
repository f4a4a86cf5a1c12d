#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# smoke.sh TARGET SEEDS SCRATCH RUNS: run a fuzz target over the seeds and
# RUNS mutations from a fixed seed (the same inputs every time, so the
# result does not depend on luck or machine speed); new inputs and crash
# files go to SCRATCH, never to the seed directory.
set -eu
target=$1 seeds=$2 scratch=$3 runs=$4
rm -rf "$scratch"
mkdir -p "$scratch/corpus"
# the persist target writes files: memory, not disk, when we can
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
exec "$target" -seed=1 -runs="$runs" -max_total_time=60 -timeout=20 \
    -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch/corpus" "$seeds"
