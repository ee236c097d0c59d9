//! The web console over plain HTTP, as a browser without script would use it: a session
//! cookie kept by hand, forms posted url-encoded, redirects not followed (tests look at them).

use std::time::Duration;

use anyhow::{Context, Result};

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The CSRF token of the first form on `page`.
pub fn csrf_of(page: &str) -> Option<String> {
    let start = page.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_owned())
}

/// One browser's worth of console session.
pub struct ConsoleClient {
    pub base: String,
    pub http: reqwest::Client,
    /// `name=value` of the session cookie, once signed in.
    pub cookie: Option<String>,
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `Location` of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }
}

impl ConsoleClient {
    /// A client of the console at `base`, not signed in.
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            base: base.to_owned(),
            http,
            cookie: None,
        })
    }

    async fn answer(resp: reqwest::Response) -> Result<Answer> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `GET path` with the session cookie and `extra` headers.
    pub async fn get_with(&self, path: &str, extra: &[(&str, &str)]) -> Result<Answer> {
        let mut rb = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        Self::answer(rb.send().await?).await
    }

    /// `GET path` with the session cookie.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.get_with(path, &[]).await
    }

    /// `POST path` of a url-encoded form, with the session cookie and `extra` headers.
    pub async fn post_with(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Result<Answer> {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs));
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        Self::answer(rb.send().await?).await
    }

    /// `POST path` of a url-encoded form.
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Result<Answer> {
        self.post_with(path, pairs, &[]).await
    }

    /// Signs in with `user` (empty for a token) and `secret`; keeps the cookie on success.
    pub async fn login(&mut self, user: &str, secret: &str) -> Result<Answer> {
        let a = self
            .post("/login", &[("user", user), ("secret", secret)])
            .await?;
        if a.status == 303
            && let Some(set) = a.headers.get("set-cookie")
        {
            let set = set.to_str()?;
            self.cookie = Some(set.split(';').next().context("cookie")?.to_owned());
        }
        Ok(a)
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&self, path: &str) -> Result<String> {
        let page = self.get(path).await?;
        csrf_of(&page.body).with_context(|| format!("no CSRF token on {path}"))
    }
}
