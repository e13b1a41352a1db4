#!/usr/bin/env bash
# Runs once when the PostgreSQL container initialises its data directory (docker-compose).
# The same roles `flk infra up` creates locally: group roles the migrations grant to, and
# login users that are members of them.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE flk_writer NOLOGIN;
CREATE ROLE flk_reader NOLOGIN;
CREATE ROLE "${FLK_APP_USER}" LOGIN CREATEDB PASSWORD '${FLK_APP_PASSWORD}' IN ROLE flk_writer;
CREATE ROLE "${FLK_READONLY_USER}" LOGIN PASSWORD '${FLK_READONLY_PASSWORD}' IN ROLE flk_reader;
ALTER ROLE "${FLK_READONLY_USER}" SET default_transaction_read_only = on;
CREATE DATABASE flk OWNER "${FLK_APP_USER}";
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname flk <<SQL
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE flk TO flk_reader;
SQL
