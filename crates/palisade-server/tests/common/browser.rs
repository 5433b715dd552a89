//! Browser test support: a small W3C WebDriver client over `reqwest` that
//! drives a real headless Chromium through its own `chromedriver` process.
//!
//! [`Browser::start`] finds the binaries (`PALISADE_CHROMIUM`,
//! `PALISADE_CHROMEDRIVER`, else `/usr/bin/…` or `PATH`), starts chromedriver
//! on a free loopback port and opens one headless session. Without the
//! binaries it prints `skipped: chromium not found` and returns `None`, unless
//! `PALISADE_REQUIRE_BROWSER=1` (CI), where that is a failure.
//!
//! Elements are found by CSS or by accessible name and role (a JS helper
//! computes the name from `aria-labelledby`, `aria-label`, the associated
//! `<label>`s or a button's / link's text, as the web-app contract defines
//! it). Every `wait_*` method polls until its condition holds or
//! [`DEFAULT_TIMEOUT`] passes, then panics with what it waited for, the URL,
//! the page's text and the browser console's errors.
//!
//! Dropping the [`Browser`] ends the session (closing Chromium) and kills the
//! chromedriver process group, also when a test panics.
//!
//! Like the rest of `tests/common`, this is test support: protocol failures
//! panic with the WebDriver error rather than being returned.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long `wait_*` methods poll before they fail.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between two polls of a `wait_*` method.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The key of a W3C element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key codes, for [`Element::send_keys`].
pub mod keys {
    /// Enter (Return).
    pub const ENTER: &str = "\u{E007}";
    /// Shift held for the rest of the keys, until [`RELEASE`].
    pub const SHIFT: &str = "\u{E008}";
    /// Releases every held modifier.
    pub const RELEASE: &str = "\u{E000}";
    /// Shift+Enter, with Shift released afterwards.
    pub const SHIFT_ENTER: &str = "\u{E008}\u{E007}\u{E000}";
}

/// An error answered by chromedriver (`{"value": {"error", "message"}}`) or
/// by the transport.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The W3C error code, e.g. `no such element`, `stale element reference`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first_line = self.message.lines().next().unwrap_or_default();
        write!(f, "{}: {first_line}", self.error)
    }
}

impl WebDriverError {
    /// Errors a retry can get past: the element was re-rendered, covered or
    /// not yet interactable.
    fn is_transient(&self) -> bool {
        matches!(
            self.error.as_str(),
            "stale element reference"
                | "no such element"
                | "element click intercepted"
                | "element not interactable"
                | "invalid element state"
        )
    }
}

type WdResult<T> = Result<T, WebDriverError>;

/// The browser binary and its driver.
struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// `$var` if set, else the first of `defaults` that exists, else the first of
/// `names` found on `PATH`.
fn locate(var: &str, defaults: &[&str], names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    defaults
        .iter()
        .map(PathBuf::from)
        .chain(
            names
                .iter()
                .flat_map(|name| on_path.iter().map(move |dir| dir.join(name))),
        )
        .find(|path| path.is_file())
}

fn find_binaries() -> Option<Binaries> {
    Some(Binaries {
        chromium: locate(
            "PALISADE_CHROMIUM",
            &["/usr/bin/chromium"],
            &["chromium", "chromium-browser", "google-chrome"],
        )?,
        chromedriver: locate(
            "PALISADE_CHROMEDRIVER",
            &["/usr/bin/chromedriver"],
            &["chromedriver"],
        )?,
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A headless Chromium session and the chromedriver serving it.
pub struct Browser {
    http: reqwest::Client,
    driver: Child,
    port: u16,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session_url: String,
    session_id: String,
}

impl Browser {
    /// Starts chromedriver and a headless session; `None` (after printing
    /// `skipped: …`) when Chromium or chromedriver is not installed, unless
    /// `PALISADE_REQUIRE_BROWSER=1`, which makes that a panic.
    pub async fn start() -> Option<Browser> {
        let Some(binaries) = find_binaries() else {
            if std::env::var("PALISADE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!(
                    "PALISADE_REQUIRE_BROWSER=1 but chromium or chromedriver was not found \
                     (set PALISADE_CHROMIUM / PALISADE_CHROMEDRIVER)"
                );
            }
            println!("skipped: chromium not found");
            return None;
        };
        Some(Self::launch(&binaries).await)
    }

    async fn launch(binaries: &Binaries) -> Browser {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        // The free port may be taken before chromedriver binds it: then it
        // exits, and another port is tried.
        for _ in 0..3 {
            let port = free_port();
            let driver = Command::new(&binaries.chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group: Drop kills chromedriver and every
                // Chromium process it started in one go.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| {
                    panic!("starting {}: {err}", binaries.chromedriver.display())
                });
            let mut browser = Browser {
                http: http.clone(),
                driver,
                port,
                session_url: String::new(),
                session_id: String::new(),
            };
            if browser.wait_for_driver().await {
                browser.new_session(&binaries.chromium).await;
                return browser;
            }
        }
        panic!("chromedriver exited at start three times");
    }

    /// Polls `/status` until chromedriver answers ready; `false` when it
    /// exited instead (its port was taken).
    async fn wait_for_driver(&mut self) -> bool {
        let status = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Exited: the port was someone else's (who may even answer).
            if let Ok(Some(_)) = self.driver.try_wait() {
                return false;
            }
            if let Ok(response) = self.http.get(&status).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
                && matches!(self.driver.try_wait(), Ok(None))
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn new_session(&mut self, chromium: &Path) {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 10_000},
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,900",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-extensions",
                            "--disable-background-networking",
                            "--lang=en-US",
                        ],
                    },
                },
            },
        });
        let url = format!("http://127.0.0.1:{}/session", self.port);
        let value = send(self.http.post(&url).json(&capabilities))
            .await
            .unwrap_or_else(|err| panic!("creating a Chromium session: {err}"));
        self.session_id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_owned();
        self.session_url = format!("{url}/{}", self.session_id);
    }

    /// One WebDriver command on this session; `path` is relative to it
    /// (`""`, `"/url"`, `"/element/…/click"`).
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> WdResult<Value> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.session_url));
        // WebDriver wants a JSON body on every POST, `{}` at least.
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        send(request).await
    }

    async fn post(&self, path: &str, body: Value) -> WdResult<Value> {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> WdResult<Value> {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Navigates and waits for the load event.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|err| panic!("navigating to {url}: {err}"));
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.post("/refresh", json!({}))
            .await
            .unwrap_or_else(|err| panic!("reloading: {err}"));
    }

    pub async fn current_url(&self) -> String {
        let value = self.get("/url").await.expect("current URL");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body: use `return`, `arguments[i]`) and
    /// returns its JSON result; elements come back as W3C references.
    pub async fn try_execute(&self, script: &str, args: Vec<Value>) -> WdResult<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// [`Browser::try_execute`], panicking on a script error.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find_css(&self, selector: &str) -> Option<Element<'_>> {
        let found = self
            .post(
                "/element",
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        match found {
            Ok(value) => Some(self.element(&value, selector)),
            Err(err) if err.error == "no such element" => None,
            Err(err) => panic!("finding {selector:?}: {err}"),
        }
    }

    /// Every element matching a CSS selector, in document order.
    pub async fn find_all_css(&self, selector: &str) -> Vec<Element<'_>> {
        let value = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": selector }),
            )
            .await
            .unwrap_or_else(|err| panic!("finding {selector:?}: {err}"));
        value
            .as_array()
            .map(|list| list.iter().map(|v| self.element(v, selector)).collect())
            .unwrap_or_default()
    }

    /// The first *visible* element with this role (`None`: any element) and
    /// exact accessible name, anywhere in the document.
    pub async fn find_by_name(&self, role: Option<&str>, name: &str) -> Option<Element<'_>> {
        self.query_by_name(None, role, name, true)
            .await
            .into_iter()
            .next()
    }

    /// Whether any element, visible or hidden, has this role and name.
    pub async fn exists_by_name(&self, role: Option<&str>, name: &str) -> bool {
        !self.query_by_name(None, role, name, false).await.is_empty()
    }

    /// Matches of the accessible-name helper under `root` (the document when
    /// `None`), visible ones only when `visible_only`.
    async fn query_by_name(
        &self,
        root: Option<&Element<'_>>,
        role: Option<&str>,
        name: &str,
        visible_only: bool,
    ) -> Vec<Element<'_>> {
        let root = root.map_or(Value::Null, Element::reference);
        let description = describe(role, name);
        let value = self
            .try_execute(
                ACCESSIBLE_NAME_JS,
                vec![root, json!(role), json!(name), json!(visible_only)],
            )
            .await;
        match value {
            Ok(value) => value
                .as_array()
                .map(|list| list.iter().map(|v| self.element(v, &description)).collect())
                .unwrap_or_default(),
            // The root went stale under a re-render: nothing found this poll.
            Err(err) if err.is_transient() => Vec::new(),
            Err(err) => panic!("finding {description}: {err}"),
        }
    }

    fn element(&self, value: &Value, description: &str) -> Element<'_> {
        let id = value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {value}"))
            .to_owned();
        Element {
            browser: self,
            id,
            description: description.to_owned(),
        }
    }

    /// Polls `probe` until it returns `Some`, for up to [`DEFAULT_TIMEOUT`];
    /// then panics naming `what` and showing the page.
    pub async fn wait_until<T>(&self, what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
        self.wait_until_for(what, DEFAULT_TIMEOUT, probe).await
    }

    /// [`Browser::wait_until`] with its own timeout.
    pub async fn wait_until_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls a script (a function body) until it returns a truthy value,
    /// which it returns.
    pub async fn wait_for_js(&self, what: &str, script: &str) -> Value {
        self.wait_for_js_with(what, script, Vec::new()).await
    }

    /// [`Browser::wait_for_js`] with arguments.
    pub async fn wait_for_js_with(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait_until(what, async || {
            match self.try_execute(script, args.clone()).await {
                Ok(value) if truthy(&value) => Some(value),
                Ok(_) => None,
                Err(err) if err.is_transient() => None,
                Err(err) => panic!("script for {what} failed: {err}\n{script}"),
            }
        })
        .await
    }

    /// Waits for a visible element matching a CSS selector.
    pub async fn wait_for_css(&self, selector: &str) -> Element<'_> {
        self.wait_until(&format!("a visible {selector:?}"), async || {
            for element in self.find_all_css(selector).await {
                if element.try_is_displayed().await.unwrap_or(false) {
                    return Some(element);
                }
            }
            None
        })
        .await
    }

    /// Waits for a visible element with this role and accessible name.
    pub async fn wait_for_name(&self, role: Option<&str>, name: &str) -> Element<'_> {
        self.wait_until(&format!("visible {}", describe(role, name)), async || {
            self.find_by_name(role, name).await
        })
        .await
    }

    /// Waits until no visible element has this role and name.
    pub async fn wait_for_no_name(&self, role: Option<&str>, name: &str) {
        self.wait_until(
            &format!("no visible {}", describe(role, name)),
            async || self.find_by_name(role, name).await.is_none().then_some(()),
        )
        .await
    }

    /// Waits for a visible, enabled element with this role and name and
    /// clicks it, retrying while it is re-rendered or covered.
    pub async fn click_name(&self, role: Option<&str>, name: &str) {
        self.wait_until(
            &format!("a clickable {}", describe(role, name)),
            async || {
                let element = self.find_by_name(role, name).await?;
                if !element.try_is_enabled().await.unwrap_or(false) {
                    return None;
                }
                match element.try_click().await {
                    Ok(()) => Some(()),
                    Err(err) if err.is_transient() => None,
                    Err(err) => panic!("clicking {}: {err}", describe(role, name)),
                }
            },
        )
        .await
    }

    /// Waits for the field with this role and name, clears it and types `text`.
    pub async fn fill_name(&self, role: Option<&str>, name: &str, text: &str) {
        self.wait_until(
            &format!("an editable {}", describe(role, name)),
            async || {
                let element = self.find_by_name(role, name).await?;
                let typed = async {
                    element.try_clear().await?;
                    element.try_send_keys(text).await
                };
                match typed.await {
                    Ok(()) => Some(()),
                    Err(err) if err.is_transient() => None,
                    Err(err) => panic!("typing into {}: {err}", describe(role, name)),
                }
            },
        )
        .await
    }

    /// `document.body.innerText`.
    pub async fn page_text(&self) -> String {
        self.try_execute(
            "return document.body ? document.body.innerText : ''",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    /// What a failed wait reports: URL, page text (shortened) and console errors.
    pub async fn diagnostics(&self) -> String {
        let url = self.current_url().await;
        let mut text = self.page_text().await;
        if text.chars().count() > 4000 {
            text = text.chars().take(4000).collect::<String>() + "\n[…]";
        }
        let errors = self.console_errors().await;
        format!("URL: {url}\npage text:\n---\n{text}\n---\nconsole errors: {errors:#?}")
    }

    /// Resizes the window (the viewport, in headless mode).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await
            .unwrap_or_else(|err| panic!("resizing to {width}x{height}: {err}"));
    }

    /// Waits (up to two seconds, without failing) for running transitions
    /// and finite animations to end, so a screenshot shows a settled page.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let running = self.try_execute(ANIMATING_JS, vec![]).await;
            if !matches!(running, Ok(Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Saves a PNG of the viewport once the page has [settled](Self::settle);
    /// the file is written whole or not at all.
    pub async fn screenshot(&self, path: &Path) {
        self.settle().await;
        let value = self.get("/screenshot").await.expect("screenshot");
        let png = base64_decode(value.as_str().expect("base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        let partial = path.with_extension(format!("png.{}.part", std::process::id()));
        std::fs::write(&partial, png).expect("writing the screenshot");
        std::fs::rename(&partial, path).expect("moving the screenshot in place");
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": command, "params": params }),
        )
        .await
        .unwrap_or_else(|err| panic!("CDP {command}: {err}"))
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub async fn emulate_color_scheme(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        )
        .await;
    }

    /// Browser console entries since the last call (chromedriver hands out
    /// each entry once): `(level, message)`.
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let Ok(value) = self.post("/se/log", json!({"type": "browser"})).await else {
            return Vec::new();
        };
        value
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry["level"].as_str().unwrap_or_default().to_owned(),
                            entry["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `SEVERE` console entries since the last call (script errors,
    /// CSP violations, failed requests).
    pub async fn console_errors(&self) -> Vec<String> {
        self.console_log()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, message)| message)
            .collect()
    }

    /// `sessionStorage.setItem(key, value)` on the current origin.
    pub async fn set_session_storage(&self, key: &str, value: &str) {
        self.execute(
            "sessionStorage.setItem(arguments[0], arguments[1])",
            vec![json!(key), json!(value)],
        )
        .await;
    }

    /// `sessionStorage.getItem(key)`.
    pub async fn session_storage(&self, key: &str) -> Option<String> {
        self.execute(
            "return sessionStorage.getItem(arguments[0])",
            vec![json!(key)],
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Ends the session (closing Chromium) with a blocking request, so it
    /// also works from `Drop` and while unwinding.
    fn delete_session_blocking(&self) {
        if self.session_id.is_empty() {
            return;
        }
        let address = format!("127.0.0.1:{}", self.port);
        let Ok(mut stream) = TcpStream::connect(&address) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.session_id
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            read_http_response(&mut stream);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.delete_session_blocking();
        // Whatever is left of the group (chromedriver, a Chromium that did
        // not close): by its process-group id, which is chromedriver's pid.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Reads one HTTP/1.1 response to the end of its `Content-Length` body
/// (chromedriver may keep the connection open despite `Connection: close`).
fn read_http_response(stream: &mut TcpStream) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends a WebDriver request and unwraps `{"value": …}`.
async fn send(request: reqwest::RequestBuilder) -> WdResult<Value> {
    let response = request.send().await.map_err(|err| WebDriverError {
        error: "transport".into(),
        message: err.to_string(),
    })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|err| WebDriverError {
        error: "transport".into(),
        message: format!("{status}: not JSON: {err}"),
    })?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(WebDriverError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// A found element; stale once the app re-renders it.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    /// How it was found, for messages.
    description: String,
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Element({})", self.description)
    }
}

impl<'b> Element<'b> {
    /// The W3C reference, to pass as a script argument.
    pub fn reference(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    fn fail<T>(&self, action: &str, err: WebDriverError) -> T {
        panic!("{action} {}: {err}", self.description)
    }

    pub async fn try_click(&self) -> WdResult<()> {
        self.browser
            .post(&self.path("/click"), json!({}))
            .await
            .map(drop)
    }

    pub async fn click(&self) {
        if let Err(err) = self.try_click().await {
            self.fail("clicking", err)
        }
    }

    pub async fn try_send_keys(&self, text: &str) -> WdResult<()> {
        self.browser
            .post(&self.path("/value"), json!({ "text": text }))
            .await
            .map(drop)
    }

    /// Types `text` into the element; see [`keys`] for Enter and Shift.
    pub async fn send_keys(&self, text: &str) {
        if let Err(err) = self.try_send_keys(text).await {
            self.fail("typing into", err)
        }
    }

    pub async fn try_clear(&self) -> WdResult<()> {
        self.browser
            .post(&self.path("/clear"), json!({}))
            .await
            .map(drop)
    }

    pub async fn clear(&self) {
        if let Err(err) = self.try_clear().await {
            self.fail("clearing", err)
        }
    }

    /// The rendered text (WebDriver's "visible text").
    pub async fn text(&self) -> String {
        match self.browser.get(&self.path("/text")).await {
            Ok(value) => value.as_str().unwrap_or_default().to_owned(),
            Err(err) => self.fail("reading the text of", err),
        }
    }

    /// An attribute (`None` when absent).
    pub async fn attribute(&self, name: &str) -> Option<String> {
        match self
            .browser
            .get(&self.path(&format!("/attribute/{name}")))
            .await
        {
            Ok(value) => value.as_str().map(str::to_owned),
            Err(err) => self.fail(&format!("reading attribute {name} of"), err),
        }
    }

    /// A DOM property (`value`, `checked`, …) as JSON.
    pub async fn property(&self, name: &str) -> Value {
        match self
            .browser
            .get(&self.path(&format!("/property/{name}")))
            .await
        {
            Ok(value) => value,
            Err(err) => self.fail(&format!("reading property {name} of"), err),
        }
    }

    pub async fn try_is_displayed(&self) -> WdResult<bool> {
        let value = self.browser.get(&self.path("/displayed")).await?;
        Ok(value == true)
    }

    pub async fn is_displayed(&self) -> bool {
        self.try_is_displayed()
            .await
            .unwrap_or_else(|err| self.fail("checking visibility of", err))
    }

    pub async fn try_is_enabled(&self) -> WdResult<bool> {
        let value = self.browser.get(&self.path("/enabled")).await?;
        Ok(value == true)
    }

    pub async fn is_enabled(&self) -> bool {
        self.try_is_enabled()
            .await
            .unwrap_or_else(|err| self.fail("checking whether enabled", err))
    }

    /// The first descendant matching a CSS selector.
    pub async fn find_css(&self, selector: &str) -> Option<Element<'b>> {
        let found = self
            .browser
            .post(
                &self.path("/element"),
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        let description = format!("{selector:?} in {}", self.description);
        match found {
            Ok(value) => Some(self.browser.element(&value, &description)),
            Err(err) if err.error == "no such element" => None,
            Err(err) => panic!("finding {description}: {err}"),
        }
    }

    /// Every descendant matching a CSS selector.
    pub async fn find_all_css(&self, selector: &str) -> Vec<Element<'b>> {
        let description = format!("{selector:?} in {}", self.description);
        let value = self
            .browser
            .post(
                &self.path("/elements"),
                json!({ "using": "css selector", "value": selector }),
            )
            .await
            .unwrap_or_else(|err| panic!("finding {description}: {err}"));
        value
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| self.browser.element(v, &description))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first visible descendant with this role and accessible name.
    pub async fn find_by_name(&self, role: Option<&str>, name: &str) -> Option<Element<'b>> {
        self.browser
            .query_by_name(Some(self), role, name, true)
            .await
            .into_iter()
            .next()
    }

    /// Whether any descendant, visible or not, has this role and name.
    pub async fn exists_by_name(&self, role: Option<&str>, name: &str) -> bool {
        !self
            .browser
            .query_by_name(Some(self), role, name, false)
            .await
            .is_empty()
    }
}

/// `button "Log in"`, for messages.
fn describe(role: Option<&str>, name: &str) -> String {
    format!("{} {name:?}", role.unwrap_or("element"))
}

/// JavaScript's truthiness of a script result.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Standard base64 (with padding) as chromedriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    fn sextet(byte: u8) -> u32 {
        match byte {
            b'A'..=b'Z' => u32::from(byte - b'A'),
            b'a'..=b'z' => u32::from(byte - b'a') + 26,
            b'0'..=b'9' => u32::from(byte - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("invalid base64 byte {byte:#x}"),
        }
    }
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for group in symbols.chunks(4) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (sextet(b) << (18 - 6 * i)));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    out
}

/// Whether a transition or a finite animation is running (infinite ones,
/// such as a "writing…" indicator, never end and are left out).
const ANIMATING_JS: &str = r#"
if (typeof document.getAnimations !== 'function') return false;
return document.getAnimations().some((a) => a.playState === 'running'
  && (!a.effect || a.effect.getComputedTiming().iterations !== Infinity));
"#;

/// Finds elements by role and accessible name.
///
/// Arguments: root element (or null for the document), role (or null for
/// any), exact name, visible-only flag. The name is `aria-labelledby`'s text,
/// else `aria-label`, else the associated `<label>`s' text, else (buttons,
/// links, and a few text-named roles) the element's own text; whitespace is
/// collapsed. Roles are the explicit `role` or the implicit one of the tag
/// (`textbox` includes password inputs for convenience).
const ACCESSIBLE_NAME_JS: &str = r#"
const [root, role, name, visibleOnly] = arguments;
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const FROM_CONTENT = new Set(['button', 'link', 'tab', 'menuitem', 'option', 'checkbox',
  'radio', 'switch', 'heading', 'cell', 'columnheader', 'rowheader', 'row', 'treeitem']);
function implicitRole(el) {
  const tag = el.tagName;
  switch (tag) {
    case 'BUTTON': case 'SUMMARY': return 'button';
    case 'A': case 'AREA': return el.hasAttribute('href') ? 'link' : 'generic';
    case 'TEXTAREA': return 'textbox';
    case 'SELECT': return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
    case 'OPTION': return 'option';
    case 'NAV': return 'navigation';
    case 'MAIN': return 'main';
    case 'HEADER': return 'banner';
    case 'FOOTER': return 'contentinfo';
    case 'ASIDE': return 'complementary';
    case 'ARTICLE': return 'article';
    case 'SECTION': return explicitName(el) ? 'region' : 'generic';
    case 'FORM': return 'form';
    case 'TABLE': return 'table';
    case 'TR': return 'row';
    case 'TD': return 'cell';
    case 'TH': return 'columnheader';
    case 'UL': case 'OL': return 'list';
    case 'LI': return 'listitem';
    case 'DIALOG': return 'dialog';
    case 'H1': case 'H2': case 'H3': case 'H4': case 'H5': case 'H6': return 'heading';
    case 'INPUT': {
      const type = (el.getAttribute('type') || 'text').toLowerCase();
      if (['button', 'submit', 'reset', 'image'].includes(type)) return 'button';
      if (type === 'checkbox') return 'checkbox';
      if (type === 'radio') return 'radio';
      if (type === 'search') return 'searchbox';
      if (type === 'range') return 'slider';
      if (type === 'number') return 'spinbutton';
      if (type === 'hidden') return 'none';
      return 'textbox';
    }
  }
  return 'generic';
}
function roleOf(el) {
  const explicit = norm(el.getAttribute('role')).split(' ')[0];
  return explicit || implicitRole(el);
}
function explicitName(el) {
  const by = el.getAttribute('aria-labelledby');
  if (by) {
    const text = by.split(/\s+/).map((id) => document.getElementById(id))
      .filter(Boolean).map((ref) => ref.textContent).join(' ');
    if (norm(text)) return norm(text);
  }
  const label = el.getAttribute('aria-label');
  if (norm(label)) return norm(label);
  return '';
}
function accessibleName(el, elRole) {
  const explicit = explicitName(el);
  if (explicit) return explicit;
  if (el.labels && el.labels.length) {
    return norm(Array.from(el.labels).map((l) => l.textContent).join(' '));
  }
  if (el.tagName === 'INPUT' && ['button', 'submit', 'reset'].includes(el.type)) {
    return norm(el.value);
  }
  if (FROM_CONTENT.has(elRole)) return norm(el.textContent);
  return '';
}
function visible(el) {
  if (typeof el.checkVisibility === 'function') {
    return el.checkVisibility({ visibilityProperty: true }) && el.getClientRects().length > 0;
  }
  return el.getClientRects().length > 0;
}
const wanted = norm(name);
const scope = root || document;
const found = [];
for (const el of scope.querySelectorAll('*')) {
  const elRole = roleOf(el);
  if (role && elRole !== role) continue;
  if (accessibleName(el, elRole) !== wanted) continue;
  if (visibleOnly && !visible(el)) continue;
  found.push(el);
}
return found;
"#;
