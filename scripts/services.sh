#!/usr/bin/env bash
# Start PostgreSQL and MariaDB when they are not running, and create the test databases.
# Used by `make test` (and so CI): the tests need both servers on 127.0.0.1.
set -euo pipefail

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
# The back-office's browser tests drive Debian's chromium (Playwright, executable_path).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "services: installing ${need_apt[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_ready; then
  echo "services: starting PostgreSQL" >&2
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi

maria_ready() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root status >/dev/null 2>&1; }
if ! maria_ready; then
  echo "services: starting MariaDB" >&2
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
fi

for _ in $(seq 1 60); do
  pg_ready && maria_ready && break
  sleep 1
done
pg_ready || { echo "services: PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
maria_ready || { echo "services: MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1; }

psql_as() {
  if psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres "$@"
  else
    su postgres -c "psql -d postgres $(printf '%q ' "$@")"
  fi
}
psql_as -tAc "select 1 from pg_database where datname='payrecon_test'" | grep -q 1 \
  || psql_as -qc "create database payrecon_test"
mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e "create database if not exists payrecon_test"
echo "services: PostgreSQL and MariaDB ready" >&2
