#!/bin/sh
# The broker's entrypoint: writes the password file of the in-network account (listener 1883) from
# the environment, then runs Mosquitto. The password reaches mosquitto_passwd on stdin (printf is a
# shell builtin), so it never shows in a process list. Rewritten at every start: no stale accounts.
set -eu
: "${MQTT_PASSWORD:?MQTT_PASSWORD is not set}"
: "${MQTT_BACKEND_USER:?MQTT_BACKEND_USER is not set}"
umask 077
rm -f /mosquitto/data/passwords
printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | mosquitto_passwd -c /mosquitto/data/passwords "$MQTT_BACKEND_USER" >/dev/null
chown mosquitto:mosquitto /mosquitto/data/passwords
# Reload on every new CRL (the app's api and worker rewrite it; see watch-crl.sh).
/bin/sh /mosquitto/config/watch-crl.sh &
exec mosquitto -c /mosquitto/config/mosquitto.conf
