#!/bin/sh
# Installs devbox into a dev container image. The Feature's options arrive as
# environment variables (VERSION, PACKAGE), as the Dev Container Features
# specification defines; this runs as root during the image build, with /bin/sh
# of any distribution (busybox included).
set -eu

VERSION="${VERSION:-latest}"
PACKAGE="${PACKAGE:-}"
PREFIX="${DEVBOX_PREFIX:-/usr/local}"
FEATURE_DIR="$(cd "$(dirname "$0")" && pwd)"

fail() {
  echo "devbox feature: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 ||
  fail "Node.js 20 or newer must be in the image: start from a Node.js image, or add the Feature ghcr.io/devcontainers/features/node before this one (first in \"features\", or with overrideFeatureInstallOrder)."
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  fail "devbox needs Node.js 20 or newer; the image has $(node --version)."

# A launcher rather than a symlink: the package's #!/usr/bin/env node needs
# /usr/bin/env, which some small images (busybox) do not have.
write_launcher() {
  mkdir -p "$PREFIX/bin"
  printf '#!/bin/sh\nexec node "%s/dist/src/cli/main.js" "$@"\n' "$1" >"$PREFIX/bin/devbox"
  chmod 0755 "$PREFIX/bin/devbox"
}

install_tarball() {
  tarball="$1"
  case "$tarball" in
    /*) ;;
    *) tarball="$FEATURE_DIR/$tarball" ;;
  esac
  [ -f "$tarball" ] || fail "package $1 does not exist (looked at $tarball)."
  lib="$PREFIX/lib/devbox"
  staging="$(mktemp -d)"
  tar -xzf "$tarball" -C "$staging"
  [ -f "$staging/package/package.json" ] || fail "$1 is not an npm package (no package/package.json in it)."
  rm -rf "$lib"
  mkdir -p "$PREFIX/lib"
  mv "$staging/package" "$lib"
  rm -rf "$staging"
  if [ ! -d "$lib/node_modules" ]; then
    command -v npm >/dev/null 2>&1 ||
      fail "$1 does not bundle its dependencies and npm is not in the image to fetch them."
    (cd "$lib" && npm install --omit=dev --ignore-scripts --no-audit --no-fund)
  fi
  write_launcher "$lib"
}

install_from_registry() {
  command -v npm >/dev/null 2>&1 ||
    fail "npm is needed to install devbox@$VERSION from the registry; add the node Feature, or pass the package option."
  npm install --global --no-audit --no-fund "devbox@$VERSION"
}

if [ -n "$PACKAGE" ]; then
  install_tarball "$PACKAGE"
else
  install_from_registry
fi

devbox --version >/dev/null || fail "devbox was installed but does not start."
echo "devbox $(devbox --version) installed."
