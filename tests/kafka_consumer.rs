//! Kafka consumers against a real Apache Kafka broker (`common::kafka`):
//! committed offsets across restarts, partitions split and rebalanced in a
//! group, a failing or panicking sink, no broker at all, and a consumer
//! stuck outside its group rebuilt by the watchdog. Nothing is lost.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use common::kafka::{
    self, ids, offsets, spans, stop, wait_all_committed, RecordingSink, PARTITIONS,
};
use common::wait;
use strand::config::KafkaConfig;
use strand::kafka::consumer::start_kafka_consumers;
use strand::kafka::producer::KafkaSink;
use strand::model::SpanWriter;

#[actix_rt::test]
async fn restarted_consumer_resumes_from_committed_offsets() {
    let cfg = kafka::config("restart");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let first = spans(3, 20, 3);
    sink.write(first.clone()).await.unwrap();
    let store1 = Arc::new(RecordingSink::default());
    let c1 = start_kafka_consumers(&cfg, store1.clone(), None).unwrap();
    wait::until(
        "first batch downstream",
        Duration::from_secs(60),
        async || store1.distinct() == ids(&first),
    )
    .await;
    wait_all_committed(&cfg).await;
    stop(c1).await;

    let second = spans(4, 20, 3);
    sink.write(second.clone()).await.unwrap();
    let store2 = Arc::new(RecordingSink::default());
    let c2 = start_kafka_consumers(&cfg, store2.clone(), None).unwrap();
    wait::until(
        "second batch downstream",
        Duration::from_secs(60),
        async || ids(&second).is_subset(&store2.distinct()),
    )
    .await;
    // Everything of the first batch was committed, so none of it comes back.
    assert!(
        store2.distinct().is_disjoint(&ids(&first)),
        "committed spans were redelivered"
    );
    stop(c2).await;
}

#[actix_rt::test]
async fn two_consumers_in_one_group_split_the_partitions() {
    let cfg = kafka::config("split");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let (a, b) = (
        Arc::new(RecordingSink::default()),
        Arc::new(RecordingSink::default()),
    );
    let ca = start_kafka_consumers(&cfg, a.clone(), None).unwrap();
    let cb = start_kafka_consumers(&cfg, b.clone(), None).unwrap();
    wait::until(
        "both consumers to own partitions",
        Duration::from_secs(60),
        async || {
            let (pa, pb) = (ca.assigned_partitions(), cb.assigned_partitions());
            !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == PARTITIONS as usize
        },
    )
    .await;
    let (pa, pb) = (ca.assigned_partitions(), cb.assigned_partitions());
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "overlapping assignment {pa:?} {pb:?}"
    );

    let sent = spans(5, 60, 2);
    sink.write(sent.clone()).await.unwrap();
    let want = ids(&sent);
    wait::until(
        "every span in one of the two consumers",
        Duration::from_secs(60),
        async || {
            a.distinct()
                .union(&b.distinct())
                .copied()
                .collect::<HashSet<_>>()
                == want
        },
    )
    .await;
    assert!(
        !a.distinct().is_empty() && !b.distinct().is_empty(),
        "one consumer did all the work"
    );
    stop(ca).await;
    stop(cb).await;
}

#[actix_rt::test]
async fn failing_sink_holds_commits_until_it_recovers() {
    let cfg = kafka::config("failing");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(6, 10, 4);
    sink.write(sent.clone()).await.unwrap();
    let store = Arc::new(RecordingSink::default());
    store.failing.store(true, Ordering::SeqCst);
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    wait::until("a few failed writes", Duration::from_secs(60), async || {
        store.failures.load(Ordering::SeqCst) >= 3
    })
    .await;
    let (committed, high) = offsets(&cfg).await;
    assert!(high.iter().sum::<i64>() > 0);
    assert!(
        committed.iter().all(|c| *c < 0),
        "offsets committed while the sink was failing: {committed:?}"
    );

    store.failing.store(false, Ordering::SeqCst);
    wait::until(
        "every span after recovery",
        Duration::from_secs(60),
        async || store.distinct() == ids(&sent),
    )
    .await;
    wait_all_committed(&cfg).await;
    stop(consumer).await;
}

#[actix_rt::test]
async fn consumer_without_a_broker_is_restarted_with_backoff_and_stops_promptly() {
    kafka::require_broker(&kafka::brokers());
    let cfg = KafkaConfig {
        enabled: true,
        brokers: "127.0.0.1:1".into(),
        topic: "strand-test-nobroker-consumer".into(),
        delivery_timeout_ms: 1_000,
        ..Default::default()
    };
    let stats = strand::metrics::ActorStats::get("kafka_consumer");
    let before = stats.restarts.load(Ordering::SeqCst);
    let consumer = start_kafka_consumers(&cfg, Arc::new(RecordingSink::default()), None).unwrap();
    wait::until("two restarts", Duration::from_secs(30), async || {
        stats.restarts.load(Ordering::SeqCst) >= before + 2
    })
    .await;
    assert!(!stats.last_error.lock().is_empty());
    let started = Instant::now();
    stop(consumer).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn rebalances_while_consuming_lose_nothing() {
    let mut cfg = kafka::config("rebalance");
    cfg.batch_max_messages = 5;
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let (a, b) = (
        Arc::new(RecordingSink::default()),
        Arc::new(RecordingSink::default()),
    );
    let ca = start_kafka_consumers(&cfg, a.clone(), None).unwrap();
    let mut cb = None;
    let mut sent = Vec::new();
    for round in 0..10u8 {
        let batch = spans(100 + round, 10, 3);
        sink.write(batch.clone()).await.unwrap();
        sent.extend(batch);
        if round == 3 {
            // A second member joins: partitions move while A is mid-stream.
            cb = Some(start_kafka_consumers(&cfg, b.clone(), None).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait::until("B to own partitions", Duration::from_secs(60), async || {
        cb.as_ref()
            .is_some_and(|c| !c.assigned_partitions().is_empty())
    })
    .await;
    // A leaves: B takes over everything A had not committed.
    stop(ca).await;
    let more = spans(200, 10, 3);
    sink.write(more.clone()).await.unwrap();
    sent.extend(more);
    let want = ids(&sent);
    wait::until(
        "every span in A or B",
        Duration::from_secs(90),
        async || want.is_subset(&a.distinct().union(&b.distinct()).copied().collect()),
    )
    .await;
    wait_all_committed(&cfg).await;
    stop(cb.unwrap()).await;
}

#[actix_rt::test]
async fn consumer_is_restarted_after_a_panicking_sink_and_loses_nothing() {
    let cfg = kafka::config("panic");
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(8, 10, 2);
    sink.write(sent.clone()).await.unwrap();
    let stats = strand::metrics::ActorStats::get("kafka_consumer");
    let before = stats.restarts.load(Ordering::SeqCst);
    let store = Arc::new(RecordingSink::default());
    store.panic_once.store(true, Ordering::SeqCst);
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    wait::until(
        "every span after the restart",
        Duration::from_secs(60),
        async || store.distinct() == ids(&sent),
    )
    .await;
    assert!(store.panicked.load(Ordering::SeqCst));
    assert!(
        stats.restarts.load(Ordering::SeqCst) > before,
        "no restart recorded"
    );
    wait_all_committed(&cfg).await;
    stop(consumer).await;
}

/// A consumer stuck outside its group is rebuilt by the stall watchdog and
/// consumes everything once the group settles. The stuck group is real: a
/// member that took the partitions and then stopped polling keeps the next
/// rebalance waiting (up to its own `max.poll.interval.ms`).
#[actix_rt::test]
async fn consumer_stuck_outside_its_group_is_rebuilt_and_loses_nothing() {
    let cfg = KafkaConfig {
        stall_timeout_ms: 8_000,
        ..kafka::config("stall")
    };
    let sink = KafkaSink::connect(&cfg).await.expect("connect");
    let sent = spans(10, 10, 2);
    sink.write(sent.clone()).await.unwrap();

    let mut c = kafka::client(&cfg.brokers, &cfg.group_id);
    c.set("max.poll.interval.ms", "300000")
        .set("session.timeout.ms", "30000");
    let blocker: BaseConsumer = c.create().unwrap();
    blocker.subscribe(&[cfg.topic.as_str()]).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while blocker.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < end, "the blocking member never joined");
        blocker.poll(Duration::from_millis(100));
    }

    let store = Arc::new(RecordingSink::default());
    let consumer = start_kafka_consumers(&cfg, store.clone(), None).unwrap();
    wait::until(
        "a rebuild of the stuck consumer",
        Duration::from_secs(60),
        async || consumer.restarts() >= 1,
    )
    .await;
    assert!(
        store.spans.lock().is_empty(),
        "consumed while the group could not settle"
    );
    // Closing the blocker leaves the group; the rebalance completes.
    tokio::task::spawn_blocking(move || drop(blocker))
        .await
        .unwrap();
    wait::until(
        "every span once the group settled",
        Duration::from_secs(90),
        async || store.distinct() == ids(&sent),
    )
    .await;
    stop(consumer).await;
}
