//! URLs, component by component: the PII engine does not look inside a URL (a URL is one
//! finding of its own), and a value there is often percent-encoded (`?email=ada%40example.com`),
//! so each component is decoded, handed to the caller's transform and, when that changed it,
//! encoded again. Components left alone keep their exact bytes.
//!
//! Hand-split rather than parsed with the `url` crate: `Url` re-serializes (and normalizes) the
//! whole URL, while the request must keep every byte it does not transform, and the pieces
//! needed here (user info, path segments, query pairs, fragment) are split on fixed delimiters.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes re-encoded in a transformed component: everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Rewrites the components of `url` through `transform` (given decoded text, returns the new
/// text when it changed it); `None` when nothing changed. The scheme and host are kept: they
/// say where the resource is, and a host name holds none of the entities scanned for.
pub(crate) fn rewrite_url<E>(
    url: &str,
    transform: &mut dyn FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let (rest, fragment) = split_once_keep(url, '#');
    let (rest, query) = split_once_keep(rest, '?');
    let mut out = String::with_capacity(url.len() + 16);
    let mut changed = false;
    let path = match rest.find("://") {
        Some(i) => {
            let after = &rest[i + 3..];
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            out.push_str(&rest[..i + 3]);
            match authority.rfind('@') {
                Some(at) => {
                    changed |= pieces(&authority[..at], ':', &mut out, transform)?;
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            }
            &after[end..]
        }
        // `mailto:`, `tel:` and the like: everything after the scheme is the value.
        None => match rest.split_once(':') {
            Some((scheme, value)) if is_scheme(scheme) => {
                out.push_str(scheme);
                out.push(':');
                value
            }
            _ => rest,
        },
    };
    changed |= pieces(path, '/', &mut out, transform)?;
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            changed |= pieces(pair, '=', &mut out, transform)?;
        }
    }
    if let Some(f) = fragment {
        out.push('#');
        changed |= pieces(f, '\0', &mut out, transform)?;
    }
    Ok(changed.then_some(out))
}

/// `(before, Some(after))` at the first `sep`, or `(s, None)`.
fn split_once_keep(s: &str, sep: char) -> (&str, Option<&str>) {
    match s.split_once(sep) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// An RFC 3986 scheme: a letter, then letters, digits, `+ - .`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// Transforms each `sep`-separated piece of `s` into `out`; true when any changed.
fn pieces<E>(
    s: &str,
    sep: char,
    out: &mut String,
    transform: &mut dyn FnMut(&str) -> Result<Option<String>, E>,
) -> Result<bool, E> {
    let mut changed = false;
    for (i, piece) in s.split(sep).enumerate() {
        if i > 0 {
            out.push(sep);
        }
        let decoded = percent_decode_str(piece).decode_utf8_lossy().into_owned();
        match transform(&decoded)? {
            Some(new) => {
                out.extend(utf8_percent_encode(&new, COMPONENT));
                changed = true;
            }
            None => out.push_str(piece),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(url: &str) -> Option<String> {
        rewrite_url::<()>(url, &mut |t| {
            Ok(t.contains("ada").then(|| t.replace("ada@example.com", "X")))
        })
        .unwrap()
    }

    #[test]
    fn each_component_is_decoded_transformed_and_encoded() {
        assert_eq!(
            redact("https://ada@example.com:pw@h.test:8/a/ada@example.com/b?e=ada%40example.com&k=v#ada@example.com").as_deref(),
            Some("https://X:pw@h.test:8/a/X/b?e=X&k=v#X")
        );
        assert_eq!(
            redact("mailto:ada@example.com").as_deref(),
            Some("mailto:X")
        );
        assert_eq!(redact("https://h.test/p?q=1+2&x=%20#f"), None);
    }
}
