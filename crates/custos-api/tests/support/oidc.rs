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
    /// Its issuer (`http://localhost:PORT`, or what the configuration named).
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
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
            port: ready["port"].as_u64().unwrap() as u16,
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

/// An ID token for `client_id` (secret `secret`) from the provider at `issuer`, got the way a
/// relying party gets one (code flow with PKCE), for `sub` in `browser`.
pub async fn id_token_for(
    browser: &Browser,
    issuer: &str,
    client_id: &str,
    secret: &str,
    redirect_uri: &str,
    sub: &str,
) -> String {
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode([7u8; 32]);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut authorize = Url::parse(&format!("{issuer}/auth")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", "state-of-another-client")
        .append_pair("nonce", "nonce-of-another-client")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let back = browser
        .through_provider(authorize.as_str(), sub, "pwd", redirect_uri)
        .await;
    let code = Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    answer["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {answer}"))
        .to_string()
}

/// A proxy in front of a provider that can swap the ID token of the provider's next token
/// answer for another one (an attacker on the path, or a provider gone wrong). Everything
/// else passes through as it is, `Host` included, so the provider's URLs name the proxy.
#[derive(Clone)]
pub struct TokenSwapProxy {
    /// The port it listens on.
    pub port: u16,
    upstream: std::sync::Arc<Mutex<u16>>,
    swap: std::sync::Arc<Mutex<Option<String>>>,
}

impl TokenSwapProxy {
    /// Listens on a free loopback port; [`TokenSwapProxy::forward_to`] names the provider.
    pub async fn start() -> TokenSwapProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TokenSwapProxy {
            port: listener.local_addr().unwrap().port(),
            upstream: Default::default(),
            swap: Default::default(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        proxy
    }

    /// Forwards to the provider on `port`.
    pub fn forward_to(&self, port: u16) {
        *self.upstream.lock().unwrap() = port;
    }

    /// The next token answer carries `id_token` instead of the provider's.
    pub fn swap_next_id_token(&self, id_token: String) {
        *self.swap.lock().unwrap() = Some(id_token);
    }
}

async fn forward(
    axum::extract::State(proxy): axum::extract::State<TokenSwapProxy>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let port = *proxy.upstream.lock().unwrap();
    let url = format!("http://127.0.0.1:{port}{}", parts.uri);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .request(parts.method.clone(), url)
        .headers(parts.headers.clone())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if parts.uri.path().ends_with("/token") && status.is_success() {
        if let Some(swapped) = proxy.swap.lock().unwrap().take() {
            let mut json: Value = serde_json::from_slice(&bytes).unwrap();
            json["id_token"] = Value::String(swapped);
            bytes = serde_json::to_vec(&json).unwrap();
        }
    }
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
