#!/bin/sh
set -e
# Like the official image: leading flags mean redis-server; without a config file, protected mode is off.
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  case "$*" in *--protected-mode*|*.conf*) ;; *) set -- "$@" --protected-mode no ;; esac
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
