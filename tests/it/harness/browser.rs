//! Headless Chromium through chromedriver and fantoccini (recipe: shared docs STACK.md §5).
//!
//! One chromedriver per test on a free port, in its own process group so that Chromium dies with
//! it; a fresh profile directory removed afterwards. Tests skip (with a message on the terminal)
//! only when the binaries are absent, and fail instead under `CI=true`; CI installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a test waits for.
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// A browser session; chromedriver (and with it Chromium) is killed on drop.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
    name: String,
    webdriver: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns `None` (after saying why)
    /// when chromedriver or Chromium is not installed. `name` prefixes the screenshot files.
    pub async fn launch(name: &str) -> Option<Browser> {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(binary).exists()
                && !super::peers::available(Some(format!(
                    "{binary} is not installed (apt-get install -y chromium chromium-driver); \
                     the browser test did not run"
                )))
            {
                return None;
            }
        }
        let port = free_port();
        let log = std::fs::File::create(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromedriver-{name}.log")),
        )
        .expect("chromedriver log file");
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                // Its own process group: killing the group also ends Chromium and its helpers.
                .process_group(0)
                .spawn()
                .expect("spawn chromedriver")
        };
        let profile = std::env::temp_dir().join(format!(
            "chrome-profile-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).expect("profile directory");
        let mut browser = Browser {
            client: None,
            driver,
            profile,
            name: name.to_owned(),
            webdriver: format!("http://127.0.0.1:{port}"),
        };
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1024,768",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await;
            match attempt {
                Ok(client) => {
                    browser.client = Some(client);
                    return Some(browser);
                }
                Err(err) if Instant::now() > deadline => {
                    panic!("no WebDriver session from chromedriver on port {port}: {err}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.expect("navigate");
    }

    /// Waits until `css` matches an element on the current page and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client()
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(err) => panic!("{css} did not appear: {err}\n{}", self.describe().await),
        }
    }

    /// Waits until one of `selectors` matches and returns which one (the first in the list wins).
    pub async fn find_any<'a>(&self, selectors: &[&'a str]) -> &'a str {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            for css in selectors {
                if let Ok(found) = self.client().find_all(Locator::Css(css)).await
                    && !found.is_empty()
                {
                    return css;
                }
            }
            if Instant::now() > deadline {
                panic!("none of {selectors:?} appeared\n{}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element `css` matches (waiting for it). A page that navigates between
    /// finding the element and reading it (a stale element) is read again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(err) if Instant::now() > deadline => panic!("text of {css}: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the element `css` matches holds `needle` in its text (an element of the page
    /// before a navigation, e.g. an earlier action's outcome, does not count) and returns its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "{css} never said {needle:?}; last: {text:?}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field `css` matches.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .expect("type into field");
    }

    /// Clicks the element `css` matches.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// The current page's title.
    pub async fn title(&self) -> String {
        self.client().title().await.expect("title")
    }

    /// The current URL.
    pub async fn url(&self) -> url::Url {
        self.client().current_url().await.expect("current url")
    }

    /// Makes pages see `prefers-color-scheme: dark` (or light again with `false`), through
    /// chromedriver's DevTools passthrough (`Emulation.setEmulatedMedia`).
    pub async fn prefer_dark(&self, dark: bool) {
        let session = self
            .client()
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let value = if dark { "dark" } else { "light" };
        let response = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.webdriver
            ))
            .json(&serde_json::json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": { "features": [{ "name": "prefers-color-scheme", "value": value }] },
            }))
            .send()
            .await
            .expect("cdp passthrough");
        assert!(
            response.status().is_success(),
            "Emulation.setEmulatedMedia: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Elements sticking out of the viewport's right edge (tag, id, classes, left..right),
    /// and whether the page as a whole scrolls sideways. Only visible elements count; an element
    /// inside a horizontally scrolling container (the phone nav) counts as that container, and one
    /// clipped to nothing (visually hidden, for screen readers) not at all.
    pub async fn overflow(&self) -> serde_json::Value {
        self.eval(
            "const width = window.innerWidth;
             const scrollsAside = (e) => {
               for (let p = e.parentElement; p; p = p.parentElement) {
                 const st = getComputedStyle(p);
                 if (st.overflowX === 'auto' || st.overflowX === 'scroll') return true;
                 // Visually hidden (clipped to nothing) for screen readers only.
                 if (st.position === 'absolute' && st.clip && st.clip !== 'auto') return true;
               }
               return false;
             };
             const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
               (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/ +/).join('.') : '');
             const wide = [];
             for (const e of document.body.querySelectorAll('*')) {
               const r = e.getBoundingClientRect();
               if (r.width === 0 || r.height === 0 || scrollsAside(e)) continue;
               if (r.right > width + 1) wide.push(name(e) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
             }
             return { page: document.documentElement.scrollWidth <= width, width, wide: wide.slice(0, 10) };",
        )
        .await
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client()
            .execute(script, Vec::new())
            .await
            .expect("execute script")
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>-<step>.png`, prints and returns
    /// the path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{}-{step}.png", self.name));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the WebDriver session (Chromium exits); drop then stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }

    async fn describe(&self) -> String {
        let url = self.client().current_url().await.map(|u| u.to_string());
        let source = self.client().source().await.unwrap_or_default();
        format!("at {url:?}:\n{source}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (`process_group(0)`): ends it, Chromium and helpers.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `target/screenshots` (next to the test binaries' `tmp`, so a custom target dir is honoured).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
