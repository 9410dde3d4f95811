#!/bin/sh
# Process supervisor of Tilt's development images (never in production images).
#
# Runs $SHOP_BINARY "$@". Tilt's live update syncs a freshly compiled binary to /tmp/live/
# (the pod's writable emptyDir: the root filesystem stays read-only) and sends SIGHUP; this
# script then stops the service gracefully, moves the synced binary to /tmp/run/ and starts
# it, without a new pod. SIGTERM and SIGINT are passed on, so Kubernetes' graceful shutdown
# still works.
#
# /tmp has a size limit (the chart's tmpSizeLimit) and the kubelet evicts a pod that outgrows
# it, so /tmp holds as little as it can: nothing until the first live update (the image's
# binary runs where it is), then the running binary, plus the synced one between a sync and
# the restart. A move within /tmp copies nothing. services/deploytest measures the most this
# keeps against the development values.
# SHOP_LIVE_DIR replaces /tmp (tests).
set -u
name=$(basename "$SHOP_BINARY")
dir="${SHOP_LIVE_DIR:-/tmp}"
live="$dir/live/$name"
run="$dir/run/$name"
mkdir -p "$dir/live" "$dir/run"

child=0
restart=0
trap 'restart=1; kill -TERM "$child" 2>/dev/null' HUP
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit $?' TERM INT

while :; do
  # Take the synced binary, if there is a new one: the service has stopped, and a later sync
  # writes to $live, never over the running executable. A binary synced before a container
  # restart outlives it (/tmp belongs to the pod), so it is kept over the image's.
  if [ -f "$live" ]; then
    mv -f "$live" "$run" && chmod 0755 "$run"
  fi
  bin="$SHOP_BINARY"
  [ -f "$run" ] && bin="$run"
  "$bin" "$@" &
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
