#!/bin/sh
# Runs once, on an empty data directory: one role and one database per service, so orders
# and payments share no tables and no credentials.
set -eu
for svc in orders payments; do
  case "$svc" in
    orders) password="$ORDERS_PASSWORD" ;;
    payments) password="$PAYMENTS_PASSWORD" ;;
  esac
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v svc="$svc" -v password="$password" <<'SQL'
CREATE ROLE :"svc" LOGIN PASSWORD :'password';
CREATE DATABASE :"svc" OWNER :"svc";
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
SQL
done
