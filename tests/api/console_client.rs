//! A small browser for the console's tests: it keeps cookies as a browser does (by name, for
//! the console's path), never follows redirects, and reads the CSRF token out of a page.

use std::collections::BTreeMap;

use crate::helpers::{TestApp, STAFF_PASSWORD};

/// The console's path in tests (the default).
pub const CONSOLE: &str = "/admin";

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `name="csrf"` field on the page.
    pub fn csrf(&self) -> String {
        field_value(&self.body, "csrf").expect("a CSRF field on the page")
    }

    /// The `Set-Cookie` line for `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// The value attribute of the first input named `name` (`<input … name="x" value="…">`).
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')?;
    Some(
        tag[v..v + end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x2F;", "/")
            .replace("&quot;", "\""),
    )
}

pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    /// Sent as Accept-Language.
    pub language: &'static str,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
            language: "en",
        }
    }

    /// The Cookie header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for line in headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = line.contains("Max-Age=0") || value.is_empty();
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = res.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    /// GET a console path (`/account`).
    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .app
            .client
            .get(self.app.url(&format!("{CONSOLE}{path}")))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.language)
            .send()
            .await
            .unwrap();
        self.keep(res).await
    }

    /// POST a form to a console path, exactly as given (no CSRF token added).
    pub async fn post_raw(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .app
            .client
            .post(self.app.url(&format!("{CONSOLE}{path}")))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.language)
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(res).await
    }

    /// POST a form with the session's CSRF token, read from `from` (a page path).
    pub async fn post(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields).await
    }

    /// Signs in as `email` with the tests' staff password; panics unless it works.
    pub async fn sign_in(&mut self, email: &str) -> Page {
        let page = self.try_sign_in(email, STAFF_PASSWORD).await;
        assert_eq!(page.status, 303, "signing in as {email}: {}", page.body);
        page
    }

    pub async fn try_sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/sign-in").await;
        let csrf = form.csrf();
        self.post_raw(
            "/sign-in",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }
}

/// A browser signed in as a new member of `role`.
pub async fn signed_in(app: &TestApp, role: enlace::auth::Role) -> Browser<'_> {
    let email = format!("{}@console.example.org", role.as_str());
    app.add_staff(&email, role);
    let mut browser = Browser::new(app);
    browser.sign_in(&email).await;
    browser
}
