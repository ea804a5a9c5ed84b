#!/usr/bin/env bash
# Installs what vigil's tests and demo need from the distribution's packages (Debian/Ubuntu),
# and only what is missing: PostgreSQL server binaries, the Mosquitto broker and its
# command-line clients. Safe to run again: a second run installs nothing.
#
#   scripts/setup.sh
#
# Note: Debian's postinst scripts may create and start a system-wide PostgreSQL cluster
# (port 5432) and a system Mosquitto (port 1883). vigil's scripts and tests never use them:
# they start private instances on free ports (scripts/services.sh, tests/common).
set -euo pipefail

step() { printf '==> %s\n' "$*"; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "setup.sh: need root to install packages, and sudo is not available" >&2
        exit 1
    fi
}

# The newest PostgreSQL server bin directory Debian's packages installed, if any.
pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
        echo "$d"
    fi
}

# /usr/sbin is not on an ordinary user's PATH on Debian, so look there too.
have_cmd() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: apt-get not found; install PostgreSQL (server), mosquitto and" \
        "mosquitto-clients with your package manager" >&2
    exit 1
fi

missing=()

if [ -n "$(pg_bindir)" ]; then
    step "PostgreSQL server: present ($(pg_bindir))"
else
    step "PostgreSQL server: missing"
    missing+=(postgresql)
fi

if have_cmd mosquitto; then
    step "mosquitto: present"
else
    step "mosquitto: missing"
    missing+=(mosquitto)
fi

if have_cmd mosquitto_pub && have_cmd mosquitto_sub; then
    step "mosquitto-clients: present"
else
    step "mosquitto-clients: missing"
    missing+=(mosquitto-clients)
fi

# The page's end-to-end test drives Debian's Chromium (no browser download: the network may
# be closed) through playwright-core, installed from tests/e2e/package-lock.json below.
if [ -x /usr/bin/chromium ]; then
    step "chromium: present"
else
    step "chromium: missing"
    missing+=(chromium)
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    step "node: present ($(node --version))"
else
    step "node and npm: missing"
    missing+=(nodejs npm)
fi

# runuser (util-linux) runs PostgreSQL as `postgres` when we are root; it is essential on
# Debian, so only check it.
if [ "$(id -u)" -eq 0 ] && ! have_cmd runuser; then
    missing+=(util-linux)
fi

# Node dependencies of the page test, exactly as locked; only when not installed yet.
e2e_deps() {
    local e2e
    e2e=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e" && pwd)
    if [ -d "$e2e/node_modules/playwright-core" ]; then
        step "tests/e2e node modules: present"
    else
        step "npm ci (tests/e2e)"
        (cd "$e2e" && npm ci --no-audit --no-fund --silent)
    fi
}

if [ "${#missing[@]}" -eq 0 ]; then
    e2e_deps
    step "nothing else to install"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
step "apt-get update"
as_root apt-get update -qq >/dev/null
step "installing ${missing[*]}"
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [ -z "$(pg_bindir)" ]; then
    echo "setup.sh: PostgreSQL server binaries still missing under /usr/lib/postgresql" >&2
    exit 1
fi
e2e_deps
mosquitto_version=$( (/usr/sbin/mosquitto -h 2>/dev/null || true) | head -n 1)
step "done: PostgreSQL at $(pg_bindir), ${mosquitto_version:-mosquitto}"
