//! Walking JSON for the PII step: visiting every string and every object key (of content and
//! metadata alike) with its path, and rebuilding a value with transformed strings and keys. Paths name positions
//! only; a key that holds PII is named by its index, never its text.

use serde_json::Value;

/// One step of a JSON path: an object key, a key withheld because it holds PII (its
/// index in the object), or an array index.
#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    HiddenKey(usize),
    Index(usize),
}

/// The JSON path of a string being visited (`$.a.b[2]`), kept as steps and rendered only
/// when a message needs it, instead of one formatted string per value visited.
pub(crate) struct JsonPath<'a> {
    root: &'static str,
    steps: Vec<Step<'a>>,
}

impl<'a> JsonPath<'a> {
    fn new(root: &'static str) -> Self {
        JsonPath {
            root,
            steps: Vec::new(),
        }
    }
}

impl std::fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.root)?;
        for step in &self.steps {
            match step {
                Step::Key(k) => write!(f, ".{k}")?,
                Step::HiddenKey(i) => write!(f, ".{{key {i}}}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// The position of an object key itself: `metadata.a{key 2}` is the third key of `a`.
pub(crate) struct KeyAt<'p, 'a>(&'p JsonPath<'a>, usize);

impl std::fmt::Display for KeyAt<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{{key {}}}", self.0, self.1)
    }
}

/// Calls `f` with the JSON path and text of every string in `value`, depth first, and with
/// every object key, just before the key's value.
/// `f` returns whether the text held PII; such a key is withheld from the paths below it.
pub(crate) fn visit_keyed(
    value: &Value,
    root: &'static str,
    f: &mut dyn FnMut(&dyn std::fmt::Display, &str) -> bool,
) {
    fn go<'v>(
        value: &'v Value,
        path: &mut JsonPath<'v>,
        f: &mut dyn FnMut(&dyn std::fmt::Display, &str) -> bool,
    ) {
        match value {
            Value::String(s) => {
                f(path, s);
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.steps.push(Step::Index(i));
                    go(v, path, f);
                    path.steps.pop();
                }
            }
            Value::Object(map) => {
                for (i, (k, v)) in map.iter().enumerate() {
                    let hit = f(&KeyAt(path, i), k);
                    path.steps.push(if hit {
                        Step::HiddenKey(i)
                    } else {
                        Step::Key(k)
                    });
                    go(v, path, f);
                    path.steps.pop();
                }
            }
            _ => {}
        }
    }
    go(value, &mut JsonPath::new(root), f)
}

/// Rebuilds `value`, calling `f` on every key and string in [`visit_keyed`] order; `f` may
/// replace each (`Some`). Replaced keys that collide (with each other or a kept key) get
/// ` (2)`, ` (3)`, ... suffixes, in key order, so the result is deterministic.
pub(crate) fn rebuild_keyed(value: Value, f: &mut dyn FnMut(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(f(&s).unwrap_or(s)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| rebuild_keyed(v, f)).collect())
        }
        Value::Object(map) => {
            let mut kept = serde_json::Map::new();
            let mut renamed = Vec::new();
            for (k, v) in map {
                let new_key = f(&k);
                let v = rebuild_keyed(v, f);
                match new_key {
                    Some(new_key) => renamed.push((new_key, v)),
                    None => {
                        kept.insert(k, v);
                    }
                }
            }
            for (k, v) in renamed {
                let k = unique_key(&kept, k);
                kept.insert(k, v);
            }
            Value::Object(kept)
        }
        other => other,
    }
}

/// `key`, or the first of `key (2)`, `key (3)`, ... that `map` does not hold yet.
pub(crate) fn unique_key(map: &serde_json::Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2u64..)
        .map(|n| format!("{key} ({n})"))
        .find(|k| !map.contains_key(k))
        .expect("some suffix is free")
}
