//! Shared harness of the tests that run a real `custos serve`: a clean command line, a
//! server on a free loopback port, killed when dropped.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The bootstrap admin token every served test uses.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A running `custos serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `data`, with a clean environment: no inherited Custos or AWS settings, so
/// a test sees only what it sets.
pub fn cli(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    c.arg("--data")
        .arg(data)
        .current_dir(data.parent().unwrap())
        .env_remove("CUSTOS_DATABASE")
        .env_remove("CUSTOS_OBJECTS")
        .env_remove("CUSTOS_KEYS")
        .env_remove("CUSTOS_ROOT_KEY")
        .env_remove("CUSTOS_S3_ARCHIVE_STORAGE_CLASS")
        .env("CUSTOS_LOG", "warn");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            c.env_remove(key);
        }
    }
    c
}

/// Runs `command` (from [`cli`], with any global options and variables) as `serve` on a
/// free loopback port with the [`ADMIN`] token and `serve_args`, once it answers `/healthz`.
pub async fn serve(mut command: Command, serve_args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(serve_args)
        .env("CUSTOS_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("custos serve did not come up");
}

/// The built-in policy (as `policy show` prints it) with each `(region, dir)` on a SQLite
/// database and objects of its own under `root/dir`, written to `root/custos.toml`.
pub fn policy_with_region_stores(root: &Path, regions: &[(&str, &str)]) -> PathBuf {
    let shown = cli(&root.join("main"))
        .args(["policy", "show"])
        .output()
        .unwrap();
    assert!(shown.status.success());
    let mut text = String::from_utf8(shown.stdout).unwrap();
    for (region, dir) in regions {
        let base = root.join(dir);
        text.push_str(&format!(
            "\n[regions.{region}]\ndatabase = \"sqlite:{}\"\nobjects = \"file:{}\"\n",
            base.join("custos.db").display(),
            base.join("objects").display()
        ));
    }
    let path = root.join("custos.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Sends `method path` (with a JSON `body`, if any) as `token`; the status and the answer
/// (JSON, else its text as a JSON string).
pub async fn send(
    s: &Server,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs `body` as `token` and returns the status and the body, whatever they are.
#[allow(dead_code)] // Each test crate compiles this module; not all of them call this.
pub async fn post_status(s: &Server, token: &str, path: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// POSTs `body` as `token` and returns the JSON answer, asserting success.
pub async fn post(s: &Server, token: &str, path: &str, body: Value) -> Value {
    let (status, text) = post_status(s, token, path, body).await;
    assert!((200..300).contains(&status), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Creates an org named `name` with the [`ADMIN`] token, with its first owner (who holds
/// every role and, not the admin token, manages the org); (org id, the owner's API key).
pub async fn org_with_owner(s: &Server, name: &str) -> (String, String) {
    let created = post(
        s,
        ADMIN,
        "/v1/orgs",
        serde_json::json!({"name": name, "owner": {"name": "Olive"}}),
    )
    .await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["owner"]["api_key"].as_str().unwrap().to_string(),
    )
}

/// A fresh PostgreSQL database (`CUSTOS_TEST_POSTGRES_URL`'s server, default the local test
/// server), dropped when this drops; `None`, after a loud skip message, when PostgreSQL is
/// unreachable outside CI (fatal under `CI=true`).
pub struct PgDb {
    admin: String,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl PgDb {
    /// Creates `custos_<what>_<pid>_<n>`.
    pub fn create(what: &str) -> Option<PgDb> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = std::env::var("CUSTOS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("custos_{what}_{}_{n}", std::process::id());
        let created = Command::new("psql")
            .args([&admin, "-qc", &format!("CREATE DATABASE {name}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !created {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL at {admin} unusable (psql CREATE DATABASE); CI=true makes this fatal");
            }
            eprintln!(
                "\n*** SKIPPED: PostgreSQL at {admin} unusable; set CUSTOS_TEST_POSTGRES_URL ***\n"
            );
            return None;
        }
        let (server, _) = admin.rsplit_once('/').expect("a database URL");
        let url = format!("{server}/{name}");
        Some(PgDb { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql")
            .args([&self.admin, "-qc", &drop])
            .output();
    }
}

/// The target directory (`.../target`), from the binary's path, for the reusable venv.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_custos"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A venv with the verifier's requirements, or `None` (loud skip) outside CI.
pub fn verifier_venv() -> Option<PathBuf> {
    let venv = target_dir().join("audit-verify-venv");
    let requirements = workspace_root().join("tools/audit-verify/requirements.txt");
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import nacl"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            let _ = std::fs::remove_dir_all(&venv);
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("cannot create the audit-verify venv (python3 -m venv / pip) under CI=true");
            }
            eprintln!(
                "\n*** SKIPPING the independent verifier test: cannot create a venv with PyNaCl at {} ***\n",
                venv.display()
            );
            return None;
        }
    }
    Some(venv)
}

/// The text of a PDF as poppler's `pdftotext` reads it (installed by
/// `tools/ensure-poppler.sh` when missing), or `None` (loud skip) outside CI.
pub fn pdf_text(pdf: &[u8], dir: &Path) -> Option<String> {
    let have = || Command::new("pdftotext").arg("-v").output().is_ok();
    if !have() {
        let _ = Command::new("bash")
            .arg(workspace_root().join("tools/ensure-poppler.sh"))
            .status();
    }
    if !have() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "pdftotext is missing and tools/ensure-poppler.sh could not install it"
        );
        eprintln!("\n!!! SKIPPED the PDF checks: poppler-utils is missing\n");
        return None;
    }
    let file = dir.join("read-back.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftotext could not read the PDF");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Python that runs the browser tests (`tools/browser-check/ensure.sh` installs Debian's
/// chromium, Playwright and axe-core on first use), or `None` (loud skip) outside CI.
pub fn browser_python() -> Option<PathBuf> {
    let out = Command::new(workspace_root().join("tools/browser-check/ensure.sh"))
        .arg(target_dir())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("tools/browser-check/ensure.sh failed under CI=true");
    }
    eprintln!("\n*** SKIPPING a browser test: tools/browser-check/ensure.sh failed ***\n");
    None
}

/// Runs browser test `script` (in `tools/browser-check/`) with `config` written as its
/// JSON argument; panics with its output unless it passes.
pub fn run_browser_test(python: &Path, script: &str, config: &Value, dir: &Path) {
    let file = dir.join(format!("{script}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let here = workspace_root().join("tools/browser-check");
    let out = Command::new(python)
        .arg(here.join(script))
        .arg(&file)
        .current_dir(&here)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    eprintln!("{text}");
}

/// Where the browser tests put their screenshots (`target/screenshots/`).
pub fn screenshot_dir() -> PathBuf {
    target_dir().join("screenshots")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
