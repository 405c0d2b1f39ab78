//! Telling link scanners and prefetchers from people, by what a request says of itself. The
//! third sign, many links of one newsletter opened at once by one client, is the counter's
//! (see `counter`).

/// Words in the user agents of mail security scanners, link previewers, crawlers and HTTP
/// libraries (compared in lower case). A browser's user agent holds none of them.
const SCANNER_AGENTS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scan",
    "preview",
    "prefetch",
    "proofpoint",
    "mimecast",
    "barracuda",
    "safelinks",
    "urldefense",
    "ironport",
    "fortiguard",
    "sophos",
    "zscaler",
    "symantec",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "checkpoint",
    "appriver",
    "microsoft office",
    "ms-office",
    "ms office",
    "outlook-ios-linkpreview",
    "facebookexternalhit",
    "whatsapp",
    "telegram",
    "discord",
    "slack",
    "skype",
    "headless",
    "phantomjs",
    "python",
    "curl",
    "wget",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "axios",
    "node-fetch",
    "undici",
    "aiohttp",
    "httpx",
    "ruby",
    "perl",
];

/// The words of `SCANNER_AGENTS`, looked for in one pass, in any case.
fn scanner_words() -> &'static aho_corasick::AhoCorasick {
    static WORDS: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(SCANNER_AGENTS)
            .expect("the scanner words are plain strings")
    })
}

/// Whether a request is a scanner's by its method and user agent: a HEAD request (a browser
/// following a link asks with GET), no user agent, or one naming a scanner or an HTTP library.
pub fn by_request(method_is_head: bool, user_agent: Option<&str>) -> bool {
    if method_is_head {
        return true;
    }
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    scanner_words().is_match(agent)
}

#[cfg(test)]
mod tests {
    use super::by_request;

    #[test]
    fn browsers_are_people_and_scanners_are_not() {
        for browser in [
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        ] {
            assert!(!by_request(false, Some(browser)), "{browser}");
            assert!(by_request(true, Some(browser)), "HEAD {browser}");
        }
        for scanner in [
            "Mozilla/5.0 (compatible; Googlebot/2.1)",
            "Microsoft Office Existence Discovery",
            "python-requests/2.32",
            "curl/8.5.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
            "Barracuda Sentinel (EE)",
            "facebookexternalhit/1.1",
            "  ",
        ] {
            assert!(by_request(false, Some(scanner)), "{scanner}");
        }
        assert!(by_request(false, None));
    }
}
