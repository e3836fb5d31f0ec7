//! The dashboard in a real browser: Debian's `chromium`, driven by `chromedriver` over WebDriver
//! (`.ci/run` installs both). Each page the walk opens must log no console error (a missing
//! favicon counts), answer every link it shows with a status below 400 and pass axe-core's
//! accessibility rules without a serious or critical violation.
//!
//! Without chromedriver on the PATH (or at `$CHROMEDRIVER`) the tests say so and pass, except under
//! `CI=true`, where a missing browser is a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::api::{TestServer, rerated_project};

/// axe-core, vendored: the rules a page is checked against (MPL-2.0, header kept in the file).
const AXE: &str = include_str!("../browser/axe-4.14.1.min.js");

/// A chromedriver process on a free loopback port, stopped when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromedriver"))
            .find(|candidate| candidate.is_file())
    })
}

impl Chromedriver {
    /// Starts chromedriver, or `None` (with a message) when it is not installed outside CI.
    async fn start(test: &str) -> Option<Chromedriver> {
        let Some(path) = chromedriver_path() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but chromedriver is missing: .ci/run installs Debian's chromium-driver"
            );
            eprintln!(
                "{test}: skipped, chromedriver is not installed (apt install chromium-driver)"
            );
            return None;
        };
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        };
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/status", driver.url))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(driver)
    }

    /// A headless chromium session that keeps the console log.
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                            "--disable-gpu", "--window-size=1280,1000"]}),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

/// chromedriver's console log of the page(s) since the last call.
#[derive(Debug)]
struct ConsoleLog;

impl WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// The checks every page of the walk passes; returns the page's text.
async fn check_page(browser: &Client, server: &TestServer) -> String {
    let url = browser.current_url().await.unwrap();
    let page = url.path().to_string();
    let log = browser.issue_cmd(ConsoleLog).await.unwrap();
    let errors: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "{page}: console errors {errors:?}");

    let hrefs = browser
        .execute(
            "return Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))",
            vec![],
        )
        .await
        .unwrap();
    for href in hrefs.as_array().unwrap() {
        let href = href.as_str().unwrap();
        let status = server
            .client
            .get(server.url(href))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status.as_u16() < 400,
            "{page}: link {href} answered {status}"
        );
    }

    browser.execute(AXE, vec![]).await.unwrap();
    let violations = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document).then(r => done(r.violations.map(v =>
               ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html).slice(0, 3)}))));",
            vec![],
        )
        .await
        .unwrap();
    let serious: Vec<&Value> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "{page}: accessibility {serious:#?}");
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_runs_lead_to_a_run_a_table_a_diff_and_model_runs_and_a_run_starts_from_the_form()
 {
    let Some(driver) = Chromedriver::start("browser walk").await else {
        return;
    };
    let project = tokio::task::spawn_blocking(rerated_project).await.unwrap();
    let server = TestServer::start(&project, "").await;
    let browser = driver.browser().await;

    browser.goto(&server.url("/ui/runs")).await.unwrap();
    let runs = check_page(&browser, &server).await;
    assert!(runs.contains("Runs"), "{runs}");

    click(&browser, "table.grid tbody tr td a").await;
    let run = check_page(&browser, &server).await;
    assert!(
        run.contains("Step attempts") && run.contains("Timeline"),
        "{run}"
    );

    click(&browser, "a[href='/ui/tables/silver.ratings']").await;
    let table = check_page(&browser, &server).await;
    assert!(
        table.contains("silver.ratings") && table.contains("History"),
        "{table}"
    );

    click(&browser, "a[href^='/ui/tables/silver.ratings/diff?from=']").await;
    let diff = check_page(&browser, &server).await;
    assert!(diff.contains("Changed"), "{diff}");

    browser.goto(&server.url("/ui/graph")).await.unwrap();
    let graph = check_page(&browser, &server).await;
    assert!(graph.contains("gold.movie_stats"), "{graph}");

    // The rest of the pages once each: a step's charts, a lineage, the sign-in page.
    for (path, words) in [
        ("/ui/graph?focus=silver.ratings", "Last attempts"),
        ("/ui/tables/gold.movie_stats/lineage", "Lineage of"),
        ("/ui/login", "Auth is off"),
    ] {
        browser.goto(&server.url(path)).await.unwrap();
        let page = check_page(&browser, &server).await;
        assert!(page.contains(words), "{path}: {page}");
    }

    browser.goto(&server.url("/ui/tables")).await.unwrap();
    check_page(&browser, &server).await;

    // Two trainings of the ALS model (the second saw the new ratings): compare them.
    browser.goto(&server.url("/ui/models")).await.unwrap();
    check_page(&browser, &server).await;
    click(&browser, "a[href='/ui/models/recommendations']").await;
    check_page(&browser, &server).await;
    click(&browser, "form[action$='/compare'] button[type=submit]").await;
    let compare = check_page(&browser, &server).await;
    assert!(compare.contains("Loss per iteration"), "{compare}");
    let lines = browser
        .find_all(Locator::Css("polyline.series"))
        .await
        .unwrap();
    assert_eq!(lines.len(), 2, "one loss curve per run");

    // Start a run from the form and follow it on its page until it ends.
    browser.goto(&server.url("/ui/runs")).await.unwrap();
    click(&browser, "details.trigger summary").await;
    click(&browser, "details.trigger form button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let url = browser.current_url().await.unwrap();
        // The page reloads itself while the run goes on: between two loads there is no heading.
        let text = match browser.find(Locator::Css("h1")).await {
            Ok(heading) => heading.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if url.path().starts_with("/ui/runs/") && !text.is_empty() && !text.contains("running") {
            break text;
        }
        assert!(Instant::now() < deadline, "the run never ended: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(finished.contains("succeeded"), "{finished}");
    let started = check_page(&browser, &server).await;
    assert!(
        started.contains("ui ·"),
        "the run is recorded as started from the dashboard: {started}"
    );
    browser.close().await.unwrap();
}
