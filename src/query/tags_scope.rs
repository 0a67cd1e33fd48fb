//! Which services a `q=` filter scopes autocomplete to, when the catalog
//! can answer it: an `&&` chain of conditions on `resource.service.name`
//! (`=` or `=~`) and `name` (`=` or `=~`). The services in scope are
//! those the service conditions allow that have, when a name condition is
//! given, a span name it allows. Values then come from those services'
//! own dictionaries (`TagCatalog::by_service`), which are per service,
//! not per span name: a name condition narrows the services only, so a
//! value of another span name of the same service is offered too (the
//! answer says so in a warning).

use std::collections::BTreeSet;

use super::traceql::{AttrScope, Field, Op, Query, Value};
use crate::model::catalog::{ServiceAttrs, TagCatalog};

/// The services a filter allows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub services: BTreeSet<String>,
    /// A span-name condition took part (values may over-include).
    pub by_name: bool,
}

/// Conditions on one field: an equality (two different ones allow
/// nothing) and any number of regexes, all of which must match.
#[derive(Default)]
struct Allowed<'a> {
    eq: Option<&'a str>,
    conflict: bool,
    regexes: Vec<&'a regex::Regex>,
    any: bool,
}

impl<'a> Allowed<'a> {
    fn allows(&self, v: &str) -> bool {
        !self.conflict
            && self.eq.is_none_or(|e| e == v)
            && self.regexes.iter().all(|r| r.is_match(v))
    }
}

/// The services `q` scopes to, or `None` if it has another kind of
/// condition (the sampling path answers those).
pub fn scope_of(q: &Query, cat: &TagCatalog) -> Option<Scope> {
    let mut service = Allowed::default();
    let mut name = Allowed::default();
    for c in q.and_chain()? {
        let slot = match &c.field {
            Field::Attr(AttrScope::Resource | AttrScope::Any, k) if k == "service.name" => {
                &mut service
            }
            Field::Name => &mut name,
            _ => return None,
        };
        slot.any = true;
        match (&c.op, &c.value) {
            (Op::Eq, Value::Str(v)) => {
                slot.conflict |= slot.eq.is_some_and(|old| old != v);
                slot.eq = Some(v);
            }
            (Op::Re, Value::Regex(p)) => slot.regexes.push(&p.regex),
            _ => return None,
        }
    }
    let services = cat
        .services
        .iter()
        .filter(|(svc, names)| {
            service.allows(svc) && (!name.any || names.values.keys().any(|n| name.allows(n)))
        })
        .map(|(svc, _)| svc.clone())
        .collect();
    Some(Scope {
        services,
        by_name: name.any,
    })
}

/// The union of the own keys and values of the services in `scope`.
pub fn scoped_attrs(cat: &TagCatalog, scope: &Scope) -> ServiceAttrs {
    let mut out = ServiceAttrs::default();
    for svc in &scope.services {
        cat.by_service.add_service_to(svc, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::TY_STRING;
    use crate::query::traceql;

    fn catalog() -> TagCatalog {
        let mut c = TagCatalog::default();
        c.add_operation("front", "GET /");
        c.add_operation("back", "query");
        c.add_operation("back", "GET /");
        c.add_operation("batch", "run");
        for (svc, route) in [("front", "/"), ("back", "/q"), ("batch", "/run")] {
            let a = c.by_service.own_mut().entry(svc.into()).or_default();
            a.span
                .entry("route".into())
                .or_default()
                .add(route, TY_STRING, 10);
        }
        c
    }

    fn scope(q: &str) -> Option<Vec<String>> {
        let q = traceql::parse(q).unwrap();
        scope_of(&q, &catalog()).map(|s| s.services.into_iter().collect())
    }

    #[test]
    fn service_and_name_conditions_scope_services() {
        assert_eq!(
            scope(r#"{ resource.service.name = "back" }"#).unwrap(),
            ["back"]
        );
        assert_eq!(scope(r#"{ name = "query" }"#).unwrap(), ["back"]);
        assert_eq!(scope(r#"{ name = "GET /" }"#).unwrap(), ["back", "front"]);
        assert_eq!(
            scope(r#"{ resource.service.name =~ "ba.*" && name = "run" }"#).unwrap(),
            ["batch"]
        );
        assert_eq!(
            scope(r#"{ .service.name =~ "b.*" }"#).unwrap(),
            ["back", "batch"]
        );
        let none = scope(r#"{ resource.service.name = "a" && resource.service.name = "b" }"#);
        assert_eq!(none.unwrap(), Vec::<String>::new(), "two services: none");
        assert!(
            scope(r#"{ span.code = 200 }"#).is_none(),
            "other filters sample"
        );
        assert!(scope(r#"{ resource.service.name != "a" }"#).is_none());
        assert!(scope(r#"{ resource.service.name = "a" || name = "b" }"#).is_none());
    }

    #[test]
    fn scoped_attrs_are_the_union_of_the_services() {
        let c = catalog();
        let q = traceql::parse(r#"{ resource.service.name =~ "ba.*" }"#).unwrap();
        let s = scope_of(&q, &c).unwrap();
        assert!(!s.by_name);
        let a = scoped_attrs(&c, &s);
        let got: Vec<&String> = a.span["route"].values.keys().collect();
        assert_eq!(got, ["/q", "/run"], "front's route is not in scope");
    }
}
