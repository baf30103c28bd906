//! The dashboard in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) with fantoccini. It logs in with a token, sees a deployed
//! app, watches a new call's output arrive in the live log, opens a call and its logs,
//! and a screenshot shows a rendered page.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, admin_token, client, server, wasmhost_remote};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is installed; outside CI its absence skips the test with a notice,
/// in CI (where .ci/run installs it) it fails it.
fn browser_available() -> bool {
    let found = Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but chromium/chromium-driver are missing (.ci/run installs them)"
        );
        eprintln!("NOTICE: skipping the dashboard test: apt-get install chromium chromium-driver");
    }
    found
}

/// A running chromedriver; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client()
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    async fn browser(&self, profile: &Path) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clicks the element with id `id`.
async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the field with id `id`.
async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits (up to 30 s) until the element's text contains `needle`; returns the text.
async fn wait_text(browser: &Client, locator: Locator<'_>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = match browser.find(locator).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            let page = browser.source().await.unwrap_or_default();
            panic!("{needle:?} never appeared in {locator:?}; it reads {text:?}; page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How much of a PNG differs from its first pixel (0 for a blank page), and its colours.
fn ink(png_bytes: &[u8]) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()].chunks(channels).collect();
    let first = pixels[0];
    let differing = pixels.iter().filter(|p| **p != first).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    (differing as f64 / pixels.len() as f64, colours.len())
}

#[tokio::test]
async fn the_dashboard_logs_in_shows_apps_calls_and_live_logs_in_chromium() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path(), &[]);
    let token = admin_token(dir.path());
    let api = Api {
        host: &srv,
        token: token.clone(),
    };
    let functions = api.deploy_example("functions", "dash-app").await;
    let (code, out) = wasmhost_remote(
        &srv,
        &token,
        &["secret", "create", "log-secret", "LOG_TOKEN=dash-s3cret-77"],
    );
    assert_eq!(code, 0, "{out}");
    let function_id = |name: &str| functions[name]["function_id"].as_str().unwrap().to_owned();
    let (_, call) = api.invoke(&function_id("chatty"), json!([2])).await;
    let call_id = call["call_id"].as_str().unwrap().to_owned();

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;

    // A wrong token is refused on the form.
    browser.goto(&srv.url("/dashboard")).await.unwrap();
    type_into(&browser, "token", "tk-nobody:wrong").await;
    click(&browser, "login").await;
    wait_text(&browser, Locator::Id("message"), "not valid").await;

    // The right one logs in: an HttpOnly, SameSite=Strict session cookie, then the apps.
    type_into(&browser, "token", &token).await;
    click(&browser, "login").await;
    wait_text(&browser, Locator::Id("apps"), "dash-app").await;
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "wasmhost_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(!session.value().contains(&token) && !session.value().contains(':'));
    let cookie = format!("wasmhost_session={}", session.value());
    let script_sees: serde_json::Value = browser
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert_eq!(script_sees, json!(""), "scripts cannot read the session");

    // The app's page: functions, versions, the chart, and the live log.
    browser
        .find(Locator::LinkText("dash-app"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&browser, Locator::Id("functions"), "chatty").await;
    wait_text(&browser, Locator::Id("versions"), "admin").await;
    wait_text(&browser, Locator::Id("live-log"), "chatty line 1").await;
    wait_text(&browser, Locator::Id("instances"), "slow_web").await;
    browser.find(Locator::Id("chart")).await.expect("a chart");
    let (_, boom) = api
        .invoke(&function_id("boom"), json!(["live-marker-31"]))
        .await;
    assert_eq!(boom["status"], "failure");
    let live = wait_text(&browser, Locator::Id("live-log"), "live-marker-31").await;
    assert!(!live.contains("dash-s3cret-77"), "{live}");
    let shot = browser.screenshot().await.unwrap();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-app.png"),
        &shot,
    )
    .unwrap();
    let (share, colours) = ink(&shot);
    assert!(
        share > 0.05 && colours > 16,
        "the page looks blank: {share:.3} of pixels differ, {colours} colours"
    );

    // A call and its logs.
    wait_text(&browser, Locator::Id("recent-calls"), &call_id).await;
    browser
        .find(Locator::LinkText(&call_id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&browser, Locator::Id("attempts"), "success").await;
    let logs = wait_text(&browser, Locator::Id("call-logs"), "chatty line 1").await;
    assert!(logs.contains("the token is [redacted]"), "{logs}");
    assert!(logs.contains("attempt 1 succeeded"), "{logs}");

    // The session reads the API and nothing more; logging out ends it.
    let with_cookie = |m: reqwest::Method, path: &str| {
        client()
            .request(m, srv.url(path))
            .header("cookie", cookie.clone())
    };
    let r = with_cookie(reqwest::Method::GET, "/v1/apps")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = with_cookie(reqwest::Method::POST, "/v1/apps")
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a cookie never authorises a change");
    let r = with_cookie(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    browser.goto(&srv.url("/dashboard#/")).await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    let r = with_cookie(reqwest::Method::GET, "/v1/apps")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the session ended");
    browser.close().await.unwrap();
}
