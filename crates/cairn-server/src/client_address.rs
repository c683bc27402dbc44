//! `sourceIPAddress`: the connection's peer, unless that peer is a configured trusted proxy,
//! in which case `X-Forwarded-For` is read from the right, past every trusted proxy, to the
//! first address no trusted proxy vouches for. A client cannot choose its recorded address by
//! sending the header itself: entries left of an untrusted hop are never believed.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// An address or a CIDR block (`10.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(address)));
        }
        text.parse::<IpNet>()
            .map(|network| Self(network.trunc()))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))
    }
}

impl TrustedProxy {
    fn contains(&self, address: IpAddr) -> bool {
        // A v4 peer may arrive on a dual-stack socket as a v4-mapped v6 address.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&address)
    }
}

/// The address to record for a request from `peer`.
pub fn source_ip_address(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|proxy| proxy.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) => {
                client = address;
                if !is_trusted(address) {
                    break;
                }
            }
            // A hop that is not an address ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<TrustedProxy> = ["10.0.0.0/8", "127.0.0.1"]
            .iter()
            .map(|text| text.parse().unwrap())
            .collect();
        let headers = forwarded("203.0.113.9, 198.51.100.7, 10.1.2.3");
        assert_eq!(
            source_ip_address(ip("127.0.0.1"), &headers, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            source_ip_address(ip("192.0.2.1"), &headers, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            source_ip_address(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            source_ip_address(ip("127.0.0.1"), &forwarded("junk, 10.0.0.2"), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            source_ip_address(ip("::ffff:127.0.0.1"), &forwarded("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
        assert!(source_ip_address(ip("192.0.2.1"), &forwarded("1.2.3.4"), &[]) == ip("192.0.2.1"));
    }

    #[test]
    fn proxies_parse_as_addresses_or_blocks() {
        assert!("10.0.0.0/8".parse::<TrustedProxy>().is_ok());
        assert!("::1".parse::<TrustedProxy>().is_ok());
        assert!("fd00::/8".parse::<TrustedProxy>().is_ok());
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("example.com".parse::<TrustedProxy>().is_err());
        let everything: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("8.8.8.8")));
    }
}
