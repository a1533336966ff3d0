#!/bin/sh
# Reloads the broker (SIGHUP, which keeps every connected client) whenever crl.pem changes, and
# records which CRL it last had loaded. Follows the app's mqtt/config/scripts/watch-crl.sh: crl.pem
# is rewritten from outside the broker (the app's api on a revocation, its worker's nightly 30-day
# renewal, scripts/mqtt-certs.ts), and Mosquitto reads its crlfile only at start and on SIGHUP; a
# broker that never reloads refuses EVERY player once its in-memory CRL passes its next update.
# The image has no inotify tools: a poll of the file's hash every CRL_WATCH_SECONDS, which costs
# nothing and misses nothing. The marker (sha256 of the loaded CRL) is what `monitor` compares
# with the file on the host ("a CRL the broker has not loaded").
# Started in the background by start.sh before it execs Mosquitto, so Mosquitto is PID 1.
set -u
crl="${CERT_DIR:-/mosquitto/certs}/crl.pem"
marker="${CRL_LOADED_MARKER:-/tmp/crl.loaded}"
broker="${BROKER_PID:-1}"
sig() { sha256sum "$crl" 2>/dev/null | cut -d' ' -f1; }
last="$(sig)"
# Mosquitto reads the CRL as it starts, right after this.
printf '%s\n' "$last" > "$marker.tmp" && mv "$marker.tmp" "$marker"
while sleep "${CRL_WATCH_SECONDS:-5}"; do
  cur="$(sig)"
  [ -n "$cur" ] && [ "$cur" != "$last" ] || continue
  if kill -HUP "$broker"; then
    last="$cur"
    printf '%s\n' "$cur" > "$marker.tmp" && mv "$marker.tmp" "$marker"
    echo "watch-crl: crl.pem changed, broker reloaded (sha256 $cur)" >&2
  fi
done
