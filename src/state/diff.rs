//! Structural JSON diff between two versions (API §4 "Diff"): objects are compared
//! member by member (names ascending, depth first); any other pair is compared whole,
//! numbers numerically. Paths are RFC 6901 JSON Pointers.

use serde::Serialize;
use serde_json::Value;

/// One difference, turning the old document into the new one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffEntry {
    pub operation: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_value: Option<Value>,
}

/// The differences that turn `a` into `b`.
pub fn diff(a: &Value, b: &Value) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk(a, b, &mut String::new(), &mut out);
    out
}

fn walk(a: &Value, b: &Value, path: &mut String, out: &mut Vec<DiffEntry>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let mut names: Vec<&String> = ma.keys().chain(mb.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let len = path.len();
                path.push('/');
                path.push_str(&name.replace('~', "~0").replace('/', "~1"));
                match (ma.get(name), mb.get(name)) {
                    (Some(va), Some(vb)) => walk(va, vb, path, out),
                    (Some(va), None) => out.push(DiffEntry {
                        operation: "remove",
                        path: path.clone(),
                        old_value: Some(va.clone()),
                        new_value: None,
                    }),
                    (None, Some(vb)) => out.push(DiffEntry {
                        operation: "add",
                        path: path.clone(),
                        old_value: None,
                        new_value: Some(vb.clone()),
                    }),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        _ if json_equal(a, b) => {}
        _ => out.push(DiffEntry {
            operation: "replace",
            path: path.clone(),
            old_value: Some(a.clone()),
            new_value: Some(b.clone()),
        }),
    }
}

/// Deep equality with numbers compared by value (`1 == 1.0`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contract_example() {
        let a = json!({"version": "1.0", "city": "London"});
        let b = json!({"version": "3.0", "country": "UK"});
        let got = serde_json::to_value(diff(&a, &b)).unwrap();
        assert_eq!(
            got,
            json!([
                {"operation": "remove", "path": "/city", "old_value": "London"},
                {"operation": "add", "path": "/country", "new_value": "UK"},
                {"operation": "replace", "path": "/version", "old_value": "1.0", "new_value": "3.0"}
            ])
        );
    }

    #[test]
    fn direction_matters() {
        let a = json!({"x": 1});
        let b = json!({});
        assert_eq!(diff(&a, &b)[0].operation, "remove");
        assert_eq!(diff(&b, &a)[0].operation, "add");
    }

    #[test]
    fn table() {
        let cases: Vec<(Value, Value, Value)> = vec![
            (json!({"a": 1}), json!({"a": 1.0}), json!([])),
            (json!([1, 2]), json!([1, 2]), json!([])),
            (
                json!([1, 2]),
                json!([2, 1]),
                json!([{"operation": "replace", "path": "", "old_value": [1, 2], "new_value": [2, 1]}]),
            ),
            (
                json!({"db": {"host": "a", "port": 1}}),
                json!({"db": {"host": "b", "port": 1}}),
                json!([{"operation": "replace", "path": "/db/host", "old_value": "a", "new_value": "b"}]),
            ),
            (
                json!({"a/b": 1, "m~n": 1}),
                json!({"a/b": 2, "m~n": 2}),
                json!([
                    {"operation": "replace", "path": "/a~1b", "old_value": 1, "new_value": 2},
                    {"operation": "replace", "path": "/m~0n", "old_value": 1, "new_value": 2}
                ]),
            ),
            (
                json!({"a": null}),
                json!({"a": {"b": 1}}),
                json!([{"operation": "replace", "path": "/a", "old_value": null, "new_value": {"b": 1}}]),
            ),
            (
                json!("x"),
                json!({"x": 1}),
                json!([{"operation": "replace", "path": "", "old_value": "x", "new_value": {"x": 1}}]),
            ),
            (json!({"same": true}), json!({"same": true}), json!([])),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                serde_json::to_value(diff(&a, &b)).unwrap(),
                want,
                "{a} -> {b}"
            );
        }
    }
}
