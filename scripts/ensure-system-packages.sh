#!/usr/bin/env bash
# System packages the Python install needs and pip cannot provide: the MariaDB client headers
# that mysqlclient (the MySQL provider's driver) compiles against. Installs them when missing and
# this is a Debian-like machine where we may use apt-get; otherwise says what is needed.
set -euo pipefail
if pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing pkg-config and libmariadb-dev (needed to build mysqlclient) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config libmariadb-dev >/dev/null
else
  echo "mysqlclient needs the MariaDB/MySQL client headers: install pkg-config and libmariadb-dev" \
       "(Debian/Ubuntu) or mysql-client + pkg-config (macOS: brew install mysql-client pkg-config)." >&2
  exit 1
fi
