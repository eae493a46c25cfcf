//! Test support shared by the portal's browser tests and the operator's standalone browser test
//! (feature `testing`, never in the shipped binary): real Chromium driven through chromedriver,
//! both started on loopback by the test.

use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromium-driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long [`Browser::find`] waits for an element.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A headless Chromium session. chromedriver leads a process group of its own, which Chromium joins;
/// the whole group is killed when this is closed or dropped, so a test that fails leaves no browser.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    ///
    /// # Panics
    /// When Chromium or chromedriver is not installed (saying how to install them), or does not start.
    pub async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser tests need Debian's Chromium and its driver; \
                 install them with `apt-get install chromium chromium-driver` (or scripts/install-test-deps)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on 127.0.0.1:{port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1440,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(FIND_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Runs `act` on the element matching `css`, finding it again while the page replaces it (the
    /// runs panel swaps its HTML as it refreshes, so an element found a moment ago can be stale).
    async fn on_element<T>(
        &self,
        css: &str,
        what: &str,
        act: impl AsyncFn(fantoccini::elements::Element) -> Result<T, fantoccini::error::CmdError>,
    ) -> T {
        let deadline = Instant::now() + FIND_TIMEOUT;
        loop {
            let error = match act(self.find(css).await).await {
                Ok(value) => return value,
                Err(e) => e,
            };
            assert!(Instant::now() < deadline, "cannot {what} {css}: {error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.on_element(css, "read the text of", async |el| el.text().await)
            .await
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.on_element(css, "read an attribute of", async |el| el.attr(name).await)
            .await
    }

    /// A computed CSS property of the first element matching `css`.
    pub async fn css_value(&self, css: &str, name: &str) -> String {
        self.on_element(css, "read the style of", async |el| el.css_value(name).await)
            .await
    }

    /// A DOM property (e.g. an input's current `value`) of the first element matching `css`.
    pub async fn prop(&self, css: &str, name: &str) -> Option<String> {
        self.on_element(css, "read a property of", async |el| el.prop(name).await)
            .await
    }

    /// Polls until the element's text satisfies `ok` (the page may update itself meanwhile).
    pub async fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {css}; last text: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Replaces the value of the input matching `css` by typing `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        self.on_element(css, "type into", async |el| {
            el.clear().await?;
            el.send_keys(value).await
        })
        .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", async |el| el.click().await).await;
    }

    /// Logs in on `base`'s login page with a Kubernetes bearer `token` and waits for the jobs list.
    pub async fn log_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("#token", token).await;
        self.click("#login-submit").await;
        self.find("#jobs-table").await;
    }

    /// Saves a screenshot `shot` to look at, then fails with the cells of the table matching
    /// `table` that something covers ([`Browser::covered_cells`]).
    pub async fn assert_nothing_covered(&self, table: &str, shot: &str) {
        let path = self.screenshot(shot).await;
        let covered = self.covered_cells(table).await;
        assert!(covered.is_empty(), "{shot} ({}): {covered:#?}", path.display());
    }

    /// Saves a screenshot outside the repository (`$TMPDIR/jtp-dashboard-NAME.png`) and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = std::env::temp_dir().join(format!("jtp-dashboard-{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Resizes the window so the page's viewport is `width` × `height` CSS pixels.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let inner = |c: &Client| {
            let c = c.clone();
            async move {
                let v = c
                    .execute("return [window.innerWidth, window.innerHeight];", vec![])
                    .await
                    .expect("the viewport's size");
                let n = |i: usize| u32::try_from(v[i].as_u64().unwrap_or(0)).unwrap_or(0);
                (n(0), n(1))
            }
        };
        self.client
            .set_window_size(width, height)
            .await
            .expect("a window size");
        let (w, h) = inner(&self.client).await;
        if (w, h) != (width, height) {
            // The window's frame takes some room: grow the window by the difference.
            self.client
                .set_window_size(width + width.saturating_sub(w), height + height.saturating_sub(h))
                .await
                .expect("a window size");
        }
        let (w, _) = inner(&self.client).await;
        assert_eq!(w, width, "the viewport did not take the width asked for");
    }

    /// Whether the element matching `css` is shown (not inside a closed `<details>`, not hidden).
    pub async fn is_visible(&self, css: &str) -> bool {
        let script = format!("return document.querySelector({css:?}).checkVisibility();");
        self.eval(&script).await == serde_json::Value::Bool(true)
    }

    /// Asserts that the page does not scroll sideways at a viewport `width` px wide.
    pub async fn assert_fits_width(&self, width: u32) {
        let page = self.eval("return document.documentElement.scrollWidth;").await;
        assert!(
            page.as_f64().unwrap_or(f64::MAX) <= f64::from(width),
            "the page is wider than {width} px: {page}"
        );
    }

    /// Runs `script` (a function body that `return`s JSON) in the page.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Every visible cell of the table matching `table` that something covers or pushes out of
    /// sight: cells under the panel (`#panel`, when open), cells beyond the viewport's right edge,
    /// a table that scrolls sideways, cells whose own content overflows them, and boxes inside a
    /// cell whose text runs out of them over what is beside them. Empty when
    /// every column can be read; measured with the browser's own layout boxes.
    pub async fn covered_cells(&self, table: &str) -> Vec<String> {
        let script = format!(
            r#"
            const table = document.querySelector({table:?});
            if (!table) return ["no table {table}"];
            const panel = document.getElementById("panel");
            const p = panel && !panel.contains(table) ? panel.getBoundingClientRect() : null;
            const vw = document.documentElement.clientWidth;
            const out = [];
            const cells = Array.from(table.querySelectorAll("th, td"))
              .filter(c => c.offsetParent !== null && c.getBoundingClientRect().width > 1);
            for (const c of cells) {{
              const r = c.getBoundingClientRect();
              const name = (c.getAttribute("data-label") || c.textContent.trim()).slice(0, 40);
              const beside = p && r.top < p.bottom && r.bottom > p.top;
              if (beside && r.right > p.left + 0.5 && r.left < p.right) out.push(name + ": under the panel (" + r.right + " > " + p.left + ")");
              if (r.right > vw + 0.5) out.push(name + ": past the right edge (" + r.right + " > " + vw + ")");
              if (c.scrollWidth > c.clientWidth + 1) out.push(name + ": its content overflows (" + c.scrollWidth + " > " + c.clientWidth + ")");
              // A box inside the cell whose text runs out of it is drawn over its neighbour (a squeezed
              // nowrap time under the relative time beside it); inline boxes have no width to compare.
              for (const e of c.querySelectorAll("*")) {{
                if (!(e instanceof HTMLElement) || e.offsetParent === null || e.clientWidth === 0) continue;
                if (e.scrollWidth > e.clientWidth + 1) out.push(name + ": its " + e.tagName.toLowerCase() + " overflows (" + e.scrollWidth + " > " + e.clientWidth + ")");
              }}
            }}
            const wrap = table.parentElement;
            if (wrap.scrollWidth > wrap.clientWidth + 1) out.push("the table scrolls sideways (" + wrap.scrollWidth + " > " + wrap.clientWidth + ")");
            if (document.documentElement.scrollWidth > vw + 1) out.push("the page scrolls sideways (" + document.documentElement.scrollWidth + " > " + vw + ")");
            return out;
            "#
        );
        let found = self.eval(&script).await;
        found
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The texts of the visible header cells of the table matching `table`.
    pub async fn visible_headers(&self, table: &str) -> Vec<String> {
        let script = format!(
            r#"return Array.from(document.querySelectorAll({table:?} + " th"))
                 .filter(c => c.offsetParent !== null && c.getBoundingClientRect().width > 1)
                 .map(c => c.textContent.trim());"#
        );
        let found = self.eval(&script).await;
        found
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The bounding box of the first element matching `css`: `[left, top, right, bottom]`.
    pub async fn rect(&self, css: &str) -> [f64; 4] {
        let script = format!(
            "const r = document.querySelector({css:?}).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"
        );
        let v = self.eval(&script).await;
        let n = |i: usize| v[i].as_f64().unwrap_or(f64::NAN);
        [n(0), n(1), n(2), n(3)]
    }

    /// The page's current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .expect("the current URL")
    }

    /// True when an alert, confirm or prompt dialog is open.
    pub async fn alert_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// Ends the session, then stops chromedriver and whatever is left of Chromium.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill_driver_group();
    }

    fn kill_driver_group(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            let group = format!("-{}", self.driver.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_driver_group();
    }
}
