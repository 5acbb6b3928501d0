#![cfg(all(feature = "dashboard", feature = "testing"))]
//! The dashboard in a real browser: Debian's Chromium, driven over WebDriver
//! by chromedriver, against a real bus, a real dashboard server and a real
//! webhook receiver that fails the first delivery.
//!
//! Checked: the page loads without console errors; a failed delivery
//! appears live; clicking "retry failed" delivers the dead letter (seen by
//! the receiver); clicking "disable" stops the endpoint's deliveries; a
//! wrong token is refused and the page says so. A screenshot is saved under
//! target/ (the path is printed).
//!
//! Needs `chromium` and `chromedriver` on PATH (`scripts/test` installs
//! Debian's `chromium` and `chromium-driver` when they are missing). Without
//! them the test fails when `CI` is set and is skipped with a message
//! otherwise.
//!
//! The WebDriver client is a few calls over reqwest (already a dependency):
//! the handful of commands used here did not justify a WebDriver crate and
//! its dependency tree.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hookbus::dashboard::{self, DashboardConfig};
use hookbus::testing::{Reply, TestReceiver};
use hookbus::webhook::{RetryPolicy, WebhookManager, WebhookSink};
use hookbus::{Bus, Event};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long the browser gets to show something: a guard against a hung
/// external process, not a synchronisation.
const BROWSER_DEADLINE: Duration = Duration::from_secs(20);
/// Between two looks at the browser while waiting for it.
const POLL: Duration = Duration::from_millis(50);

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// chromedriver as a child process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(binary: &Path) -> Driver {
        // A free port: bound, read and released (chromedriver binds it next).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .and_then(|r| r.status().is_success().then_some(()));
            if ready.is_some() {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The WebDriver commands this test uses.
struct Browser {
    http: reqwest::Client,
    session: String,
}

/// A WebDriver error: its `error` code and message.
#[derive(Debug)]
struct WdError {
    code: String,
    message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The key of a web element reference (WebDriver, "Elements").
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn open(driver: &Driver, chromium: &Path, profile: &Path) -> Browser {
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1600",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Browser {
            http,
            session: format!("{}/session/{session}", driver.url),
        }
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r: Value = request
            .send()
            .await
            .map_err(|e| WdError {
                code: "transport".into(),
                message: e.to_string(),
            })?
            .json()
            .await
            .map_err(|e| WdError {
                code: "transport".into(),
                message: e.to_string(),
            })?;
        let value = r["value"].clone();
        match value.get("error").and_then(Value::as_str) {
            Some(code) => Err(WdError {
                code: code.to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            }),
            None => Ok(value),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WdError> {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn go(&self, url: &str) {
        self.post("/url", json!({"url": url}))
            .await
            .expect("navigate");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Waits until `script` returns `true`.
    async fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        while self.eval(script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "the page never showed {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element at `selector` as a user would. The lists are
    /// redrawn after every sample, so an element found may be replaced
    /// before the click lands: then it is found again.
    async fn click(&self, selector: &str) {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            let attempt = async {
                let found = self
                    .post(
                        "/element",
                        json!({"using": "css selector", "value": selector}),
                    )
                    .await?;
                let id = found[ELEMENT]
                    .as_str()
                    .ok_or_else(|| WdError {
                        code: "no element reference".into(),
                        message: found.to_string(),
                    })?
                    .to_owned();
                self.post(&format!("/element/{id}/click"), json!({})).await
            };
            match attempt.await {
                Ok(_) => return,
                Err(e) if e.code == "stale element reference" || e.code == "no such element" => {
                    assert!(Instant::now() < deadline, "cannot click {selector}: {e}");
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => panic!("click {selector}: {e}"),
            }
        }
    }

    /// The browser console's entries so far (chromedriver's log endpoint).
    async fn console(&self) -> Vec<Value> {
        match self.post("/se/log", json!({"type": "browser"})).await {
            Ok(Value::Array(entries)) => entries,
            other => panic!("cannot read the browser console: {other:?}"),
        }
    }

    async fn screenshot(&self, to: &Path) {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, bytes).expect("write the screenshot");
    }

    async fn close(self) {
        let _ = self.command(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_chromium() {
    let (Some(chromium), Some(chromedriver)) =
        (find_on_path("chromium"), find_on_path("chromedriver"))
    else {
        let why = "chromium and chromedriver are not on PATH \
                   (apt-get install chromium chromium-driver; scripts/test does it)";
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and {why}");
        }
        eprintln!("SKIPPED the_dashboard_works_in_chromium: {why}");
        return;
    };

    // The receiver fails the first delivery, then accepts.
    let receiver = TestReceiver::builder()
        .script([Reply::server_error().body("database is down")])
        .start()
        .await
        .unwrap();
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let id = manager
        .register(
            WebhookSink::builder(receiver.url())
                .name("crm")
                .events(["order.*"])
                .retry(RetryPolicy::none()),
        )
        .unwrap();
    let server = dashboard::serve(&bus, manager.clone(), DashboardConfig::with_random_token())
        .await
        .unwrap();

    let driver = Driver::start(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver, &chromium, profile.path()).await;
    browser.go(&server.url()).await;
    browser
        .wait_for(
            "the live stream connected",
            "return document.getElementById('status').dataset.state === 'live'",
        )
        .await;
    browser
        .wait_for(
            "the endpoint",
            &format!("return !!document.querySelector('#webhooks tr[data-id=\"{id}\"]')"),
        )
        .await;

    // A delivery appears live: the failed attempt, its status and excerpt.
    bus.emit(Event::new("order.created", json!({"n": 1})).unwrap())
        .unwrap();
    browser
        .wait_for(
            "the failed attempt",
            "const r = document.querySelector('#attempts tbody tr[data-status=\"500\"]'); \
             return !!r && r.textContent.includes('database is down')",
        )
        .await;
    browser
        .wait_for(
            "the live event",
            "return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes('order.created'))",
        )
        .await;
    assert_eq!(manager.sink_of(&id).unwrap().dead_letters().len(), 1);

    // "retry failed" delivers the dead letter: the receiver gets it again.
    browser
        .click(&format!(
            "#webhooks button[data-action=\"retry\"][data-id=\"{id}\"]"
        ))
        .await;
    let requests = receiver.wait_for(2).await.expect("the retried delivery");
    assert_eq!(requests[1].status, 200);
    assert_eq!(requests[0].events[0].id(), requests[1].events[0].id());
    browser
        .wait_for(
            "the delivered retry",
            "return !!document.querySelector('#attempts tbody tr[data-status=\"200\"]')",
        )
        .await;

    // "disable" stops the endpoint's deliveries: the next event is parked
    // (shown as a dead letter), the receiver gets nothing more.
    browser
        .click(&format!(
            "#webhooks button[data-action=\"disable\"][data-id=\"{id}\"]"
        ))
        .await;
    browser
        .wait_for(
            "the endpoint disabled",
            &format!(
                "const r = document.querySelector('#webhooks tr[data-id=\"{id}\"]'); \
                 return !!r && r.dataset.state === 'disabled'"
            ),
        )
        .await;
    assert!(!manager.get(&id).unwrap().enabled);
    bus.emit(Event::new("order.created", json!({"n": 2})).unwrap())
        .unwrap();
    browser
        .wait_for(
            "the refused event kept as a dead letter",
            &format!(
                "const r = document.querySelector('#webhooks tr[data-id=\"{id}\"]'); \
                 return !!r && r.querySelector('td.dead').textContent === '1'"
            ),
        )
        .await;
    assert_eq!(receiver.requests().len(), 2, "nothing sent while disabled");

    // No console errors (failed loads, script errors) all along.
    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser.png");
    browser.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());

    // A wrong token is refused, and the page says so.
    browser
        .go(&format!(
            "http://{}/?again#token=wrong-token-0123456789",
            server.addr()
        ))
        .await;
    browser
        .wait_for(
            "the refusal",
            "return document.getElementById('message').textContent.includes('the server refused')",
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('emitted').textContent")
            .await,
        "–",
        "no data without the token"
    );
    browser.close().await;
    server.shutdown().await;
}
