#!/bin/sh
# Like the app's db/init-users.sh: the api_worker role and the makapix_test database.
if [ -n "${DB_API_WORKER_USER:-}" ] && [ -n "${DB_API_WORKER_PASSWORD:-}" ]; then
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q -c "CREATE ROLE \"$DB_API_WORKER_USER\" LOGIN PASSWORD '$DB_API_WORKER_PASSWORD'"
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q -c "CREATE DATABASE makapix_test"
fi
