//! Where a webhook may be delivered: https URLs whose host is a public address. Checked when an
//! endpoint is saved (literal addresses and what a name resolves to) and again at every
//! delivery through the client's own resolver, so a name that later resolves to a private
//! address (DNS rebinding) is not reached either. ENLACE_WEBHOOK_ALLOW_PRIVATE lifts both checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

const MAX_URL_CHARS: usize = 2000;

/// Whether delivering to this address could reach the service's own network: loopback,
/// private, link-local (the cloud metadata address among them), shared (CGNAT), unspecified,
/// multicast, broadcast and reserved ranges, also when written as an IPv6 form of an IPv4 one.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4
        // address that decides where the packet really goes.
        || (s[..6] == [0; 6] && forbidden_v4(embedded(s[6], s[7])))
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && forbidden_v4(embedded(s[6], s[7])))
        // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): a network's own translator, which may
        // reach anything inside it.
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
        || (s[0] == 0x2002 && forbidden_v4(embedded(s[1], s[2])))
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

const REFUSED: &str =
    "points to a private, loopback or link-local address, which webhooks may not reach";

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
                return Err(
                    "the host resolves only to private, loopback or link-local addresses".into(),
                );
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
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "2002:a00:1::",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
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
