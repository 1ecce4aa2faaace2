#!/usr/bin/env bash
# Prints the coverage that `make cover` collected in $1 (see the Makefile):
# the total over every package and the root package's figure, first from
# the test binaries alone, then with their child processes.
set -euo pipefail
dir=$1
root=github.com/hyvve/eventbus
tests=$(find "$dir/tests" -mindepth 1 -maxdepth 1 -type d | paste -sd, -)
report() { # report LABEL INPUT-DIRS
  go tool covdata textfmt -i="$2" -o "$dir/profile.$1.txt"
  total=$(go tool cover -func="$dir/profile.$1.txt" | awk '/^total:/ {print $NF}')
  rootpct=$(go tool covdata percent -i="$2" -pkg="$root" | awk '{print $(NF-2)}')
  printf '%-28s total %-7s root package %s\n' "$1:" "$total" "$rootpct"
}
report tests-only "$tests"
if [ -n "$(ls -A "$dir/children")" ]; then
  report with-children "$tests,$dir/children"
else
  echo "with-children: no child process wrote coverage" >&2
fi
echo "per package (tests only, with children):"
if [ -n "$(ls -A "$dir/children")" ]; then
  paste <(go tool covdata percent -i="$tests" | awk '{print $1, $(NF-2)}') \
    <(go tool covdata percent -i="$tests,$dir/children" | awk '{print $(NF-2)}')
else
  go tool covdata percent -i="$tests" | awk '{print $1, $(NF-2)}'
fi
echo "profiles: $dir/profile.*.txt (go tool cover -html=...)"
