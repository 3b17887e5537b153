#!/bin/bash
# Run by `devcontainer features test` (from templates/devcontainer/features).
set -e

# shellcheck source=/dev/null
source dev-container-features-test-lib

check "devbox starts" devbox --version
check "devbox lists its commands" bash -c "devbox --help | grep -q 'devcontainer'"

reportResults
