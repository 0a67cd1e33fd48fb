use super::*;
use crate::model::{SpanKind, StatusCode};

fn p(s: &str) -> Query {
    parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn c(field: Field, op: Op, value: Value) -> Expr {
    Expr::Cond(Cond { field, op, value })
}

fn attr(scope: AttrScope, k: &str) -> Field {
    Field::Attr(scope, k.into())
}

fn filter(e: Expr) -> Spansets {
    Spansets::Filter(e)
}

fn only(s: &str) -> Expr {
    match p(s).spansets {
        Spansets::Filter(e) => e,
        other => panic!("{s}: not one spanset: {other:?}"),
    }
}

fn re(src: &str) -> Value {
    match only(&format!("{{ .x =~ {src:?} }}")) {
        Expr::Cond(Cond { value, .. }) => value,
        e => panic!("{e:?}"),
    }
}

#[test]
fn parses_conditions_to_typed_values() {
    use AttrScope::*;
    let svc = || attr(Resource, "service.name");
    let table: Vec<(&str, Expr)> = vec![
        ("{}", Expr::Const(true)),
        ("{ true }", Expr::Const(true)),
        ("{ false }", Expr::Const(false)),
        (
            r#"{ resource.service.name = "front" }"#,
            c(svc(), Op::Eq, Value::Str("front".into())),
        ),
        (
            "{ span.http.status_code >= 500 }",
            c(attr(Span, "http.status_code"), Op::Ge, Value::Int(500)),
        ),
        (
            "{ .ratio < 0.5 }",
            c(attr(Any, "ratio"), Op::Lt, Value::Float(0.5)),
        ),
        ("{ .n = -3 }", c(attr(Any, "n"), Op::Eq, Value::Int(-3))),
        (
            "{ .n > -2.5 }",
            c(attr(Any, "n"), Op::Gt, Value::Float(-2.5)),
        ),
        (
            "{ span.ok = false }",
            c(attr(Span, "ok"), Op::Eq, Value::Bool(false)),
        ),
        (
            "{ span.cache.hit }",
            c(attr(Span, "cache.hit"), Op::Eq, Value::Bool(true)),
        ),
        ("{ span.x != nil }", c(attr(Span, "x"), Op::Ne, Value::Nil)),
        (
            "{ span.x = minInt }",
            c(attr(Span, "x"), Op::Eq, Value::Int(i64::MIN)),
        ),
        (
            r#"{ span."foo bar" = "v" }"#,
            c(attr(Span, "foo bar"), Op::Eq, Value::Str("v".into())),
        ),
        (
            r#"{ status = error }"#,
            c(Field::Status, Op::Eq, Value::Status(StatusCode::Error)),
        ),
        (
            "{ span:kind != server }",
            c(Field::Kind, Op::Ne, Value::Kind(SpanKind::Server)),
        ),
        (
            "{ duration > 1.5s }",
            c(Field::Duration, Op::Gt, Value::Duration(1_500_000_000)),
        ),
        (
            "{ trace:duration <= 2ms }",
            c(Field::TraceDuration, Op::Le, Value::Duration(2_000_000)),
        ),
        (
            r#"{ name >= "b" }"#,
            c(Field::Name, Op::Ge, Value::Str("b".into())),
        ),
        (
            "{span:name=`a\"b`}",
            c(Field::Name, Op::Eq, Value::Str("a\"b".into())),
        ),
        (
            r#"{ trace:rootService = "a" && rootName != "b" && statusMessage = "c" }"#,
            Expr::And(vec![
                c(Field::RootServiceName, Op::Eq, Value::Str("a".into())),
                c(Field::RootName, Op::Ne, Value::Str("b".into())),
                c(Field::StatusMessage, Op::Eq, Value::Str("c".into())),
            ]),
        ),
    ];
    for (q, want) in table {
        assert_eq!(only(q), want, "{q}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    use AttrScope::Span;
    let a = || c(attr(Span, "a"), Op::Eq, Value::Int(1));
    let b = || c(attr(Span, "b"), Op::Eq, Value::Int(2));
    let d = || c(attr(Span, "c"), Op::Eq, Value::Int(3));
    assert_eq!(
        only("{ span.a = 1 || span.b = 2 && span.c = 3 }"),
        Expr::Or(vec![a(), Expr::And(vec![b(), d()])])
    );
    assert_eq!(
        only("{ span.a = 1 && span.b = 2 || span.c = 3 }"),
        Expr::Or(vec![Expr::And(vec![a(), b()]), d()])
    );
    assert_eq!(
        only("{ (span.a = 1 || span.b = 2) && span.c = 3 }"),
        Expr::And(vec![Expr::Or(vec![a(), b()]), d()])
    );
    // What Grafana's builder writes for a multi-value select.
    assert_eq!(
        only(r#"{ (span.x = "a" || span.x = "b") }"#),
        Expr::Or(vec![
            c(attr(Span, "x"), Op::Eq, Value::Str("a".into())),
            c(attr(Span, "x"), Op::Eq, Value::Str("b".into())),
        ])
    );
}

#[test]
fn spansets_combine_with_and_or_and_parentheses() {
    let set = |k: &str| filter(c(attr(AttrScope::Span, k), Op::Eq, Value::Int(1)));
    let and = |a, b| Spansets::And(Box::new(a), Box::new(b));
    let or = |a, b| Spansets::Or(Box::new(a), Box::new(b));
    assert_eq!(
        p("{ span.a = 1 } && { span.b = 1 }").spansets,
        and(set("a"), set("b"))
    );
    assert_eq!(
        p("{ span.a = 1 } || { span.b = 1 } && { span.c = 1 }").spansets,
        or(set("a"), and(set("b"), set("c")))
    );
    assert_eq!(
        p("({ span.a = 1 } || { span.b = 1 }) && { span.c = 1 }").spansets,
        and(or(set("a"), set("b")), set("c"))
    );
}

#[test]
fn select_collects_fields_once() {
    let q = p("{ status = error } | select(span.http.method, resource.service.name, duration) | select(span.http.method)");
    assert_eq!(
        q.select,
        vec![
            attr(AttrScope::Span, "http.method"),
            attr(AttrScope::Resource, "service.name"),
            Field::Duration
        ]
    );
    assert!(p("{}").select.is_empty());
}

#[test]
fn regexes_are_anchored_and_bounded() {
    let Value::Regex(pat) = re("a|b") else {
        panic!()
    };
    assert_eq!(pat.source, "a|b");
    assert!(pat.regex.is_match("a") && pat.regex.is_match("b"));
    assert!(!pat.regex.is_match("ab") && !pat.regex.is_match("xa"));
    let Value::Regex(pat) = re("prod-.*") else {
        panic!()
    };
    assert!(pat.regex.is_match("prod-eu") && !pat.regex.is_match("preprod-eu"));
    for hostile in ["(a{1000}){1000}", r"\w{500}{500}", "(((a{100}){100}){100})"] {
        let e = parse(&format!("{{ .x =~ {hostile:?} }}")).unwrap_err();
        assert!(e.contains("regular expression"), "{hostile}: {e}");
    }
    let long = "a".repeat(MAX_REGEX_LEN + 1);
    assert!(parse(&format!("{{ .x =~ \"{long}\" }}"))
        .unwrap_err()
        .contains("too long"));
    assert!(parse(r#"{ .x =~ "(" }"#)
        .unwrap_err()
        .contains("bad regular"));
    assert!(parse(r#"{ status =~ "err.*" }"#).is_err());
    assert!(parse(r#"{ duration !~ "1" }"#).is_err());
}

#[test]
fn rejects_what_is_unsupported_naming_it() {
    for (q, part) in [
        ("{ .a = 1 } | count() > 2", "aggregate `count()`"),
        ("{ } | avg(duration) > 1s", "aggregate `avg()`"),
        ("count() > 2", "aggregate `count()`"),
        ("{ .a = 1 } | by(resource.service.name)", "grouping `by()`"),
        ("{ } | coalesce()", "`coalesce()`"),
        ("{ } | rate()", "metrics function `rate()`"),
        ("{ } | count_over_time() by (name)", "metrics function"),
        ("{ .a = 1 } >> { .b = 2 }", "structural operator `>>`"),
        ("{ .a = 1 } > { .b = 2 }", "structural operator `>`"),
        ("{ .a = 1 } < { .b = 2 }", "structural operator `<`"),
        ("{ .a = 1 } ~ { .b = 2 }", "structural operator `~`"),
        ("{ .a = 1 } !~ { .b = 2 }", "structural operator `!~`"),
        ("{ .a = 1 } &>> { .b = 2 }", "structural operator `&>>`"),
        ("{ .a = 1 } !< { .b = 2 }", "structural operator `!<`"),
        ("{ .a = 1 } | { .b = 2 }", "pipeline stages"),
        ("{ .a + 1 > 2 }", "arithmetic"),
        ("{ !(.a = 1) }", "negation"),
        ("{ .a = span.b }", "comparing two fields"),
        ("{ event:name = \"x\" }", "event:name"),
        ("{ event.x = 1 }", "`event.` attribute scope"),
        ("{ link.x = 1 }", "`link.` attribute scope"),
        ("{ span:id = \"x\" }", "span:id"),
        ("{} with (most_recent=true)", "query hints"),
    ] {
        let e = parse(q).unwrap_err();
        assert!(
            e.contains("unsupported TraceQL") && e.contains(part),
            "{q}: {e}"
        );
    }
}

#[test]
fn hostile_nesting_is_refused_not_overflowing_the_stack() {
    let deep = format!(
        "{{ {}span.a = 1{} }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(parse(&deep).unwrap_err().contains("too deeply"));
    let deep_sets = format!("{}{{}}{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse(&deep_sets).unwrap_err().contains("too deeply"));
    let ok = format!(
        "{{ {}span.a = 1{} }}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(parse(&ok).is_ok());
    let many = vec!["{}"; 10_000].join(" && ");
    assert!(parse(&many).unwrap_err().contains("too many spansets"));
    assert!(parse(&vec!["{}"; MAX_SPANSETS].join(" || ")).is_ok());
}

#[test]
fn parses_grafana_builder_output_without_spaces() {
    for q in [
        r#"{resource.service.name=~"a|b"&&name="x"&&span.http.status_code>=500&&duration>100ms}"#,
        r#"{status=error&&kind=server}"#,
        r#"{.foo="bar"}"#,
        r#"{(span.x="a"||span.x="b")}"#,
        r#"{span.http.route=~"/api/v1/\.+"}"#,
        r#"{resource.service.name="a"}|select(span.http.method,resource.service.name)"#,
    ] {
        p(q);
    }
}

#[test]
fn rejects_malformed_queries() {
    for q in [
        "",
        ".a = 1",
        "{ .a = 1",
        "{ .a = 1 }}",
        "{ foo = 1 }",
        "{ status = boom }",
        "{ status > error }",
        "{ duration > 5 }",
        "{ name = 1 }",
        "{ name }",
        "{ .a = }",
        "{ .a = \"x }",
        "{ kind > server }",
        "{ .b > true }",
        "{ duration = nil }",
        "{ (.a = 1 }",
        "{ .a = 1 && }",
        "{ 1 = .a }",
        "{ } | select()",
        "{ } | select(.a",
        "{ } | select(foo)",
        "{ } &&",
        "({ }",
        "{ span. = 1 }",
    ] {
        assert!(parse(q).is_err(), "{q}");
    }
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_traceql_like_input(
        s in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "(", ")", "&&", "||", "|", "!", "=", "!=", "=~", "!~", ">", ">=",
                "<", "<=", ">>", "~", ",", "\"", "\"a|b\"", "span.x", ".y", "resource.z",
                "status", "error", "duration", "100ms", "-1", "2.5", "true", "nil", "select",
                "count", "span.\"q", " ",
            ]),
            0..24,
        )
    ) {
        let _ = parse(&s.concat());
    }
}
