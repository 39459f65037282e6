//! Test support shared by the S3 and KMS tests of several crates (included with `#[path]`):
//! starts `serve.sh` (moto, which serves S3 and KMS on one port) on a free port for one test
//! and stops it when the test ends. It depends on no Custos crate, so any test can include it.
//!
//! The stand-in needs Python and, on first use, PyPI. When it cannot start, a test fails under
//! `CI=true` and is otherwise skipped with a loud message, like the PostgreSQL tests.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a first start may take: it creates the venv and installs moto from PyPI.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Credentials moto accepts (it accepts any); real-looking values are not needed.
pub const ACCESS_KEY_ID: &str = "test";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "test";
/// The region the stand-in reports.
pub const REGION: &str = "us-east-1";

/// A running stand-in S3 server, stopped on drop (also when the test panics).
pub struct StandIn {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Holds the server's log until the test ends.
    _log_dir: tempfile::TempDir,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    // Every crate sits at crates/NAME, so the root is two levels up from its manifest.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails under `CI=true`; elsewhere prints a loud SKIPPED line and returns `None`.
fn unavailable(test: &str, why: &str) -> Option<StandIn> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: the S3 stand-in is required under CI=true: {why}");
    }
    let message = format!(
        "\n*** SKIPPED {test}: the S3 stand-in (tools/s3-stand-in/serve.sh) did not start; \
         set CI=true to make this fatal ***\n{why}\n"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip nobody sees is a test that silently stopped running.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
    None
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl StandIn {
    /// Starts a fresh, empty stand-in for `test`; `None` if the test should be skipped.
    pub async fn start(test: &str) -> Option<StandIn> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let log_dir = tempfile::tempdir().expect("a temp dir for the stand-in log");
        let log_path = log_dir.path().join("s3-stand-in.log");
        // The log goes to a file, not a pipe: nobody reads a pipe while the test runs, and a
        // full pipe would stall the server.
        let log = std::fs::File::create(&log_path).expect("the stand-in log file");
        let spawned = Command::new("bash")
            .arg(repo_root().join("tools/s3-stand-in/serve.sh"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the stand-in log file"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => return unavailable(test, &format!("cannot run bash: {e}")),
        };
        let mut stand_in = StandIn {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _log_dir: log_dir,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&stand_in.endpoint).send().await {
                if r.status().is_success() {
                    return Some(stand_in);
                }
            }
            if let Ok(Some(status)) = stand_in.child.try_wait() {
                let tail = log_tail(&log_path);
                return unavailable(test, &format!("serve.sh exited ({status}):\n{tail}"));
            }
            if started.elapsed() > START_TIMEOUT {
                let tail = log_tail(&log_path);
                return unavailable(
                    test,
                    &format!("no answer within {START_TIMEOUT:?}:\n{tail}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a bucket whose objects this helper can read without signing requests.
    ///
    /// moto accepts unsigned requests but refuses anonymous reads of objects that carry the
    /// default private ACL (those written with a single PUT), unless the bucket policy allows
    /// them; it evaluates HEAD as `s3:HeadObject`, an action real S3 does not have.
    pub async fn create_bucket(&self, bucket: &str) {
        let client = reqwest::Client::new();
        let r = client
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:HeadObject"],"Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        let r = client
            .put(format!("{}/{bucket}?policy", self.endpoint))
            // Without a content type the body would be taken for a form and dropped.
            .header("content-type", "application/json")
            .body(policy)
            .send()
            .await
            .expect("set bucket policy");
        assert!(r.status().is_success(), "bucket policy: {}", r.status());
    }

    /// The storage class S3 reports for an object: `None` for STANDARD, which S3 (and moto)
    /// leave out of the response headers.
    pub async fn storage_class(&self, bucket: &str, key: &str) -> Option<String> {
        let r = reqwest::Client::new()
            .head(format!("{}/{bucket}/{key}", self.endpoint))
            .send()
            .await
            .expect("HEAD object");
        assert!(r.status().is_success(), "HEAD {key}: {}", r.status());
        r.headers()
            .get("x-amz-storage-class")
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// An object's bytes, read directly from the server.
    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let r = reqwest::Client::new()
            .get(format!("{}/{bucket}/{key}", self.endpoint))
            .send()
            .await
            .expect("GET object");
        assert!(r.status().is_success(), "GET {key}: {}", r.status());
        r.bytes().await.unwrap().to_vec()
    }

    /// Every key in `bucket` that starts with `prefix`, read directly from the server.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let r = reqwest::Client::new()
            .get(format!("{}/{bucket}", self.endpoint))
            .query(&[("list-type", "2"), ("prefix", prefix)])
            .send()
            .await
            .expect("list objects");
        assert!(r.status().is_success(), "list {prefix}: {}", r.status());
        let xml = r.text().await.unwrap();
        assert!(
            !xml.contains("<IsTruncated>true</IsTruncated>"),
            "more keys than one listing page"
        );
        // Test keys hold no XML special characters, so the elements can be cut out as text.
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }
}
