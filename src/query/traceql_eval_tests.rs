use super::super::testutil::span;
use super::super::traceql::parse;
use super::*;
use crate::model::SpanKind;

fn p(s: &str) -> Query {
    parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn sample() -> Span {
    let mut s = span(1, 1, None, "front", "GET /", 0, 2_000_000);
    s.kind = SpanKind::Server;
    s.status.code = StatusCode::Error;
    s.attributes = vec![
        KeyValue::new("code", AttrValue::Int(503)),
        KeyValue::new("r", AttrValue::Double(0.25)),
        KeyValue::new("s", AttrValue::Str("200".into())),
        KeyValue::new("method", AttrValue::Str("GET".into())),
        KeyValue::new("hit", AttrValue::Bool(true)),
        KeyValue::new("foo bar", AttrValue::Str("q".into())),
        KeyValue::new("arr", AttrValue::Array(vec![AttrValue::Str("a".into())])),
    ];
    s
}

const CTX: TraceCtx<'static> = TraceCtx {
    root_service: "front",
    root_name: "GET /",
    duration_ns: 5_000_000,
};

#[test]
fn evaluates_conditions_on_one_span() {
    let s = sample();
    let yes = |q: &str| p(q).matches(&s, &CTX);
    for q in [
        r#"{ resource.service.name = "front" && span.code >= 500 && .r < 0.5 && status = error && kind = server }"#,
        "{ duration >= 2ms && duration < 3ms && traceDuration > 4ms }",
        r#"{ span.code > 500.5 && name != "x" && rootName = "GET /" }"#,
        r#"{ .service.name = "front" }"#,
        r#"{ span.method =~ "GET|POST" && name =~ "GET.*" && rootServiceName !~ "back.*" }"#,
        r#"{ resource.service.name =~ "a|front" }"#,
        r#"{ span.s >= "100" && span.s < "3" }"#,
        r#"{ span.code != 200 && span.code <= maxInt }"#,
        "{ span.hit && span.hit = true }",
        "{ span.missing = nil && span.code != nil }",
        r#"{ span."foo bar" = "q" }"#,
        r#"{ span.nope = 1 || span.code = 503 }"#,
        r#"{ (span.code = 1 || span.code = 503) && status = error }"#,
        "{ true }",
        "{}",
    ] {
        assert!(yes(q), "{q}");
    }
    for (q, why) in [
        (
            "{ resource.code = 503 }",
            "span attribute is not a resource one",
        ),
        ("{ span.s = 200 }", "types must agree"),
        ("{ span.missing != 1 }", "a missing attribute never matches"),
        (
            r#"{ span.missing !~ "x" }"#,
            "a missing attribute never matches",
        ),
        ("{ status != error }", "status"),
        (r#"{ span.method =~ "GE" }"#, "anchored at the end"),
        (r#"{ span.method =~ "ET" }"#, "anchored at the start"),
        (r#"{ span.method !~ "G.*" }"#, "negated regex"),
        (r#"{ span.code =~ "503" }"#, "regexes match strings only"),
        (r#"{ span.arr = "a" }"#, "arrays compare with nothing"),
        ("{ span.code = nil }", "present is not nil"),
        (
            "{ span.code = 1 && span.code = 503 || span.code = 2 }",
            "precedence",
        ),
        ("{ false }", "false"),
    ] {
        assert!(!yes(q), "{q}: {why}");
    }
}

#[test]
fn spansets_combine_over_the_trace() {
    let root = span(1, 1, None, "front", "GET /", 0, 10);
    let db = span(1, 2, Some(1), "db", "query", 1, 5);
    let other = span(1, 3, Some(1), "cache", "get", 2, 1);
    let trace = vec![root, db, other];
    let names = |q: &str| {
        p(q).matched(&trace, &CTX)
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
    };
    let svc = |s: &str| format!(r#"{{ resource.service.name = "{s}" }}"#);
    assert_eq!(
        names(&format!("{} && {}", svc("front"), svc("db"))),
        vec!["GET /", "query"]
    );
    assert!(names(&format!("{} && {}", svc("front"), svc("nope"))).is_empty());
    assert_eq!(
        names(&format!("{} || {}", svc("nope"), svc("db"))),
        vec!["query"]
    );
    assert_eq!(
        names(&format!("{} || {}", svc("cache"), svc("db"))),
        vec!["query", "get"]
    );
    assert_eq!(
        names(&format!(
            "({} || {}) && {}",
            svc("nope"),
            svc("db"),
            svc("cache")
        )),
        vec!["query", "get"]
    );
    assert!(names(&format!(
        "{} && ({} || {})",
        svc("nope"),
        svc("db"),
        svc("cache")
    ))
    .is_empty());
    // Per span, `matches` is "in one of the spansets".
    let q = p(&format!("{} && {}", svc("front"), svc("nope")));
    assert!(q.matches(&trace[0], &CTX));
    assert!(!q.matches(&trace[1], &CTX));
}

#[test]
fn narrowing_uses_only_required_conditions() {
    let q = p(
        r#"{ resource.service.name = "front" && name = "GET /" && kind = server && status = error && duration > 1ms && duration <= 5ms && span.code = 503 && .r = 0.25 && span.code != 1 && span.method =~ "G.*" }"#,
    );
    let mut sq = SearchQuery::default();
    q.narrow(&mut sq);
    assert_eq!(sq.service.as_deref(), Some("front"));
    assert_eq!(sq.operation.as_deref(), Some("GET /"));
    assert_eq!(sq.span_kind, Some(SpanKind::Server));
    assert_eq!(
        (sq.min_duration_ns, sq.max_duration_ns),
        (Some(1_000_001), Some(5_000_000))
    );
    assert_eq!(
        sq.tags,
        vec![
            ("otel.status_code".into(), "ERROR".into()),
            ("code".into(), "503".into())
        ]
    );
    let s = sample();
    assert!(q.matches(&s, &TraceCtx::default()));
    assert!(sq.matches(&s));

    // Disjunctions and spanset combinations narrow on nothing they
    // cannot require.
    for (text, service) in [
        (
            r#"{ resource.service.name = "a" || resource.service.name = "b" }"#,
            None,
        ),
        (
            r#"{ (resource.service.name = "a" || name = "x") && kind = server }"#,
            None,
        ),
        (
            r#"{ resource.service.name = "a" } && { resource.service.name = "b" }"#,
            None,
        ),
        (r#"{ resource.service.name = "a" } || { name = "x" }"#, None),
        (r#"{ resource.service.name =~ "a|b" }"#, None),
        (
            r#"{ resource.service.name = "a" && (name = "x" || name = "y") }"#,
            Some("a"),
        ),
    ] {
        let mut sq = SearchQuery::default();
        p(text).narrow(&mut sq);
        assert_eq!(sq.service.as_deref(), service, "{text}");
        assert_eq!(sq.operation, None, "{text}");
    }
    let mut sq = SearchQuery::default();
    p(r#"{ (resource.service.name = "a" || name = "x") && kind = server }"#).narrow(&mut sq);
    assert_eq!(sq.span_kind, Some(SpanKind::Server));
}

#[test]
fn attribute_fields_cover_conditions_and_select() {
    let q = p(r#"{ span.a = 1 || resource.b = 2 } && { .c = 3 } | select(span.a, span.d, status)"#);
    assert_eq!(
        q.attribute_fields(),
        vec![
            (AttrScope::Span, "a".to_string()),
            (AttrScope::Resource, "b".to_string()),
            (AttrScope::Any, "c".to_string()),
            (AttrScope::Span, "d".to_string()),
        ]
    );
    let s = sample();
    let shown: Vec<KeyValue> = q
        .selected_intrinsics()
        .filter_map(|f| intrinsic_attr(f, &s, &CTX))
        .collect();
    assert_eq!(
        shown,
        vec![KeyValue::new("status", AttrValue::Str("error".into()))]
    );
    assert_eq!(
        intrinsic_attr(&Field::Kind, &s, &CTX).unwrap().value,
        AttrValue::Str("server".into())
    );
}

/// Spans the superset property is checked on: varied services, names,
/// kinds, statuses, durations and attributes.
fn population() -> Vec<Span> {
    let mut out = Vec::new();
    for (i, (svc, name)) in [
        ("front", "GET /"),
        ("db", "query"),
        ("front", "x"),
        ("db", "GET /"),
    ]
    .iter()
    .enumerate()
    {
        for variant in 0..4u8 {
            let mut s = span(
                1,
                variant + 1,
                None,
                svc,
                name,
                0,
                (i as u64 + 1) * 1_000_000,
            );
            s.kind = if variant % 2 == 0 {
                SpanKind::Server
            } else {
                SpanKind::Client
            };
            s.status.code = if variant < 2 {
                StatusCode::Error
            } else {
                StatusCode::Ok
            };
            if variant % 3 == 0 {
                s.attributes
                    .push(KeyValue::new("code", AttrValue::Int(503)));
            }
            if variant % 2 == 1 {
                s.attributes
                    .push(KeyValue::new("m", AttrValue::Str("GET".into())));
            }
            out.push(s);
        }
    }
    out
}

const ATOMS: [&str; 12] = [
    r#"resource.service.name = "front""#,
    r#"resource.service.name =~ "d.*""#,
    r#"name = "GET /""#,
    "kind = server",
    "status = error",
    "duration > 1ms",
    "duration <= 3ms",
    "span.code = 503",
    r#".m = "GET""#,
    "span.code != 503",
    "span.m = nil",
    "true",
];

fn expr_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let atom = proptest::sample::select(ATOMS.to_vec()).prop_map(str::to_string);
    atom.prop_recursive(3, 12, 2, |inner| {
        (inner.clone(), inner, any::<u8>()).prop_map(|(a, b, k)| match k % 3 {
            0 => format!("{a} && {b}"),
            1 => format!("{a} || {b}"),
            _ => format!("({a} || {b}) && {a}"),
        })
    })
}

proptest::proptest! {
    /// Every span the query matches also passes the narrowed store query.
    #[test]
    fn narrowing_is_a_superset(e in expr_text()) {
        let q = p(&format!("{{ {e} }}"));
        let mut sq = SearchQuery::default();
        q.narrow(&mut sq);
        for s in population() {
            if q.matches(&s, &CTX) {
                proptest::prop_assert!(sq.matches(&s), "{e}: {sq:?} drops {}", s.name);
            }
        }
    }
}
