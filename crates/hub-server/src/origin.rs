//! The origins that links name (LFS redirects, next-page links, the Xet
//! token link and CAS URL). They are built from what the client used to
//! reach us, not from the address we are bound to: a server bound to
//! `0.0.0.0` must not send a client on the LAN to `0.0.0.0` or `127.0.0.1`.
//! In order: the `--public-url` given at start, the request's `Host` (its
//! syntax checked, so nothing can be smuggled into a header), the local
//! address the connection arrived on.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};

/// A public URL the server was told clients use (`http://host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Why a `--public-url` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("public URL {0:?}: expected http(s)://HOST[:PORT] with no path")]
pub struct PublicUrlError(String);

impl std::str::FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PublicUrlError(text.to_string());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_authority(authority).ok_or_else(bad)?;
        Ok(PublicUrl {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}://{}:{port}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// `host[:port]` with host a DNS name, an IPv4 address or a bracketed IPv6
/// address; `None` for anything else (including an empty host).
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let host = &authority[..inside.len() + 2];
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[')
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    name_ok.then_some((host, port))
}

/// The request's `Host`, if it is a well-formed `host[:port]`.
/// `Err(())`: a Host header is there but malformed (answer 400).
pub(crate) fn request_host(headers: &HeaderMap) -> Result<Option<(String, Option<u16>)>, ()> {
    let Some(value) = headers.get(header::HOST) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    let (host, port) = split_authority(text).ok_or(())?;
    Ok(Some((host.to_string(), port)))
}

/// Where links point, for one request.
#[derive(Debug, Clone)]
pub(crate) struct Bases {
    /// The Hub origin as the client knows it, e.g. `http://mirror:8090`.
    pub(crate) hub: String,
    /// The CDN origin: the same host, the CDN's port.
    pub(crate) cdn: String,
    /// The host (no port) other origins of this server go under.
    host: String,
    scheme: String,
}

impl Bases {
    /// `scheme://host:port` for another origin of this server.
    pub(crate) fn other(&self, port: u16) -> String {
        format!("{}://{}:{port}", self.scheme, self.host)
    }
}

/// How the server builds its links.
#[derive(Debug, Clone)]
pub(crate) struct Origins {
    pub(crate) public: Option<PublicUrl>,
    pub(crate) hub: SocketAddr,
    pub(crate) cdn_port: u16,
}

impl Origins {
    /// The bases for a request with these headers that arrived on `local`.
    /// `Err(())`: its Host header is malformed.
    pub(crate) fn bases(
        &self,
        headers: &HeaderMap,
        local: Option<SocketAddr>,
    ) -> Result<Bases, ()> {
        let (scheme, host, port) = if let Some(public) = &self.public {
            (public.scheme.clone(), public.host.clone(), public.port)
        } else if let Some((host, port)) = request_host(headers)? {
            ("http".to_string(), host, port)
        } else {
            let addr = local.unwrap_or(self.hub);
            let ip = if addr.ip().is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            ("http".to_string(), host, Some(addr.port()))
        };
        let hub = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let bases = Bases {
            hub,
            cdn: String::new(),
            host,
            scheme: "http".to_string(),
        };
        // Other origins speak plain HTTP on their own ports, whatever
        // scheme a proxy in front of the Hub origin adds.
        let cdn = bases.other(self.cdn_port);
        Ok(Bases { cdn, ..bases })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked() {
        for good in [
            "mirror",
            "mirror.lan:8090",
            "127.0.0.2:1",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(split_authority(good).is_some(), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "evil.com/x",
            "h:99999",
            "h:",
            "[::1",
            "[zz]:1",
            "a..b",
            "x>; rel=\"next\"",
            "user@host",
        ] {
            assert!(split_authority(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn public_urls_parse() {
        let url: PublicUrl = "http://mirror.lan:8090/".parse().unwrap();
        assert_eq!(url.to_string(), "http://mirror.lan:8090");
        assert!("ftp://x".parse::<PublicUrl>().is_err());
        assert!("http://x/path".parse::<PublicUrl>().is_err());
    }
}
