use super::*;
use crate::strategies::model::StrategyType;

/// Jaeger's documented example file, in its own words.
const JAEGER_EXAMPLE: &str = r#"{
  "service_strategies": [
    {
      "service": "foo",
      "type": "probabilistic",
      "param": 0.8,
      "operation_strategies": [
        { "operation": "op1", "type": "probabilistic", "param": 0.2 },
        { "operation": "op2", "type": "probabilistic", "param": 0.4 }
      ]
    },
    { "service": "bar", "type": "ratelimiting", "param": 5 }
  ],
  "default_strategy": {
    "type": "probabilistic",
    "param": 0.5,
    "operation_strategies": [
      { "operation": "/health", "type": "probabilistic", "param": 0.0 }
    ]
  }
}"#;

#[test]
fn jaeger_example_file_parses_into_answers() {
    let s = Strategies::parse(JAEGER_EXAMPLE).unwrap();
    let foo = s.for_service("foo");
    assert_eq!(foo.strategy_type, StrategyType::Probabilistic);
    assert_eq!(foo.probabilistic_sampling.unwrap().sampling_rate, 0.8);
    let ops = foo.operation_sampling.as_ref().unwrap();
    assert_eq!(ops.default_sampling_probability, 0.8);
    let rates: Vec<(&str, f64)> = ops
        .per_operation_strategies
        .iter()
        .map(|o| (o.operation.as_str(), o.probabilistic_sampling.sampling_rate))
        .collect();
    assert_eq!(rates, vec![("op1", 0.2), ("op2", 0.4)]);
    let bar = s.for_service("bar");
    assert_eq!(bar.strategy_type, StrategyType::RateLimiting);
    assert_eq!(bar.rate_limiting_sampling.unwrap().max_traces_per_second, 5);
    // bar has no operations of its own: it inherits the default's.
    assert_eq!(
        bar.operation_sampling
            .as_ref()
            .unwrap()
            .per_operation_strategies[0]
            .operation,
        "/health"
    );
    let other = s.for_service("unknown");
    assert_eq!(other.default_probability(), 0.5);
}

#[test]
fn answers_have_the_proto_json_shape() {
    let s = Strategies::parse(JAEGER_EXAMPLE).unwrap();
    let v = serde_json::to_value(s.for_service("foo")).unwrap();
    assert_eq!(v["strategyType"], "PROBABILISTIC");
    assert_eq!(v["probabilisticSampling"]["samplingRate"], 0.8);
    let o = &v["operationSampling"];
    for key in [
        "defaultSamplingProbability",
        "defaultLowerBoundTracesPerSecond",
        "perOperationStrategies",
        "defaultUpperBoundTracesPerSecond",
    ] {
        assert!(o.get(key).is_some(), "{key} missing: {o}");
    }
    assert_eq!(
        o["perOperationStrategies"][1]["probabilisticSampling"]["samplingRate"],
        0.4
    );
    let v = serde_json::to_value(s.for_service("bar")).unwrap();
    assert_eq!(v["strategyType"], "RATE_LIMITING");
    assert_eq!(v["rateLimitingSampling"]["maxTracesPerSecond"], 5);
    assert!(v.get("probabilisticSampling").is_none());
}

#[test]
fn malformed_files_name_the_line_or_the_entry() {
    let e = Strategies::parse("{\n  \"default_strategy\": {\n    \"type\": \"probabilistic\",\n    \"param\": 0.5,,\n  }\n}")
        .unwrap_err();
    assert!(e.starts_with("line 4, column"), "{e}");
    let e = Strategies::parse(
        r#"{"service_strategies":[{"service":"a","type":"probabilistic","param":2}]}"#,
    )
    .unwrap_err();
    assert!(
        e.contains("service_strategies[0].param") && e.contains("not a probability"),
        "{e}"
    );
    let e =
        Strategies::parse(r#"{"default_strategy":{"type":"sometimes","param":1}}"#).unwrap_err();
    assert!(e.contains("line 1") && e.contains("sometimes"), "{e}");
    let e =
        Strategies::parse(r#"{"default_strategy":{"type":"probabilistic","param":1,"extra":1}}"#)
            .unwrap_err();
    assert!(e.contains("extra"), "unknown keys are errors: {e}");
    let dup = r#"{"service_strategies":[{"service":"a","type":"probabilistic","param":1},{"service":"a","type":"probabilistic","param":1}]}"#;
    assert!(Strategies::parse(dup).unwrap_err().contains("twice"));
    // No default: Jaeger's 0.001.
    let s = Strategies::parse("{}").unwrap();
    assert_eq!(s.default.default_probability(), JAEGER_DEFAULT_PROBABILITY);
}

#[test]
fn a_bad_reload_keeps_the_previous_strategies_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strategies.json");
    std::fs::write(
        &path,
        r#"{"default_strategy":{"type":"probabilistic","param":0.25}}"#,
    )
    .unwrap();
    let store = Store::build(&SamplingConfig::default(), Some(path.clone()), None).unwrap();
    assert_eq!(store.response("x").default_probability(), 0.25);
    assert_eq!(store.reload_if_changed(), Ok(false), "unchanged");
    std::fs::write(
        &path,
        "{\n\"default_strategy\": {\"type\": \"probabilistic\" \"param\": 0.5}}",
    )
    .unwrap();
    let e = store.reload_if_changed().unwrap_err();
    assert!(e.contains("line 2"), "{e}");
    assert_eq!(store.last_error().as_deref(), Some(e.as_str()));
    assert_eq!(
        store.response("x").default_probability(),
        0.25,
        "previous in force"
    );
    std::fs::write(
        &path,
        r#"{"default_strategy":{"type":"probabilistic","param":0.75}}"#,
    )
    .unwrap();
    assert_eq!(store.reload_if_changed(), Ok(true));
    assert_eq!(store.response("x").default_probability(), 0.75);
    assert!(store.last_error().is_none());
    // A malformed file at start-up fails it, naming key, file and line.
    std::fs::write(&path, "{\n\n oops").unwrap();
    let e = Store::build(&SamplingConfig::default(), Some(path), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("sampling.remote.strategies_file") && e.contains("line 3"),
        "{e}"
    );
}

#[test]
fn config_rules_and_adaptive_probabilities_become_per_operation_answers() {
    use crate::config::SamplingRule;
    let cfg = SamplingConfig {
        ratio: 0.5,
        rules: vec![SamplingRule {
            service: "shop".into(),
            operation: "GET /health".into(),
            ratio: 0.0,
        }],
        ..Default::default()
    };
    let table = Arc::new(Probabilities::default());
    table.replace(
        [
            (("shop".to_string(), "checkout".to_string()), 0.125),
            (("other".to_string(), "x".to_string()), 0.5),
        ]
        .into(),
    );
    let store = Store::build(&cfg, None, Some((table, 0.2))).unwrap();
    let r = store.response("shop");
    let o = r.operation_sampling.unwrap();
    assert_eq!(o.default_sampling_probability, 0.5);
    assert_eq!(o.default_lower_bound_traces_per_second, 0.2);
    let ops: Vec<(String, f64)> = o
        .per_operation_strategies
        .into_iter()
        .map(|s| (s.operation, s.probabilistic_sampling.sampling_rate))
        .collect();
    assert_eq!(
        ops,
        vec![("GET /health".into(), 0.0), ("checkout".into(), 0.125)]
    );
    assert!(store.response("nobody").operation_sampling.is_none());
}
