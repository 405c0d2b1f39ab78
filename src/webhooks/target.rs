//! Where a webhook may be delivered: https URLs whose host is a public address. Checked when an
//! endpoint is saved (literal addresses and what a name resolves to) and again at every
//! delivery through the client's own resolver, so a name that later resolves to a private
//! address (DNS rebinding) is not reached either. ENLACE_WEBHOOK_ALLOW_PRIVATE lifts both checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

const MAX_URL_CHARS: usize = 2000;

/// Every special-purpose block of the IANA IPv4 Special-Purpose Address Registry (whether or
/// not it is marked globally reachable: none of them is where a webhook receiver lives), with
/// multicast and the reserved block. Registry as of 2026-12.
const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata among them)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // direct delegation AS112
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and the limited broadcast address
];

/// Every block of the IANA IPv6 Special-Purpose Address Registry, with multicast, the
/// deprecated site-local block and the IPv4-compatible block. Registry as of 2026-12.
const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96), // IPv4-mapped
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96), // IPv4/IPv6 translation
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use translation
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64), // dummy prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo…)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // direct delegation AS112
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

/// Whether this address is in a special-purpose block (see the tables above): loopback,
/// private, link-local, shared, documentation, benchmarking, translation and tunnelling
/// prefixes, multicast, reserved. Webhooks go only to ordinary global unicast addresses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    fn within(ip: u128, base: u128, prefix: u8, bits: u32) -> bool {
        let shift = bits - u32::from(prefix);
        ip.checked_shr(shift) == base.checked_shr(shift)
    }
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4.iter().any(|(base, prefix)| {
            within(u32::from(v4).into(), u32::from(*base).into(), *prefix, 32)
        }),
        IpAddr::V6(v6) => SPECIAL_V6
            .iter()
            .any(|(base, prefix)| within(v6.into(), (*base).into(), *prefix, 128)),
    }
}

/// Parses and checks a URL's form: http(s) (https unless private targets are allowed), a host,
/// no credentials, no fragment. Returns the reason when it is not acceptable.
pub fn parse_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "must be a URL of at most {MAX_URL_CHARS} characters"
        ));
    }
    let url = Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must be an https URL".into()),
        _ => return Err("must be an https URL".into()),
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry credentials; receivers verify the webhook-signature header instead"
                .into(),
        );
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(url)
}

/// The address a URL names literally, if it does.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

pub const REFUSED: &str = "points to a private, loopback, link-local or other special-purpose \
                       address, which webhooks may not reach";

/// The full check made when an endpoint is saved: form, then where the host leads.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = parse_url(raw, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(ip) = literal_ip(&url) {
        return if is_forbidden(ip) {
            Err(REFUSED.into())
        } else {
            Ok(url)
        };
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let resolved = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => {
            return Err(format!("names a host ({host}) that could not be resolved"))
        }
    };
    if addrs.is_empty() {
        return Err(format!("names a host ({host}) that could not be resolved"));
    }
    if addrs.iter().any(|a| is_forbidden(a.ip())) {
        return Err(REFUSED.into());
    }
    Ok(url)
}

/// The delivery client's resolver: the system's, minus every forbidden address.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the host resolves only to special-purpose addresses".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_forbidden_in_every_spelling() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.9",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:8.8.8.8",
            "::ffff:0:0",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "100:0:0:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2002:a00:1::",
            "2002:808:808::1",
            "2620:4f:8000::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:200::1",
            "2620:4f:8001::1",
            "2a00:1450:4001::200e",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_naming_special_addresses_are_refused_in_every_spelling() {
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[0:0:0:0:0:FFFF:A9FE:A9FE]/",
            "https://[100::1]/",
            "https://[2001::1]/",
            "https://[2001:0000:0000::0001]/",
            "https://169.254.169.254.:443/",
            "https://[::]/",
            "https://0/",
        ] {
            let parsed = parse_url(url, false).unwrap_or_else(|e| panic!("{url}: {e}"));
            let ip = literal_ip(&parsed).unwrap_or_else(|| panic!("{url} names an address"));
            assert!(is_forbidden(ip), "{url} -> {ip}");
        }
    }

    #[test]
    fn only_plain_https_urls_pass_by_default() {
        assert!(parse_url("https://hooks.example.org/enlace?k=1", false).is_ok());
        assert!(parse_url("http://hooks.example.org/", false).is_err());
        assert!(parse_url("http://hooks.example.org/", true).is_ok());
        assert!(parse_url("ftp://hooks.example.org/", true).is_err());
        assert!(parse_url("https://user:pw@hooks.example.org/", false).is_err());
        assert!(parse_url("https://hooks.example.org/#x", false).is_err());
        assert!(parse_url("not a url", false).is_err());
    }
}
