#!/usr/bin/env bash
# Installs, starts and stops a single-node Elasticsearch on 127.0.0.1:9200
# for development and the integration tests.
#
#   scripts/elasticsearch.sh install|start|stop|status|logs
#
# The distribution is Elasticsearch's integ-test zip from Maven Central (no
# bundled JDK, few modules). The zip and its unpacked tree are cached under
# ${STRAND_SERVICES_CACHE:-$HOME/.cache/strand}; runtime state (config, data,
# logs, pid) lives in <repo>/.services/elasticsearch. Elasticsearch refuses
# to run as root, so it runs as a system user created here.
#
# Environment:
#   ES_VERSION    version to install (default: 9.2.0 when a Java 21+ is
#                 found, else 8.19.21 on Java 17)
#   ES_JAVA_HOME  JDK to use (default: the newest suitable under /usr/lib/jvm)
#   ES_HEAP       heap size (default 1g)
#   ES_PORT       HTTP port (default 9200)
#   ES_USER       system user to run as (default strand-es)
#   ES_START_TIMEOUT  seconds to wait for health yellow (default 180)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STRAND_SERVICES_CACHE:-$HOME/.cache/strand}"
STATE="$REPO/.services/elasticsearch"
PORT="${ES_PORT:-9200}"
HEAP="${ES_HEAP:-1g}"
ES_USER="${ES_USER:-strand-es}"
START_TIMEOUT="${ES_START_TIMEOUT:-180}"
URL="http://127.0.0.1:$PORT"

# Whether every directory from $1 up to / can be entered by other users.
others_can_enter() {
    local d="$1" p
    while [[ "$d" != "/" ]]; do
        p="$(stat -c %A "$d" 2>/dev/null)" || return 1
        [[ "${p:9:1}" == [xt] ]] || return 1
        d="$(dirname "$d")"
    done
}

# Runtime state (config, data, logs, pid) lives in $STATE, unless the
# service user could not reach it (a clone under a private home such as
# /root): then under /var/tmp, linked from $STATE/runtime.
if [[ "$(id -u)" != 0 ]] || others_can_enter "$REPO"; then
    RUN="$STATE"
else
    RUN="/var/tmp/strand-es-$(printf %s "$REPO" | md5sum | cut -c1-12)"
fi
PIDFILE="$RUN/run/es.pid"

log() { echo "elasticsearch.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

java_major() { # prints the major version of the java binary $1
    "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

# Picks a JDK: ES_JAVA_HOME if set, else the newest under /usr/lib/jvm (and
# the java on PATH as a last resort). Sets JDK and JDK_MAJOR.
pick_jdk() {
    local best="" best_major=0 cand major
    if [[ -n "${ES_JAVA_HOME:-}" ]]; then
        best="$ES_JAVA_HOME"
        best_major="$(java_major "$best/bin/java")"
    else
        for cand in /usr/lib/jvm/*/; do
            cand="${cand%/}"
            [[ -x "$cand/bin/java" && ! -L "$cand" ]] || continue
            major="$(java_major "$cand/bin/java")"
            [[ -n "$major" ]] || continue
            if (( major > best_major )); then best="$cand"; best_major="$major"; fi
        done
        if [[ -z "$best" ]] && command -v java >/dev/null; then
            best="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
            best_major="$(java_major "$best/bin/java")"
        fi
    fi
    [[ -n "$best" && -n "$best_major" ]] || die "no JDK found (install openjdk-17-jre-headless or set ES_JAVA_HOME)"
    JDK="$best"
    JDK_MAJOR="$best_major"
}

pick_version() {
    pick_jdk
    if [[ -n "${ES_VERSION:-}" ]]; then
        VERSION="$ES_VERSION"
    elif (( JDK_MAJOR >= 21 )); then
        VERSION="9.2.0"
    else
        VERSION="8.19.21"
    fi
    if [[ "$VERSION" == 9.* ]] && (( JDK_MAJOR < 21 )); then
        die "Elasticsearch $VERSION needs Java 21+, found Java $JDK_MAJOR at $JDK"
    fi
    (( JDK_MAJOR >= 17 )) || die "Elasticsearch needs Java 17+, found Java $JDK_MAJOR at $JDK"
    DIST="$CACHE/elasticsearch-$VERSION"
}

do_install() {
    pick_version
    mkdir -p "$CACHE"
    local zip="$CACHE/elasticsearch-$VERSION.zip"
    if [[ ! -f "$DIST/bin/elasticsearch" ]]; then
        if [[ ! -f "$zip" ]]; then
            command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
            log "downloading integ-test-zip $VERSION from Maven Central"
            mvn -B -q -ntp dependency:copy \
                -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$VERSION:zip" \
                -DoutputDirectory="$CACHE" -Dmdep.overWriteReleases=true </dev/null >&2 \
                || die "could not fetch elasticsearch $VERSION from Maven Central"
            [[ -f "$zip" ]] || die "maven did not produce $zip"
        fi
        command -v unzip >/dev/null || die "unzip not found (apt-get install unzip)"
        local tmp="$CACHE/.unpack-$$"
        rm -rf "$tmp" && mkdir -p "$tmp"
        unzip -q "$zip" -d "$tmp"
        rm -rf "$DIST"
        mv "$tmp/elasticsearch-$VERSION" "$DIST"
        rm -rf "$tmp"
        chmod -R a+rX "$DIST" # readable by the service user whatever the umask
    fi
    ensure_user
    log "installed Elasticsearch $VERSION (Java $JDK_MAJOR at $JDK) in $DIST"
}

ensure_user() {
    if [[ "$(id -u)" != 0 ]]; then
        return # not root: Elasticsearch runs as the current user
    fi
    if ! id -u "$ES_USER" >/dev/null 2>&1; then
        useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$ES_USER" \
            || die "could not create system user $ES_USER"
    fi
}

# Runs a command as the Elasticsearch user (or as is when not root).
as_es() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u "$ES_USER" -- "$@"
    else
        "$@"
    fi
}

healthy() {
    curl -fsS --max-time 5 "$URL/_cluster/health" 2>/dev/null | grep -Eq '"status":"(green|yellow)"'
}

pid_alive() {
    [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

# The runtime home: the cached distribution, hard-linked (or copied) into the
# state dir, because the cache may sit under a home the service user cannot
# enter.
prepare_home() {
    local home="$RUN/dist-$VERSION"
    if [[ ! -f "$home/bin/elasticsearch" ]]; then
        rm -rf "$home"
        cp -al "$DIST" "$home" 2>/dev/null || cp -a "$DIST" "$home"
    fi
    HOME_DIR="$home"
}

write_config() {
    local conf="$RUN/config"
    mkdir -p "$STATE" "$RUN"
    chmod 755 "$RUN"
    if [[ "$RUN" == "$STATE" ]]; then
        chmod 755 "$REPO/.services"
    else
        ln -sfn "$RUN" "$STATE/runtime"
    fi
    mkdir -p "$conf" "$RUN/data-$VERSION" "$RUN/logs" "$RUN/tmp" "$RUN/run"
    # Start from the distribution's files (log4j2, jvm.options) and override.
    cp -f "$HOME_DIR"/config/log4j2.properties "$HOME_DIR"/config/jvm.options "$conf"/
    mkdir -p "$conf/jvm.options.d"
    printf -- '-Xms%s\n-Xmx%s\n' "$HEAP" "$HEAP" > "$conf/jvm.options.d/heap.options"
    cat > "$conf/elasticsearch.yml" <<EOF
# Written by scripts/elasticsearch.sh; edits are overwritten on start.
cluster.name: strand-dev
node.name: strand-es-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: $PORT
transport.port: $((PORT + 100))
path.data: $RUN/data-$VERSION
path.logs: $RUN/logs
xpack.security.enabled: false
# Small development disks: never block writes on the disk watermarks.
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
    if [[ "$(id -u)" == 0 ]]; then
        chown -R "$ES_USER": "$RUN/config" "$RUN/data-$VERSION" "$RUN/logs" "$RUN/tmp" "$RUN/run"
        # The user must be able to reach the state dir through the repo path.
        local d="$RUN"
        while [[ "$d" != "/" ]]; do
            if ! runuser -u "$ES_USER" -- test -x "$d"; then
                die "user $ES_USER cannot enter $d; move the repo or chmod o+x $d"
            fi
            d="$(dirname "$d")"
        done
    fi
}

do_start() {
    if healthy; then
        log "already running at $URL"
        return 0
    fi
    do_install
    mkdir -p "$STATE" "$RUN"
    if pid_alive; then
        log "process $(cat "$PIDFILE") is starting; waiting for it"
    else
        prepare_home
        write_config
        rm -f "$PIDFILE"
        log "starting Elasticsearch $VERSION on $URL (heap $HEAP)"
        as_es env ES_JAVA_HOME="$JDK" ES_PATH_CONF="$RUN/config" ES_TMPDIR="$RUN/tmp" \
            ES_JAVA_OPTS="${ES_JAVA_OPTS:-}" \
            "$HOME_DIR/bin/elasticsearch" -d -p "$PIDFILE" </dev/null \
            > "$RUN/start.out" 2>&1 \
            || { cat "$RUN/start.out" >&2; die "Elasticsearch failed to start (see $RUN/logs)"; }
    fi
    local waited=0
    until healthy; do
        if (( waited >= START_TIMEOUT )); then
            tail -n 40 "$RUN/logs/strand-dev.log" >&2 2>/dev/null || true
            die "not healthy after ${START_TIMEOUT}s (see $RUN/logs)"
        fi
        if ! pid_alive && (( waited > 5 )); then
            tail -n 40 "$RUN/logs/strand-dev.log" >&2 2>/dev/null || cat "$RUN/start.out" >&2
            die "Elasticsearch exited during startup (see $RUN/logs)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "healthy at $URL after ${waited}s"
}

do_stop() {
    if ! pid_alive; then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    log "stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; return 0; }
        sleep 1
    done
    log "still running after 60s; killing"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

do_status() {
    if healthy; then
        curl -fsS --max-time 5 "$URL/_cluster/health?pretty"
        return 0
    fi
    if pid_alive; then
        log "process $(cat "$PIDFILE") running but not healthy yet"
    else
        log "not running"
    fi
    return 1
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    logs) tail -n 100 "$RUN/logs/strand-dev.log" ;;
    *) echo "usage: $0 install|start|stop|status|logs" >&2; exit 2 ;;
esac
