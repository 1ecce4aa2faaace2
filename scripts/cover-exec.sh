#!/usr/bin/env bash
# go test -exec wrapper used by `make cover` (see the Makefile): it runs one
# package's test binary so that its coverage and its child processes'
# coverage land in separate directories, to be reported with and without
# the children:
#   - the test binary itself writes to a new directory under $COVER_TESTS
#     (its -test.gocoverdir; one directory per package, so that the
#     figure go test prints per package stays that package's own);
#   - the processes it starts (the crash tests re-execute the test binary
#     as consumers; cmd/eventbus runs the CLI built with -cover) inherit
#     GOCOVERDIR=$COVER_CHILDREN.
# Processes killed with SIGKILL write nothing: their coverage is lost.
set -euo pipefail
: "${COVER_TESTS:?set by make cover}" "${COVER_CHILDREN:?set by make cover}"
bin=$1
shift
own=$(mktemp -d "$COVER_TESTS/pkg.XXXXXX")
args=()
for a in "$@"; do
  case $a in
  -test.gocoverdir=*)
    # Keep what go test put there (the meta-data of packages without tests).
    cp -R "${a#-test.gocoverdir=}/." "$own/" 2>/dev/null || true
    a="-test.gocoverdir=$own"
    ;;
  esac
  args+=("$a")
done
GOCOVERDIR=$COVER_CHILDREN EVENTBUS_COVER=1 exec "$bin" "${args[@]}"
