//! Requests to URLs that orgs or people supply at run time (an identity provider's JWKS
//! today; org webhooks and model endpoints later): the one rule of the design brief.
//!
//! A URL is an [`OutboundUrl`] only when it is `https` (or `http` to a host inside
//! `[network] allow`) and carries no user info. [`Outbound`] sends requests through reqwest
//! clients whose DNS resolver checks every address a name resolves to, before any connection
//! is opened: loopback, private, link-local (cloud metadata), shared and reserved addresses
//! are refused unless a range of `[network] allow` lists them. Literal IP hosts never reach
//! a resolver, so [`OutboundUrl::parse`] checks them itself. Redirects are not followed and
//! proxies from the environment are not used: either would send the request somewhere the
//! checks never saw.
//!
//! Not covered: URLs the operator writes in the policy (`[llm] providers`, webhooks of the
//! deployment), which are taken as written.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use custos_policy::Network;
use ipnet::IpNet;

/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;

/// What kind of non-public address a refused address is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, unique local `fc00::/7` (AWS's `fd00:ec2::254` metadata) and shared
    /// `100.64.0.0/10` (Alibaba's `100.100.100.200` metadata).
    Private,
    /// `169.254.0.0/16` (the cloud metadata address `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// Unspecified, multicast, broadcast, benchmarking, documentation and other reserved ranges.
    Reserved,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private address",
            AddressKind::LinkLocal => "a link-local or cloud-metadata address",
            AddressKind::Reserved => "a reserved address",
        })
    }
}

/// Why a URL or an address is refused. Messages name the address or host, never a path or
/// query (which may carry tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not parseable as an absolute URL, too long, or without a host.
    #[error("is not a valid absolute URL{0}")]
    NotAUrl(String),
    /// A scheme other than `https` (or `http`).
    #[error("must be an https URL (scheme {0:?} is not allowed)")]
    Scheme(String),
    /// `user:password@` before the host: refused, since it hides the real host from readers.
    #[error("must not contain user info (`name@` or `name:password@` before the host)")]
    UserInfo,
    /// Plain `http` to a host outside `[network] allow`.
    #[error("plain http is allowed only to addresses listed in [network] allow; {host} is not (use https)")]
    PlainHttp {
        /// The host (or one address it resolves to).
        host: String,
    },
    /// An address that is not public and not listed in `[network] allow`.
    #[error("{host} is {kind}, which is refused unless [network] allow lists it")]
    Address {
        /// The host (or one address it resolves to).
        host: String,
        /// What kind of address it is.
        kind: AddressKind,
    },
    /// The host name resolved to no address at all.
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// The range table of addresses that are refused unless allowed, in check order.
const NOT_PUBLIC: &[(&str, AddressKind)] = &[
    ("0.0.0.0/8", AddressKind::Reserved),
    ("10.0.0.0/8", AddressKind::Private),
    ("100.64.0.0/10", AddressKind::Private),
    ("127.0.0.0/8", AddressKind::Loopback),
    ("169.254.0.0/16", AddressKind::LinkLocal),
    ("172.16.0.0/12", AddressKind::Private),
    ("192.0.0.0/24", AddressKind::Reserved),
    ("192.0.2.0/24", AddressKind::Reserved),
    ("192.168.0.0/16", AddressKind::Private),
    ("198.18.0.0/15", AddressKind::Reserved),
    ("198.51.100.0/24", AddressKind::Reserved),
    ("203.0.113.0/24", AddressKind::Reserved),
    ("224.0.0.0/4", AddressKind::Reserved),
    ("240.0.0.0/4", AddressKind::Reserved),
    ("::/128", AddressKind::Reserved),
    ("::1/128", AddressKind::Loopback),
    ("100::/64", AddressKind::Reserved),
    ("2001:db8::/32", AddressKind::Reserved),
    ("fc00::/7", AddressKind::Private),
    ("fe80::/10", AddressKind::LinkLocal),
    ("ff00::/8", AddressKind::Reserved),
];

/// The IPv4 address carried inside an IPv6 one (mapped `::ffff:a.b.c.d`, compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`): it is where the packet really goes.
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// What kind of non-public address `ip` is (looking through embedded IPv4), if any.
pub fn not_public(ip: IpAddr) -> Option<AddressKind> {
    let direct = NOT_PUBLIC.iter().find_map(|(range, kind)| {
        let net: IpNet = range.parse().expect("valid range table");
        net.contains(&ip).then_some(*kind)
    });
    direct.or_else(|| match ip {
        IpAddr::V6(v6) => embedded_v4(&v6).and_then(|v4| not_public(IpAddr::V4(v4))),
        IpAddr::V4(_) => None,
    })
}

/// The outbound rules of one deployment: the `[network] allow` ranges.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    allow: Vec<IpNet>,
}

impl Rules {
    /// The rules of the policy's `[network]` table.
    pub fn new(network: &Network) -> Rules {
        Rules {
            allow: network.allow.clone(),
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(&v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || v4.is_some_and(|v4| net.contains(&v4)))
    }

    /// Whether a connection to `ip` may be opened; `plain_http` demands an allowed address.
    pub fn check(&self, ip: IpAddr, plain_http: bool) -> Result<(), Refusal> {
        if self.allows(ip) {
            return Ok(());
        }
        if plain_http {
            return Err(Refusal::PlainHttp {
                host: ip.to_string(),
            });
        }
        match not_public(ip) {
            Some(kind) => Err(Refusal::Address {
                host: ip.to_string(),
                kind,
            }),
            None => Ok(()),
        }
    }

    /// Checks every address a name resolved to: one refused address refuses the name, so a
    /// resolver answer mixing public and internal addresses cannot be used to reach the latter.
    pub fn check_all(
        &self,
        name: &str,
        addrs: &[SocketAddr],
        plain_http: bool,
    ) -> Result<(), Refusal> {
        if addrs.is_empty() {
            return Err(Refusal::NoAddress(name.to_string()));
        }
        for addr in addrs {
            self.check(addr.ip(), plain_http).map_err(|e| match e {
                Refusal::Address { kind, .. } => Refusal::Address {
                    host: format!("{name} ({})", addr.ip()),
                    kind,
                },
                Refusal::PlainHttp { .. } => Refusal::PlainHttp {
                    host: format!("{name} ({})", addr.ip()),
                },
                other => other,
            })?;
        }
        Ok(())
    }
}

/// A URL that passed the outbound rules as far as they can be checked without resolving its
/// host: `https` (or `http`), no user info, and a literal IP host that is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl(url::Url);

impl OutboundUrl {
    /// Parses and checks `input` against `rules`.
    pub fn parse(input: &str, rules: &Rules) -> Result<OutboundUrl, Refusal> {
        if input.len() > MAX_URL_LEN {
            return Err(Refusal::NotAUrl(format!(
                " (longer than {MAX_URL_LEN} bytes)"
            )));
        }
        let url = url::Url::parse(input).map_err(|e| Refusal::NotAUrl(format!(" ({e})")))?;
        let plain_http = match url.scheme() {
            "https" => false,
            "http" => true,
            other => return Err(Refusal::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::UserInfo);
        }
        let ip = match url.host() {
            None => return Err(Refusal::NotAUrl(" (it has no host)".into())),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(ip) = ip {
            rules.check(ip, plain_http)?;
        }
        Ok(OutboundUrl(url))
    }

    /// The URL.
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// Scheme, host and port only: what logs and errors may name.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    fn plain_http(&self) -> bool {
        self.0.scheme() == "http"
    }
}

impl fmt::Display for OutboundUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DNS resolver that hands reqwest only addresses the rules allow.
struct GuardedResolver {
    rules: Arc<Rules>,
    plain_http: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.rules.clone();
        let plain_http = self.plain_http;
        Box::pin(async move {
            let name = name.as_str().to_string();
            let addrs = resolve_checked(&rules, &name, plain_http).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Resolves `name` (through the system resolver) and checks every address.
async fn resolve_checked(
    rules: &Rules,
    name: &str,
    plain_http: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    // Port 0: reqwest puts the URL's port on the addresses it gets back.
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0)).await?.collect();
    rules.check_all(name, &addrs, plain_http)?;
    Ok(addrs)
}

/// Sends requests to [`OutboundUrl`]s: every resolved address is checked before connecting.
#[derive(Debug, Clone)]
pub struct Outbound {
    https: reqwest::Client,
    http: reqwest::Client,
}

impl Outbound {
    /// Clients for the policy's `[network]` rules, trusting the web roots plus the CAs of
    /// `[network] ca_file`; `timeout` bounds a whole request, `connect_timeout` the connect.
    pub fn new(
        network: &Network,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Outbound, String> {
        let rules = Arc::new(Rules::new(network));
        let extra_roots = match &network.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("[network] ca_file {}: cannot read: {e}", path.display())
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    format!(
                        "[network] ca_file {}: not PEM certificates: {e}",
                        path.display()
                    )
                })?;
                if certs.is_empty() {
                    return Err(format!(
                        "[network] ca_file {}: holds no certificate",
                        path.display()
                    ));
                }
                certs
            }
        };
        let build = |plain_http: bool| {
            let mut builder = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .https_only(!plain_http)
                .dns_resolver(Arc::new(GuardedResolver {
                    rules: rules.clone(),
                    plain_http,
                }));
            for cert in &extra_roots {
                builder = builder.add_root_certificate(cert.clone());
            }
            builder
                .build()
                .map_err(|e| format!("outbound HTTP client: {e}"))
        };
        Ok(Outbound {
            https: build(false)?,
            http: build(true)?,
        })
    }

    /// A GET of `url`, on the client whose resolver enforces `url`'s scheme's rule.
    pub fn get(&self, url: &OutboundUrl) -> reqwest::RequestBuilder {
        self.client_for(url).get(url.as_url().clone())
    }

    /// The client whose resolver enforces `url`'s scheme's rule (for crates that send their
    /// own requests, such as the OpenID client): it follows no redirects.
    pub fn client_for(&self, url: &OutboundUrl) -> &reqwest::Client {
        if url.plain_http() {
            &self.http
        } else {
            &self.https
        }
    }
}

/// An error and its causes on one line (reqwest's own message leaves out the cause, which is
/// where a resolver refusal is).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str]) -> Rules {
        Rules {
            allow: allow.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn user_info_is_refused_at_parse() {
        let open = rules(&["127.0.0.0/8", "::1/128"]);
        for url in [
            "http://localhost:1@example.com/jwks",
            "http://127.0.0.1:80@169.254.169.254/latest/meta-data/",
            "http://[::1]@10.0.0.1/",
            "https://user@idp.example.com/jwks",
            "https://:secret@idp.example.com/jwks",
            "https://a@b@idp.example.com/jwks",
        ] {
            assert_eq!(
                OutboundUrl::parse(url, &open),
                Err(Refusal::UserInfo),
                "{url}"
            );
        }
    }

    #[test]
    fn schemes_other_than_https_and_http_are_refused() {
        for url in [
            "ftp://idp.example.com/x",
            "file:///etc/passwd",
            "gopher://x/",
        ] {
            assert!(matches!(
                OutboundUrl::parse(url, &Rules::default()),
                Err(Refusal::Scheme(_))
            ));
        }
        assert!(matches!(
            OutboundUrl::parse("not a url", &Rules::default()),
            Err(Refusal::NotAUrl(_))
        ));
        assert!(OutboundUrl::parse("https://idp.example.com/jwks", &Rules::default()).is_ok());
    }

    #[test]
    fn literal_internal_hosts_are_refused_unless_allowed() {
        let none = Rules::default();
        for (url, kind) in [
            ("https://127.0.0.1/jwks", AddressKind::Loopback),
            ("https://[::1]/jwks", AddressKind::Loopback),
            ("https://169.254.169.254/latest", AddressKind::LinkLocal),
            ("https://10.0.0.1/", AddressKind::Private),
            ("https://192.168.1.1/", AddressKind::Private),
            ("https://100.100.100.200/", AddressKind::Private),
            ("https://[fd00:ec2::254]/", AddressKind::Private),
            ("https://[::ffff:169.254.169.254]/", AddressKind::LinkLocal),
            ("https://[64:ff9b::a9fe:a9fe]/", AddressKind::LinkLocal),
            ("https://[2002:7f00:1::]/", AddressKind::Loopback),
            ("https://0.0.0.0/", AddressKind::Reserved),
            // The url crate reads these as 127.0.0.1 (decimal, hex, short forms).
            ("https://2130706433/", AddressKind::Loopback),
            ("https://0x7f.1/", AddressKind::Loopback),
        ] {
            match OutboundUrl::parse(url, &none) {
                Err(Refusal::Address { kind: k, .. }) => assert_eq!(k, kind, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        // Plain http to a literal address needs it in `allow`, public or not.
        assert!(matches!(
            OutboundUrl::parse("http://8.8.8.8/", &none),
            Err(Refusal::PlainHttp { .. })
        ));
        assert!(OutboundUrl::parse("https://8.8.8.8/", &none).is_ok());
        let lo = rules(&["127.0.0.0/8"]);
        assert!(OutboundUrl::parse("http://127.0.0.1:8080/jwks", &lo).is_ok());
        assert!(OutboundUrl::parse("https://[::ffff:127.0.0.1]/", &lo).is_ok());
        assert!(matches!(
            OutboundUrl::parse("http://10.0.0.1/", &lo),
            Err(Refusal::PlainHttp { .. })
        ));
        assert!(matches!(
            OutboundUrl::parse("https://169.254.169.254/", &lo),
            Err(Refusal::Address { .. })
        ));
    }

    #[test]
    fn every_resolved_address_is_checked() {
        let sa = |s: &str| SocketAddr::new(ip(s), 443);
        let none = Rules::default();
        assert!(none
            .check_all("idp.example.com", &[sa("93.184.215.14")], false)
            .is_ok());
        // One internal address among public ones refuses the name.
        let mixed = [sa("93.184.215.14"), sa("169.254.169.254")];
        let err = none
            .check_all("idp.example.com", &mixed, false)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "idp.example.com (169.254.169.254) is a link-local or cloud-metadata address, \
             which is refused unless [network] allow lists it"
        );
        assert!(none.check_all("x", &[], false).is_err());
        // Plain http: only names whose every address is allowed.
        let lo = rules(&["127.0.0.0/8"]);
        assert!(lo.check_all("localhost", &[sa("127.0.0.1")], true).is_ok());
        assert!(lo
            .check_all("x", &[sa("127.0.0.1"), sa("8.8.8.8")], true)
            .is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_internal_answers() {
        // Literal IPs and `localhost` resolve without sending anything anywhere.
        let none = Rules::default();
        for name in [
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.1",
            "::1",
            "localhost",
        ] {
            let e = resolve_checked(&none, name, false).await.unwrap_err();
            assert!(e.to_string().contains("refused"), "{name}: {e}");
        }
        assert!(resolve_checked(&none, "8.8.8.8", false).await.is_ok());
        assert!(resolve_checked(&none, "8.8.8.8", true).await.is_err());
        let lo = rules(&["127.0.0.0/8", "::1/128"]);
        assert!(resolve_checked(&lo, "localhost", true).await.is_ok());
        assert!(resolve_checked(&lo, "169.254.169.254", false)
            .await
            .is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(1);
        let mut network = Network {
            allow: Vec::new(),
            ca_file: Some(dir.path().join("missing.pem")),
        };
        let e = Outbound::new(&network, t, t).unwrap_err();
        assert!(
            e.starts_with("[network] ca_file ") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        network.ca_file = Some(empty);
        let e = Outbound::new(&network, t, t).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
    }
}
