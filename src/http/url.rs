//! Reading a hub URL: scheme, host and port, and nothing else. Pure text work; it never dials.

use anyhow::{bail, Result};

/// The parts of a hub URL a connection needs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Parts {
    /// `host:port`, the port filled in when the URL gives none.
    pub authority: String,
    pub https: bool,
    /// The port filled in (80 or 443), if the URL gave none.
    pub implied_port: Option<u16>,
}

/// Splits `http://HOST:PORT` (or `https://`, or a bare `HOST:PORT`). The scheme is matched
/// without regard to case, as RFC 3986 says. A query, fragment or user info is refused here:
/// dropped silently or taken for part of the host, it would only surface later as a hub that
/// cannot be reached, on a port the user never meant.
pub(super) fn split(url: &str) -> Result<Parts> {
    let (rest, https) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, false),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, true),
        Some(_) => bail!("hub URL {url}: only http:// and https:// URLs are supported"),
        None => (url, false),
    };
    if rest.contains(['?', '#', '@']) {
        bail!("hub URL {url}: a hub URL has no query, fragment or user info: http://HOST:PORT");
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("hub URL {url}: expected http://HOST:PORT");
    }
    let implied_port = (!has_port(authority)).then_some(if https { 443 } else { 80 });
    let authority = match implied_port {
        Some(port) => format!("{authority}:{port}"),
        None => authority.to_string(),
    };
    Ok(Parts {
        authority,
        https,
        implied_port,
    })
}

fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port; `[::1]:5000` ends in `]:digits`.
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(url: &str) -> String {
        split(url).unwrap().authority
    }

    fn refusal(url: &str) -> String {
        format!("{:#}", split(url).unwrap_err())
    }

    #[test]
    fn parses_hub_urls() {
        assert_eq!(authority("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(authority("localhost:7"), "localhost:7");
        assert_eq!(authority("http://hub"), "hub:80");
        assert_eq!(authority("http://[::1]:5000"), "[::1]:5000");
        assert_eq!(authority("http://[::1]"), "[::1]:80");
        assert!(split("ftp://x").is_err());
        assert_eq!(authority("https://hub"), "hub:443");
        assert!(split("http://").is_err());
        assert!(split("http://h:1/path").is_err());
    }

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        let plain = split("HTTP://127.0.0.1:5000").unwrap();
        assert_eq!(
            (plain.authority.as_str(), plain.https),
            ("127.0.0.1:5000", false)
        );
        let tls = split("Https://hub").unwrap();
        assert_eq!((tls.authority.as_str(), tls.https), ("hub:443", true));
        assert_eq!(
            refusal("FTP://x"),
            "hub URL FTP://x: only http:// and https:// URLs are supported"
        );
    }

    #[test]
    fn a_query_fragment_or_user_info_is_refused() {
        for url in [
            "http://127.0.0.1:60481?x=1",
            "http://127.0.0.1:60481/?x=1",
            "http://127.0.0.1:60481#frag",
            "http://u:p@127.0.0.1:60481",
            "u@hub:5000",
        ] {
            assert_eq!(
                refusal(url),
                format!(
                    "hub URL {url}: a hub URL has no query, fragment or user info: \
                     http://HOST:PORT"
                )
            );
        }
    }
}
