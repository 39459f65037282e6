//! Test support shared by the notification tests of several crates (included with `#[path]`):
//! starts `serve.sh` (a real SMTP server, or a webhook receiver that verifies signatures with
//! the Standard Webhooks reference library) on a free port for one test, stops it when the
//! test ends, and reads what it received. It depends on no Custos crate.
//!
//! The receivers need Python and, on first use, PyPI. When one cannot start, a test fails
//! under `CI=true` and is otherwise skipped with a loud message, like the PostgreSQL tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a first start may take: it creates the venv and installs from PyPI.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running receiver, stopped on drop (also when the test panics).
pub struct Receiver {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unavailable(test: &str, why: &str) -> Option<Receiver> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: the notification stand-in is required under CI=true: {why}");
    }
    let message = format!(
        "\n*** SKIPPED {test}: the notification stand-in (tools/notify-stand-in/serve.sh) did \
         not start; set CI=true to make this fatal ***\n{why}\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
    None
}

impl Receiver {
    /// An SMTP server.
    pub async fn smtp(test: &str) -> Option<Receiver> {
        Self::start(test, &["smtp"], false).await
    }

    /// An SMTP server that requires STARTTLS, with a certificate for `localhost` and
    /// 127.0.0.1 issued by a CA of its own ([`Receiver::ca_pem`]).
    pub async fn smtp_tls(test: &str) -> Option<Receiver> {
        Self::start(test, &["smtp"], true).await
    }

    /// The PEM of the CA that issued a TLS server's certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A webhook receiver verifying with `secret` (`whsec_…`), answering 503 to the first
    /// `fail_first` attempts.
    pub async fn webhook(test: &str, secret: &str, fail_first: u32) -> Option<Receiver> {
        let fail = fail_first.to_string();
        Self::start(
            test,
            &["webhook", "--secret", secret, "--fail-first", fail.as_str()],
            false,
        )
        .await
    }

    async fn start(test: &str, args: &[&str], tls: bool) -> Option<Receiver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let dir = tempfile::tempdir().expect("a temp dir for the receiver");
        let log_path = dir.path().join("receiver.log");
        let log = std::fs::File::create(&log_path).expect("the receiver log file");
        let out = dir.path().join("received.jsonl");
        let spawned = Command::new("bash")
            .arg(repo_root().join("tools/notify-stand-in/serve.sh"))
            .args(args)
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(&out)
            .args(tls.then_some("--tls-dir"))
            .args(tls.then(|| dir.path().to_path_buf()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => return unavailable(test, &format!("cannot run serve.sh: {e}")),
        };
        let mut receiver = Receiver { child, port, dir };
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(receiver);
            }
            if let Ok(Some(status)) = receiver.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return unavailable(test, &format!("serve.sh exited with {status}:\n{log}"));
            }
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return unavailable(
                    test,
                    &format!("not listening after {START_TIMEOUT:?}:\n{log}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT/hook` (webhook receivers).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Everything received so far, one JSON value per message or attempt.
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("the receiver writes JSON lines"))
            .collect()
    }

    /// Waits until `done` holds for what was received, up to `timeout`; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if done(&got) || started.elapsed() > timeout {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
