#!/usr/bin/env bash
# Private PostgreSQL and Mosquitto instances for the demo, kept in one directory.
#
#   eval "$(scripts/services.sh start DIR)"   # start both, export VIGIL_DATABASE_URL/VIGIL_MQTT_URL
#   scripts/services.sh env DIR               # print the export lines again
#   scripts/services.sh status DIR            # running or not
#   scripts/services.sh stop DIR              # stop both (data stays in DIR)
#
# Layout of DIR: pg/ (cluster), pg-run/ (socket, postgres.log), mosquitto/ (persistence,
# pid), mosquitto.conf (config/mosquitto.conf + listener + persistence_location),
# mosquitto.log, ports. A second `start` reuses the cluster, the broker's persisted queue and,
# when still free, the same ports. Both servers listen on 127.0.0.1 only.
# Progress goes to stderr; only the export lines go to stdout.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'services.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
if [ "$cmd" = start ]; then mkdir -p "$2"; fi
[ -d "$2" ] || die "no such directory: $2"
DIR=$(cd "$2" && pwd)
PGDATA_DIR=$DIR/pg
PGRUN=$DIR/pg-run
MQDIR=$DIR/mosquitto
MQCONF=$DIR/mosquitto.conf
MQLOG=$DIR/mosquitto.log
MQPID=$MQDIR/mosquitto.pid
PORTS=$DIR/ports
# Commands run as `postgres` inherit our cwd; a cwd they cannot enter makes psql warn.
cd /

is_root() { [ "$(id -u)" -eq 0 ]; }

# initdb and postgres refuse to run as root: run them as `postgres` when we are root.
as_pg() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] || die "PostgreSQL server binaries not found; run scripts/setup.sh"
    echo "$d"
}

mosquitto_bin() {
    if command -v mosquitto 2>/dev/null; then return; fi
    [ -x /usr/sbin/mosquitto ] || die "mosquitto not found; run scripts/setup.sh"
    echo /usr/sbin/mosquitto
}

# Mosquitto started as root drops privileges to `mosquitto` (or `nobody` without it).
mosquitto_user() {
    if id -u mosquitto >/dev/null 2>&1; then echo mosquitto; else echo nobody; fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        port_open "$p" || { echo "$p"; return; }
    done
    die "no free port found"
}

# Waits up to $2 seconds for 127.0.0.1:$1 to accept connections.
wait_port() {
    local deadline=$((SECONDS + $2))
    until port_open "$1"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

PG_PORT=
MQTT_PORT=
load_ports() {
    # shellcheck source=/dev/null
    if [ -f "$PORTS" ]; then . "$PORTS"; fi
}
save_ports() {
    printf 'PG_PORT=%s\nMQTT_PORT=%s\n' "$PG_PORT" "$MQTT_PORT" >"$PORTS"
}

print_env() {
    load_ports
    [ -n "$PG_PORT" ] && [ -n "$MQTT_PORT" ] || die "no instance in $DIR; run: $0 start $DIR"
    echo "export VIGIL_DATABASE_URL=postgres://vigil:vigil@127.0.0.1:$PG_PORT/vigil"
    echo "export VIGIL_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT"
}

pg_running() { [ -f "$PGDATA_DIR/PG_VERSION" ] && as_pg "$(pg_bin)/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; }

mq_pid() { [ -f "$MQPID" ] && cat "$MQPID"; }
mq_running() { local p; p=$(mq_pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

psql_admin() {
    as_pg "$(pg_bin)/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$PGRUN" -p "$PG_PORT" -U postgres -d postgres "$@"
}

start_postgres() {
    local bin; bin=$(pg_bin)
    if is_root && ! runuser -u postgres -- test -x "$DIR"; then
        die "user postgres cannot enter $DIR (a parent directory is private); use a DIR under /tmp or /var/tmp"
    fi
    if pg_running; then
        log "PostgreSQL already running on port $PG_PORT"
        return
    fi
    if [ -z "$PG_PORT" ] || port_open "$PG_PORT"; then PG_PORT=$(free_port); fi
    save_ports
    mkdir -p "$PGDATA_DIR" "$PGRUN"
    chmod 700 "$PGDATA_DIR"
    if is_root; then chown postgres: "$PGDATA_DIR" "$PGRUN"; fi
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        log "initdb $PGDATA_DIR"
        local pw; pw=$(mktemp)
        echo postgres >"$pw"
        if is_root; then chown postgres: "$pw"; fi
        as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pw" >"$PGRUN/initdb.log" 2>&1 \
            || { rm -f "$pw"; tail -n 20 "$PGRUN/initdb.log" >&2; die "initdb failed"; }
        rm -f "$pw"
        # Per-start settings (port, socket dir) live in their own file, rewritten each start.
        echo "include_if_exists = 'vigil-instance.conf'" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" \
        "$PG_PORT" "${PGRUN//\'/\'\'}" | as_pg tee "$PGDATA_DIR/vigil-instance.conf" >/dev/null
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PGRUN/postgres.log)"
    as_pg "$bin/pg_ctl" start -w -t 60 -D "$PGDATA_DIR" -l "$PGRUN/postgres.log" >/dev/null \
        || { tail -n 20 "$PGRUN/postgres.log" >&2; die "PostgreSQL did not start"; }
    if [ -z "$(psql_admin -c "select 1 from pg_roles where rolname = 'vigil'")" ]; then
        log "creating role vigil"
        psql_admin -c "create role vigil login password 'vigil' createdb"
    fi
    if [ -z "$(psql_admin -c "select 1 from pg_database where datname = 'vigil'")" ]; then
        log "creating database vigil"
        psql_admin -c "create database vigil owner vigil"
    fi
}

start_mosquitto() {
    local bin; bin=$(mosquitto_bin)
    if mq_running; then
        log "Mosquitto already running on port $MQTT_PORT"
        return
    fi
    if [ -z "$MQTT_PORT" ] || port_open "$MQTT_PORT"; then MQTT_PORT=$(free_port); fi
    save_ports
    mkdir -p "$MQDIR"
    : >>"$MQLOG"
    if is_root; then chown "$(mosquitto_user)": "$MQDIR" "$MQLOG"; fi
    {
        cat "$REPO/config/mosquitto.conf"
        echo
        echo "# --- appended by scripts/services.sh ---"
        echo "listener $MQTT_PORT 127.0.0.1"
        echo "persistence_location $MQDIR/"
        echo "pid_file $MQPID"
        echo "log_dest file $MQLOG"
    } >"$MQCONF"
    rm -f "$MQPID"
    log "starting Mosquitto on 127.0.0.1:$MQTT_PORT (log: $MQLOG)"
    "$bin" -c "$MQCONF" -d || { tail -n 20 "$MQLOG" >&2; die "Mosquitto did not start"; }
    wait_port "$MQTT_PORT" 10 || { tail -n 20 "$MQLOG" >&2; die "Mosquitto is not accepting connections"; }
}

stop_postgres() {
    if pg_running; then
        log "stopping PostgreSQL"
        as_pg "$(pg_bin)/pg_ctl" stop -w -t 60 -m fast -D "$PGDATA_DIR" >/dev/null
    else
        log "PostgreSQL not running"
    fi
}

stop_mosquitto() {
    if mq_running; then
        local pid; pid=$(mq_pid)
        log "stopping Mosquitto (pid $pid)"
        kill -TERM "$pid"
        # It writes its persistence file on the way out: wait for it to finish.
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            [ "$SECONDS" -lt "$deadline" ] || die "Mosquitto (pid $pid) did not stop within 30 s"
            sleep 0.1
        done
    else
        log "Mosquitto not running"
    fi
}

case "$cmd" in
    start)
        load_ports
        start_postgres
        start_mosquitto
        print_env
        ;;
    stop)
        load_ports
        stop_mosquitto
        stop_postgres
        ;;
    env)
        print_env
        ;;
    status)
        load_ports
        if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
        if mq_running; then echo "mosquitto: running on 127.0.0.1:$MQTT_PORT"; else echo "mosquitto: stopped"; fi
        ;;
    *)
        usage
        ;;
esac
