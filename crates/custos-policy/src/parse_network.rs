//! The `[network]` table: address ranges that URLs given at run time may reach although they
//! are not public, and extra certificate authorities to trust for them.

use std::collections::BTreeSet;
use std::str::FromStr;

use ipnet::IpNet;
use toml_edit::TableLike;

use super::{fields, string_array, string_field, Cx, Span};
use crate::model::Network;

const NETWORK_KEYS: &[&str] = &["allow", "ca_file"];

/// Checks `[network]`: every `allow` entry a canonical CIDR range (`10.0.0.0/8`, `fd00::/8`),
/// `ca_file` a non-empty path.
pub(super) fn check_network(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> Network {
    let f = fields(cx, table, NETWORK_KEYS, at, "[network]", &BTreeSet::new());
    let mut allow = Vec::new();
    if let Some(entries) = f.get("allow").and_then(|field| string_array(cx, field)) {
        for (text, span) in entries {
            if let Some(net) = check_range(cx, &text, &span) {
                allow.push(net);
            }
        }
    }
    let ca_file = f
        .get("ca_file")
        .and_then(|field| string_field(cx, field))
        .and_then(|(path, span)| {
            if path.trim().is_empty() {
                cx.error(
                    &span,
                    "`ca_file` must name a file",
                    "e.g. ca_file = \"/etc/custos/internal-ca.pem\" (PEM certificates)".to_string(),
                );
                return None;
            }
            Some(std::path::PathBuf::from(path))
        });
    Network { allow, ca_file }
}

/// One `allow` entry; reports and skips anything but a canonical range that is not everything.
fn check_range(cx: &mut Cx<'_>, text: &str, span: &Span) -> Option<IpNet> {
    let Ok(net) = IpNet::from_str(text) else {
        let hint = match std::net::IpAddr::from_str(text) {
            Ok(ip) => format!(
                "write a range with a prefix length, e.g. \"{ip}/{}\" for this one address",
                if ip.is_ipv4() { 32 } else { 128 }
            ),
            Err(_) => "write CIDR ranges such as \"127.0.0.0/8\" or \"fd00::/8\"".to_string(),
        };
        cx.error(
            span,
            format!("{text:?} in `allow` is not a CIDR range"),
            hint,
        );
        return None;
    };
    if net.prefix_len() == 0 {
        cx.error(
            span,
            format!("{text:?} in `allow` lists every address"),
            "name the internal ranges run-time URLs may reach, e.g. \"10.1.0.0/16\"".to_string(),
        );
        return None;
    }
    if net.trunc() != net {
        cx.error(
            span,
            format!("{text:?} in `allow` has bits set after the prefix"),
            format!("did you mean \"{}\"?", net.trunc()),
        );
        return None;
    }
    Some(net)
}
