#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, no ZooKeeper) for development and
# tests, installed from Maven Central and run on 127.0.0.1:9092.
#
#   scripts/kafka.sh install   fetch the broker jars (cached; reruns are free)
#   scripts/kafka.sh start     install if needed, format storage once, start, wait until it answers
#   scripts/kafka.sh stop      stop it and wait until it has exited
#   scripts/kafka.sh status    exit 0 when it is running and answering
#
# Jars: ${STRAND_SERVICES_CACHE:-$HOME/.cache/strand}/kafka-<version>/libs
# State (data, log, pid): <repo>/.services/kafka (gitignored), or $KAFKA_STATE_DIR
# (with KAFKA_PORT/KAFKA_CONTROLLER_PORT, a second private broker)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.25.3}"
SLF4J_VERSION="${SLF4J_VERSION:-2.0.17}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx512m}"
START_TIMEOUT_SECS="${KAFKA_START_TIMEOUT_SECS:-120}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STRAND_SERVICES_CACHE:-$HOME/.cache/strand}/kafka-$KAFKA_VERSION"
# Bump when the pom below changes, so caches from an older pom are refetched.
INSTALL_REV=2
LIBS="$CACHE/libs"
STATE="${KAFKA_STATE_DIR:-$REPO/.services/kafka}"
PIDFILE="$STATE/kafka.pid"
LOGFILE="$STATE/kafka.log"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null; then
        command -v java
    else
        die "no java found: install a JDK 17+ (apt-get install -y openjdk-17-jdk-headless)"
    fi
}

install() {
    if [[ "$(cat "$CACHE/.installed" 2>/dev/null)" == "$INSTALL_REV" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "maven not found: apt-get install -y maven"
    mkdir -p "$CACHE"
    local pom="$CACHE/pom.xml"
    cat >"$pom" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.strand</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- slf4j 2 for the log4j2 binding (kafka-clients alone would resolve 1.7, which logs nothing) -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
    log "installing Apache Kafka $KAFKA_VERSION into $LIBS"
    rm -rf "$LIBS"
    mvn -B -q -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS" </dev/null \
        || die "maven could not fetch kafka_2.13:$KAFKA_VERSION"
    ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka jar missing after install"
    # Other slf4j bindings would fight log4j2 over the logs.
    rm -f "$LIBS"/slf4j-reload4j-*.jar "$LIBS"/slf4j-log4j12-*.jar "$LIBS"/logback-classic-*.jar
    echo "$INSTALL_REV" >"$CACHE/.installed"
}

pid_alive() {
    [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null
}

# Answers when the broker serves metadata, not merely when the port is open.
answers() {
    port_open || return 1
    "$(java_bin)" -Xmx128m -cp "$LIBS/*" -Dlog4j2.configurationFile="$STATE/tools-log4j2.properties" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list \
        </dev/null >/dev/null 2>&1
}

write_config() {
    mkdir -p "$STATE/data"
    cat >"$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
log.segment.bytes=67108864
PROPS
    cat >"$STATE/log4j2.properties" <<L4J
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.apache.name=org.apache.kafka
logger.apache.level=INFO
L4J
    cat >"$STATE/tools-log4j2.properties" <<L4J
rootLogger.level=WARN
rootLogger.appenderRef.err.ref=err
appender.err.type=Console
appender.err.name=err
appender.err.target=SYSTEM_ERR
appender.err.layout.type=PatternLayout
appender.err.layout.pattern=%p %m%n
L4J
}

format_storage() {
    [[ -f "$STATE/data/meta.properties" ]] && return 0
    local java id
    java="$(java_bin)"
    id="$("$java" -cp "$LIBS/*" -Dlog4j2.configurationFile="$STATE/tools-log4j2.properties" \
        kafka.tools.StorageTool random-uuid </dev/null)"
    log "formatting storage (cluster id $id)"
    "$java" -cp "$LIBS/*" -Dlog4j2.configurationFile="$STATE/tools-log4j2.properties" \
        kafka.tools.StorageTool format -t "$id" -c "$STATE/server.properties" --standalone \
        </dev/null >>"$STATE/format.log" 2>&1 \
        || "$java" -cp "$LIBS/*" -Dlog4j2.configurationFile="$STATE/tools-log4j2.properties" \
            kafka.tools.StorageTool format -t "$id" -c "$STATE/server.properties" \
            </dev/null >>"$STATE/format.log" 2>&1 \
        || { cat "$STATE/format.log" >&2; die "storage format failed"; }
}

start() {
    if pid_alive && answers; then
        log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    install
    mkdir -p "$STATE"
    write_config
    if ! pid_alive && port_open; then
        # E.g. a broker started from another checkout: fine if it is Kafka.
        if answers; then
            log "a Kafka broker not started from this checkout already answers on 127.0.0.1:$KAFKA_PORT; using it"
            return 0
        fi
        die "127.0.0.1:$KAFKA_PORT is taken by another process"
    fi
    format_storage
    if ! pid_alive; then
        local java
        java="$(java_bin)"
        # setsid: the broker outlives this shell and a CI step's process group.
        nohup setsid "$java" $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
            -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" \
            </dev/null >>"$LOGFILE" 2>&1 &
        echo $! >"$PIDFILE"
        log "started pid $(cat "$PIDFILE"), log $LOGFILE"
    fi
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    until answers; do
        if ! pid_alive; then
            tail -n 40 "$LOGFILE" >&2 || true
            die "broker exited during startup (log: $LOGFILE)"
        fi
        if ((SECONDS > deadline)); then
            tail -n 40 "$LOGFILE" >&2 || true
            die "broker did not answer within ${START_TIMEOUT_SECS}s"
        fi
        sleep 1
    done
    log "ready on 127.0.0.1:$KAFKA_PORT"
}

stop() {
    if ! pid_alive; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; return 0; }
        sleep 1
    done
    log "broker did not exit in 60s; killing"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

status() {
    if pid_alive && answers; then
        log "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"
    else
        log "not running"
        return 1
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
