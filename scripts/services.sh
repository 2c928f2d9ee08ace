#!/usr/bin/env bash
# Starts the servers the tests and the distributed mode need, when they are not
# already running: PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672.
# Installs them from Debian's packages on a machine that lacks them.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 name=$2
    for _ in $(seq 1 60); do
        port_open "$port" && return 0
        sleep 1
    done
    log "$name did not open port $port"
    return 1
}

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 5432; then
    if ! ls /etc/postgresql >/dev/null 2>&1; then
        log "installing postgresql"
        apt_install postgresql
    fi
    version=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting postgresql $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for_port 5432 postgresql
fi

if ! port_open 5672; then
    if ! command -v rabbitmq-server >/dev/null; then
        log "installing rabbitmq-server"
        apt_install rabbitmq-server
    fi
    log "starting rabbitmq"
    rabbitmq-server -detached || true
    wait_for_port 5672 rabbitmq
    # The AMQP port opens before the broker has finished booting.
    rabbitmqctl await_startup >/dev/null 2>&1 || true
fi

log "postgresql and rabbitmq are up"
