#!/usr/bin/env bash
# The project's test run: what CI runs (.ci/run) and what the README shows.
#   - gofmt and go vet must be clean;
#   - every test, including the multi-process and crash-point tests and a
#     30-second random-SIGKILL torture (LF_TORTURE=10m for a long one);
#   - the in-process tests again under the race detector (-short skips the
#     ones that start processes);
#   - fuzz targets run their seed corpora as part of go test.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt'd:" $unformatted >&2
  exit 1
fi
go vet ./...
LF_TORTURE=${LF_TORTURE:-30s} go test -count=1 -timeout 10m ./...
go test -count=1 -race -short -timeout 10m ./...
echo "all tests passed"
