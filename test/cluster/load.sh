#!/usr/bin/env bash
# Loads a local Docker image into the cluster's containerd:
#   npm run cluster:load -- <image> [<image>…]      (--if-missing skips images already there)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if_missing=false
images=()
for arg in "$@"; do
  case "$arg" in
    --if-missing) if_missing=true ;;
    -h | --help) sed -n '2,3p' "$0"; exit 0 ;;
    *) images+=("$arg") ;;
  esac
done
[ ${#images[@]} -gt 0 ] || fail "Name the Docker image to load, e.g. npm run cluster:load -- my-app:dev"
ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 || fail "The local cluster is not running: npm run cluster:up"

for image in "${images[@]}"; do
  short=${image#docker.io/library/}
  full=$image
  case "$full" in */*) ;; *) full=docker.io/library/$full ;; esac
  if $if_missing && ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -xF "$full" >/dev/null; then
    continue
  fi
  docker image inspect "$short" >/dev/null 2>&1 || fail "No Docker image '$short' on this machine: build it first (docker images lists what there is)."
  docker save "$short" | ctr --address "$CONTAINERD_SOCK" -n k8s.io images import - >/dev/null ||
    fail "Importing $short into the cluster failed."
  echo "loaded $full" >&2
done
