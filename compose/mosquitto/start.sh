#!/bin/sh
# The broker's entrypoint: sets the password of the in-network account (listener 1883) from the
# environment, then runs Mosquitto. The password reaches mosquitto_passwd on stdin (printf is a
# shell builtin), so it never shows in a process list.
#
# The file is KEPT across starts: the api adds every player it provisions to it (its
# MQTT_PASSWD_FILE, /mqtt-config/passwords, the same volume), and a rebuilt file would make them
# vanish at the next restart. Only the backend account's line is (re)written.
set -eu
: "${MQTT_PASSWORD:?MQTT_PASSWORD is not set}"
: "${MQTT_BACKEND_USER:?MQTT_BACKEND_USER is not set}"
# (Overridable only so the tests can run this very script against a temporary file.)
file=${MOSQUITTO_PASSWORD_FILE:-/mosquitto/data/passwords}
umask 077
if [ -s "$file" ]; then
  printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | mosquitto_passwd "$file" "$MQTT_BACKEND_USER" >/dev/null
else
  printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | mosquitto_passwd -c "$file" "$MQTT_BACKEND_USER" >/dev/null
fi
chown mosquitto:mosquitto "$file"
# Reload on every new CRL (the app's api and worker rewrite it; see watch-crl.sh). Only where it is
# mounted: the tests run this script outside a container.
if [ -f /mosquitto/config/watch-crl.sh ]; then /bin/sh /mosquitto/config/watch-crl.sh & fi
exec mosquitto -c /mosquitto/config/mosquitto.conf
