#!/bin/sh
# Process supervisor of Tilt's development images (never in production images).
#
# Runs $SHOP_BINARY "$@". Tilt's live update syncs a freshly compiled binary to /tmp/live/
# (the pod's writable emptyDir: the root filesystem stays read-only) and sends SIGHUP; this
# script then stops the service gracefully and starts the new binary, without a new pod.
# SIGTERM and SIGINT are passed on, so Kubernetes' graceful shutdown still works.
# SHOP_LIVE_DIR replaces /tmp (tests).
set -u
name=$(basename "$SHOP_BINARY")
dir="${SHOP_LIVE_DIR:-/tmp}"
live="$dir/live/$name"
run="$dir/run/$name"
mkdir -p "$dir/live" "$dir/run"
[ -f "$live" ] || cp "$SHOP_BINARY" "$live"

child=0
restart=0
trap 'restart=1; kill -TERM "$child" 2>/dev/null' HUP
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit $?' TERM INT

while :; do
  # Run a copy: a later sync then never writes over a running executable.
  cp "$live" "$run" && chmod 0755 "$run"
  "$run" "$@" &
  child=$!
  wait "$child"
  status=$?
  # A trapped signal ends `wait` early: wait until the child has really gone.
  while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    status=$?
  done
  if [ "$restart" = 1 ]; then
    restart=0
    echo "live.sh: restarting $name with the synced binary" >&2
    continue
  fi
  exit "$status"
done
