//! [`ClientAddr`]: the address a request came from, for per-client rate limits.
//!
//! The socket's peer is the client, unless the peer is a trusted proxy (`TRUSTED_PROXIES`): then
//! `X-Forwarded-For` is read from the right, each proxy having appended the address it saw, and the
//! first address that is not a trusted proxy is the client. Entries left of it were written by the
//! client itself, or by proxies nobody vouches for, so they are ignored: a client cannot choose its
//! own bucket by sending a made-up `X-Forwarded-For`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::{Cidr, Config};

/// The client's address, or `None` when the request did not come through a socket the server
/// accepted (a test or an embedder driving the router directly): per-address limits then do not
/// apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The rate-limit key for this client under `scope` (`register`, `login`), or `None` without an
    /// address: `{scope}-addr:{ip}`, which no per-username key (`login:{name}`, any text after the
    /// colon) can equal. An IPv6 client is keyed by its /64: one household or server usually holds
    /// a whole /64, so a per-address key would let it take a fresh bucket for every request.
    pub fn key(&self, scope: &str) -> Option<String> {
        self.0.map(|ip| match ip {
            IpAddr::V4(v4) => format!("{scope}-addr:{v4}"),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                format!("{scope}-addr:{}/64", std::net::Ipv6Addr::from(prefix))
            }
        })
    }
}

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<Config>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = Arc::<Config>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(peer.map(|peer| {
            client_ip(peer, &parts.headers, &config.trusted_proxies)
        })))
    }
}

/// The client behind `peer` (the socket's remote address), given the request's headers and the
/// trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    // Several header lines are one list, in order (RFC 9110 §5.3).
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        // A value that is not visible ASCII is unreadable, like an entry that is not an address.
        let Ok(value) = value.to_str() else {
            return client;
        };
        for entry in value.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
            // An entry a trusted hop wrote but that is not an address (`unknown`, garbage): that hop
            // is the nearest address known.
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !is_trusted(ip) {
                return ip;
            }
        }
    }
    // Every hop is a trusted proxy: the farthest one is as near the client as anyone can tell.
    client
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5678`, `[::1]:80`), as
/// some proxies write it.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches('"');
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).expect(s)).collect()
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect(s)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = cidrs(&["127.0.0.1"]);
        let h = headers(&["198.51.100.7"]);
        assert_eq!(client_ip(ip("203.0.113.9"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers(&[]), &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_peer_names_the_right_most_untrusted_entry() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        // nginx (127.0.0.1) appended the address it saw; the client sent a made-up one before it.
        let h = headers(&["1.1.1.1, 203.0.113.9"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // Two trusted proxies in a row are skipped; the spoofed left-most entries are never reached.
        let h = headers(&["6.6.6.6, 7.7.7.7, 203.0.113.9, 10.1.2.3"]);
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &trusted), ip("203.0.113.9"));
        // Several header lines are one list.
        let h = headers(&["6.6.6.6", "203.0.113.9", "10.1.2.3"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_without_forwarding_is_the_client() {
        let trusted = cidrs(&["127.0.0.1"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&[]), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&[" , "]), &trusted),
            ip("127.0.0.1")
        );
        // Only trusted hops: the farthest.
        let h = headers(&["127.0.0.1"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn an_unreadable_entry_stops_at_the_last_known_hop() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let h = headers(&["203.0.113.9, unknown, 10.0.0.5"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("10.0.0.5"));
        let h = headers(&["garbage"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_ports_and_mapped_addresses() {
        let trusted = cidrs(&["::1", "fc00::/7", "127.0.0.1"]);
        let h = headers(&["2001:db8::1, 2001:db8:aaaa::7"]);
        assert_eq!(client_ip(ip("::1"), &h, &trusted), ip("2001:db8:aaaa::7"));
        let h = headers(&["[2001:db8::5]:4431, fd00::2"]);
        assert_eq!(client_ip(ip("fd12::1"), &h, &trusted), ip("2001:db8::5"));
        let h = headers(&["203.0.113.9:5555"]);
        assert_eq!(client_ip(ip("::1"), &h, &trusted), ip("203.0.113.9"));
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; they match IPv4 ranges.
        let h = headers(&["::ffff:203.0.113.9"]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.1"), &headers(&["1.2.3.4"]), &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn keys_group_ipv6_by_its_64() {
        let a = ClientAddr(Some(ip("2001:db8:1:2:aaaa::1")));
        let b = ClientAddr(Some(ip("2001:db8:1:2:bbbb::9")));
        let c = ClientAddr(Some(ip("2001:db8:1:3::1")));
        assert_eq!(a.key("register"), b.key("register"));
        assert_ne!(a.key("register"), c.key("register"));
        assert_eq!(
            ClientAddr(Some(ip("203.0.113.9"))).key("login").as_deref(),
            Some("login-addr:203.0.113.9")
        );
        assert_eq!(ClientAddr(None).key("login"), None);
        // Apart from the per-username keys (`login:{name}`), whatever the name.
        assert!(!a.key("login").unwrap().starts_with("login:"));
    }
}
