//! Zero retention, end to end: a real `custos serve` at log level `trace` takes PII-heavy LLM
//! calls (plain, streamed, tool calls, a blocked call, an upstream 500, an upstream timeout, a
//! caller that disconnects mid-stream); afterwards no PII value appears in any file under the
//! data directory, in the server's captured output, or in what the provider received.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use custos_llm_stand_in::start;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{cli, ADMIN};

const VALUES: &[&str] = &[
    "maria.gonzalez@example.com",
    "(415) 555-2671",
    "Maria Gonzalez",
    "536-90-4399",
    "4111 1111 1111 1111",
];

fn prompt() -> String {
    format!(
        "My name is {}, mail {} or call {}. SSN {}, card {}.",
        VALUES[2], VALUES[0], VALUES[1], VALUES[3], VALUES[4]
    )
}

/// The built-in policy with its providers pointed at the stand-in and a 2 s timeout.
fn config(dir: &Path, standin: &str, action: &str) -> PathBuf {
    let builtin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../custos-policy/default-policy.toml"
    ))
    .unwrap();
    let text = builtin
        .replace("https://api.openai.com", standin)
        .replace("https://api.anthropic.com", standin)
        .replace("timeout_seconds = 120", "timeout_seconds = 2")
        .replace(
            "\"person\"], action = \"tokenize\" }",
            &format!("\"person\"], action = \"{action}\" }}"),
        );
    assert!(text.contains("timeout_seconds = 2") && text.contains(standin));
    let path = dir.join(format!("custos-{action}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A `custos serve` at trace level whose stdout and stderr go to `log`.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(data: &Path, config: &Path, log: &Path) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::fs::File::create(log).unwrap();
    let child = cli(data)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CUSTOS_ADMIN_TOKEN", ADMIN)
        .env("CUSTOS_LOG", "trace")
        .env("OPENAI_API_KEY", "upstream-openai-key")
        .env("ANTHROPIC_API_KEY", "upstream-anthropic-key")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", served.base))
            .await
            .is_ok()
        {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("custos serve did not come up");
}

/// A member key of a new org, made by the org's first owner.
async fn member_key(c: &reqwest::Client, base: &str) -> String {
    let org: Value = c
        .post(format!("{base}/v1/orgs"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Acme", "owner": {"name": "Olive"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owner = org["owner"]["api_key"].as_str().unwrap();
    let org = org["id"].as_str().unwrap();
    let m: Value = c
        .post(format!("{base}/v1/orgs/{org}/members"))
        .bearer_auth(owner)
        .json(&json!({"name": "app", "roles": ["member"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    m["api_key"].as_str().unwrap().to_string()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_no_value(what: &str, bytes: &[u8]) {
    for value in VALUES {
        let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
        assert!(
            !found,
            "{what} holds a PII value (a {}-byte one)",
            value.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_prompt_or_completion_content_is_retained_anywhere() {
    let up = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream,
            "messages": [{"role": "system", "content": format!("Customer: {}", VALUES[2])},
                         {"role": "user", "content": prompt()}]})
    };

    // A deployment that tokenizes.
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let served = serve(&data, &config(dir.path(), &up.base_url(), "tokenize"), &log).await;
    let key = member_key(&c, &served.base).await;
    let post = |path: &str, body: Value| {
        let rb = c.post(format!("{}/llm{path}", served.base));
        let rb = if path.starts_with("/anthropic") {
            rb.header("x-api-key", &key)
        } else {
            rb.bearer_auth(&key)
        };
        rb.json(&body).send()
    };
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "description": format!("Looks up {}", VALUES[0]),
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]);
    let mut answers = String::new();
    for stream in [false, true] {
        let r = post("/openai/v1/chat/completions", chat("stand-in", stream))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        answers.push_str(&r.text().await.unwrap());
        let mut with_tools = chat("stand-in", stream);
        with_tools["tools"] = tools.clone();
        let r = post("/openai/v1/chat/completions", with_tools)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        answers.push_str(&r.text().await.unwrap());
        let r = post(
            "/openai/v1/responses",
            json!({"model": "stand-in", "stream": stream, "instructions": VALUES[2],
                "input": prompt()}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        answers.push_str(&r.text().await.unwrap());
        let r = post(
            "/anthropic/v1/messages",
            json!({"model": "stand-in", "max_tokens": 256, "stream": stream,
                "system": VALUES[2], "messages": [{"role": "user", "content": prompt()}]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        answers.push_str(&r.text().await.unwrap());
    }
    // The caller got its values back (so they did pass through the gateway).
    assert!(VALUES.iter().all(|v| answers.contains(v)));
    // An upstream 500 and an upstream timeout.
    let r = post(
        "/openai/v1/chat/completions",
        chat("stand-in+fail-500", false),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 502);
    assert_no_value("a 502 body", &r.bytes().await.unwrap());
    let r = post(
        "/openai/v1/chat/completions",
        chat("stand-in+slow-4000", false),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 504);
    assert_no_value("a 504 body", &r.bytes().await.unwrap());
    // A caller that disconnects mid-stream.
    let r = post("/openai/v1/chat/completions", chat("stand-in+hang", true))
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    for _ in 0..100 {
        if up.state.disconnects() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.state.disconnects(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(served);

    // A deployment that blocks.
    let blocked_data = dir.path().join("data-block");
    let blocked_log = dir.path().join("serve-block.log");
    let served = serve(
        &blocked_data,
        &config(dir.path(), &up.base_url(), "block"),
        &blocked_log,
    )
    .await;
    let key = member_key(&c, &served.base).await;
    let r = c
        .post(format!("{}/llm/openai/v1/chat/completions", served.base))
        .bearer_auth(&key)
        .json(&chat("stand-in", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_no_value("a blocked call's error", &r.bytes().await.unwrap());
    drop(served);

    // Nothing kept: not in the data directories (database, WAL, objects, keys, audit log),
    // not in the trace-level output, not at the provider.
    let mut scanned = 0;
    for d in [&data, &blocked_data] {
        for file in files(d) {
            assert_no_value(&file.display().to_string(), &std::fs::read(&file).unwrap());
            scanned += 1;
        }
    }
    assert!(
        scanned >= 4,
        "only {scanned} files under the data directories"
    );
    let text = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&text).contains("LLM call forwarded"),
        "the server did not log at trace level"
    );
    assert_no_value("the server's output", &text);
    let text = std::fs::read(&blocked_log).unwrap();
    assert!(String::from_utf8_lossy(&text).contains("LLM call refused"));
    assert_no_value("the blocking server's output", &text);
    for r in up.state.requests() {
        assert_no_value("a request the provider received", r.body.as_bytes());
    }
}
