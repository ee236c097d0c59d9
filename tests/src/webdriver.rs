//! A small W3C WebDriver client for the console's browser tests: Debian's headless Chromium
//! driven by its `chromedriver` on a loopback port. WebDriver is JSON over HTTP, so the
//! workspace's reqwest does it in a page of code without a second HTTP client stack.
//!
//! [`Browser::start`] returns `None` (a "skipped" line) when `chromium` or `chromedriver` is
//! missing, and fails under `CI=true` (testkit's rule). Every command is bounded in time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session with a
    /// fresh profile; `None` when the browser is not installed (outside CI).
    pub async fn start() -> Result<Option<Self>> {
        let Some(driver_bin) = testkit::binary("chromedriver") else {
            return Ok(None);
        };
        let Some(chromium) = testkit::binary("chromium") else {
            return Ok(None);
        };
        let port = testkit::free_port()?;
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir()?;
        let mut browser = Self {
            driver,
            http,
            session: String::new(),
            base,
            _profile: profile,
        };
        // Bounded wait for chromedriver to listen.
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("chromedriver did not start");
        }
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1200,900".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let r = browser
            .command(reqwest::Method::POST, "/session", Some(caps))
            .await?;
        browser.session = r["sessionId"]
            .as_str()
            .context("no sessionId in the new session's answer")?
            .to_owned();
        Ok(Some(browser))
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let rb = self.http.request(method, &url);
        let rb = match body {
            Some(b) => rb.json(&b),
            None => rb,
        };
        let resp = rb
            .send()
            .await
            .with_context(|| format!("WebDriver {path}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.context("WebDriver answer")?;
        if !status.is_success() {
            bail!("WebDriver {path}: {status} {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String> {
        let v = self.command(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Waits (bounded: 30 s) until the current URL ends with `suffix`, as after a click that
    /// navigates (WebDriver may answer the click before the next page has loaded); the URL.
    pub async fn wait_for_url(&self, suffix: &str) -> Result<String> {
        let mut url = String::new();
        for _ in 0..300 {
            url = self.url().await?;
            if url.ends_with(suffix) {
                // The new document is in place; wait for it to finish loading.
                for _ in 0..100 {
                    let v = self
                        .command(
                            reqwest::Method::POST,
                            "/execute/sync",
                            Some(json!({"script": "return document.readyState", "args": []})),
                        )
                        .await?;
                    if v == "complete" {
                        return Ok(url);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                return Ok(url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("still at {url}, expected …{suffix}")
    }

    /// The page's HTML as the browser holds it.
    pub async fn source(&self) -> Result<String> {
        let v = self.command(reqwest::Method::GET, "/source", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The element `css` selects (the first).
    pub async fn find(&self, css: &str) -> Result<String> {
        let v = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("no element {css}"))?;
        Ok(v[ELEMENT]
            .as_str()
            .with_context(|| format!("no element reference in {v}"))?
            .to_owned())
    }

    /// How many elements `css` selects.
    pub async fn count(&self, css: &str) -> Result<usize> {
        let v = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array().map_or(0, Vec::len))
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> Result<String> {
        let e = self.find(css).await?;
        let v = self
            .command(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    /// Empties the input or textarea `css` selects.
    pub async fn clear(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Presses Tab `n` times and returns the id of the element that then has the focus.
    pub async fn tab(&self, n: usize) -> Result<String> {
        let keys: Vec<Value> = (0..n)
            .flat_map(|_| {
                [
                    json!({"type": "keyDown", "value": "\u{E004}"}),
                    json!({"type": "keyUp", "value": "\u{E004}"}),
                ]
            })
            .collect();
        self.command(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": keys}]})),
        )
        .await?;
        let v = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "return document.activeElement ? document.activeElement.id : ''", "args": []})),
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("screenshot base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Ends the session (chromedriver stops on drop).
    pub async fn quit(self) {
        let _ = self.command(reqwest::Method::DELETE, "", None).await;
    }
}
