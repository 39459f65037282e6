//! The console's pages and forms in the authorization matrix: each row with a `console`
//! column is tried as every caller of a world, on the page or form the console offers for
//! it, and must answer as the row says (a page or form allowed: `2xx` or its redirect; refused:
//! `403`; no credential: sent to sign-in).

use std::collections::HashMap;

use super::*;

/// The values of a route template's `{params}` in a concrete path (and an `org=` query).
fn params(template: &str, concrete: &str) -> HashMap<String, String> {
    let (path, query) = concrete.split_once('?').unwrap_or((concrete, ""));
    let template = template.split('?').next().unwrap();
    let mut out = HashMap::new();
    for (t, c) in template.split('/').zip(path.split('/')) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            out.insert(name.to_string(), c.to_string());
        }
    }
    for pair in query.split('&') {
        if let Some(("org", v)) = pair.split_once('=') {
            out.insert("org".into(), v.to_string());
        }
    }
    out
}

/// The console's concrete path for `rule`, from the API request built for the same cell.
fn console_path(rule: &Rule, api_path: &str) -> String {
    let values = params(rule.route.unwrap().1, api_path);
    let mut path = rule.console.unwrap().1.to_string();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    assert!(
        !path.contains('{'),
        "{path}: a parameter the API path does not name"
    );
    path
}

/// A JSON body's top-level scalars as form fields (a list of strings, as the bulk erasure's
/// subjects, one per line).
fn form_of(body: &Body) -> Vec<(String, String)> {
    let Body::Json(Value::Object(fields)) = body else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            Value::Array(items) => Some((
                k.clone(),
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
            _ => None,
        })
        .collect()
}

/// One console cell: `rule`'s page or form as principal `i` of `w`; the disagreement, if any.
async fn console_cell(
    s: &Server,
    w: &World,
    rule: &Rule,
    category: Option<&str>,
    i: usize,
) -> Option<String> {
    let who = &w.principals[i];
    let checked = checked_categories(s, rule, category);
    let want = if who.subject {
        Err("unauthenticated")
    } else {
        expected(rule, who, &checked, true)
    };
    let (_, api_path, body) = request(s, w, rule.op, who, category.unwrap_or("")).await;
    let (method, _) = rule.console.unwrap();
    let path = console_path(rule, &api_path);
    let mut req = no_redirect().request(method.parse().unwrap(), format!("{}{path}", s.base));
    if who.subject {
        req = req.header("cookie", format!("custos_privacy={}", who.token));
    } else {
        req = req.bearer_auth(&who.token);
    }
    if let Some((_, grant)) = &who.grant {
        req = req.header("x-custos-grant", grant);
    }
    if method == "POST" {
        req = req.form(&form_of(&body));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let text = r.text().await.unwrap_or_default();
    let agrees = match want {
        Ok(()) => {
            status.is_success()
                || (method == "POST" && status == StatusCode::SEE_OTHER)
                || allowed_refusal(rule.op, who, status)
        }
        Err("unauthenticated") if method == "GET" => {
            status == StatusCode::SEE_OTHER
                && location.is_some_and(|l| l.starts_with("/console/login"))
        }
        Err("unauthenticated") => status == StatusCode::UNAUTHORIZED,
        Err(_) => status == StatusCode::FORBIDDEN,
    };
    (!agrees).then(|| {
        let snippet: String = text.chars().take(300).collect();
        format!(
            "console {} on {category:?} as {}: expected {want:?}, got {status} {snippet}",
            rule.action, who.label
        )
    })
}

#[tokio::test]
async fn every_console_cell_answers_as_the_table_says() {
    let s = server().await;
    let mut cells = 0;
    let mut failures = Vec::new();
    for rule in TABLE.iter().filter(|r| r.console.is_some()) {
        for category in rule_categories(rule) {
            let w = world(&s).await;
            for i in 0..PRINCIPALS {
                cells += 1;
                failures.extend(console_cell(&s, &w, rule, category, i).await);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} console cells disagree with the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 500, "only {cells} console cells ran");
    eprintln!("{cells} console cells agree with the table");
}

#[tokio::test]
async fn console_pages_send_a_browser_without_a_session_to_sign_in() {
    let s = server().await;
    for rule in TABLE.iter().filter(|r| r.console.is_some()) {
        let (method, path) = rule.console.unwrap();
        let concrete = path
            .replace("{org}", "01a21e0d-61f6-7419-9e7a-d7805e663ac3")
            .replace("{id}", "01a21e0d-61f6-7419-9e7a-d7805e663ac4")
            .replace("{category}", "messages");
        let r = no_redirect()
            .request(method.parse().unwrap(), format!("{}{concrete}", s.base))
            .send()
            .await
            .unwrap();
        if method == "GET" {
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{method} {path}");
            let to = r.headers()["location"].to_str().unwrap();
            assert!(to.starts_with("/console/login?return_to=/console/"), "{to}");
        } else {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
}
