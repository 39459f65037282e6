//! A real OpenID provider for the sign-in tests (`tools/oidc-provider`: the OpenID Certified
//! `oidc-provider` npm package, started by the test itself), and a browser that keeps its
//! cookies per host and follows no redirect by itself.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use reqwest::{StatusCode, Url};
use serde_json::Value;

/// Where `tools/oidc-provider/install.sh` puts the provider.
fn install_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("target/oidc-provider")
}

/// Installs the provider once per test process; `Err` says why it cannot be.
fn installed() -> &'static Result<PathBuf, String> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("tools/oidc-provider/install.sh"))
            .arg(install_dir())
            .output()
            .map_err(|e| format!("cannot run install.sh: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(install_dir())
    })
}

/// A running provider; the process ends when this is dropped.
pub struct Provider {
    /// Its issuer (`http://localhost:PORT`).
    pub issuer: String,
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts a provider with `config` (the JSON object `server.mjs` takes: `clients`,
    /// `code_ttl`, `issuer`...). `None` (with a note) when Node.js or the package cannot be
    /// had outside CI; under `CI=true` that is a failure.
    pub fn start(mut config: Value) -> Option<Provider> {
        let dir = match installed() {
            Ok(dir) => dir,
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("the OpenID provider cannot be installed: {why}")
            }
            Err(why) => {
                eprintln!("*** skipped: the OpenID provider cannot be installed: {why}");
                return None;
            }
        };
        config["exit_on_stdin_close"] = Value::Bool(true);
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("provider's first line {line:?}: {e}"));
        Some(Provider {
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            child,
        })
    }

    /// Makes the provider sign with a new key from now on (the old one stays published).
    pub async fn rotate_keys(&self) {
        let r = reqwest::Client::new()
            .post(format!("{}/test/rotate-keys", self.issuer))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "rotate-keys: {}", r.status());
    }
}

/// A browser: cookies kept per host and port (names and values only: every test cookie is
/// host-wide), redirects followed by the test.
#[derive(Default)]
pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

/// One answer as the browser saw it.
pub struct Seen {
    pub status: StatusCode,
    /// `Location`, absolute.
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Mutex::default(),
        }
    }

    fn site(url: &Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap(),
            url.port_or_known_default().unwrap()
        )
    }

    /// GETs `url` with the cookies of its host, keeping what it sets.
    pub async fn get(&self, url: &str) -> Seen {
        let url = Url::parse(url).unwrap();
        let site = Self::site(&url);
        let cookies = self.cookie_header(&site);
        let mut request = self.client.get(url.clone());
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        let r = request.send().await.unwrap();
        self.keep(&site, r.headers());
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| url.join(l.to_str().unwrap()).unwrap().to_string());
        Seen {
            status,
            location,
            body: r.text().await.unwrap_or_default(),
        }
    }

    /// The cookie `name` this browser holds for `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let site = Self::site(&Url::parse(url).unwrap());
        self.jar.lock().unwrap().get(&site)?.get(name).cloned()
    }

    /// Forgets `url`'s host's cookie `name`.
    pub fn forget(&self, url: &str, name: &str) {
        let site = Self::site(&Url::parse(url).unwrap());
        if let Some(cookies) = self.jar.lock().unwrap().get_mut(&site) {
            cookies.remove(name);
        }
    }

    fn cookie_header(&self, site: &str) -> String {
        let jar = self.jar.lock().unwrap();
        jar.get(site)
            .map(|c| {
                c.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep(&self, site: &str, headers: &reqwest::header::HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(site.to_string()).or_default();
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let expired = attributes
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"))
                || value.is_empty();
            if expired {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    /// From a provider authorization URL to the redirect back to `callback_prefix`: logs
    /// `sub` in with `amr` at the provider's interaction (when it asks) and returns the
    /// callback URL with its `code` and `state` (not followed).
    pub async fn through_provider(
        &self,
        authorize: &str,
        sub: &str,
        amr: &str,
        callback_prefix: &str,
    ) -> String {
        let mut url = authorize.to_string();
        for _ in 0..10 {
            if url.starts_with(callback_prefix) {
                return url;
            }
            let target = if url.contains("/interaction/") {
                format!("{url}?sub={sub}&amr={amr}")
            } else {
                url.clone()
            };
            let seen = self.get(&target).await;
            assert_eq!(
                seen.status,
                StatusCode::SEE_OTHER,
                "{target}: {}",
                seen.body
            );
            url = seen.location.unwrap();
        }
        panic!("the provider never sent the browser back to {callback_prefix}");
    }
}
