//! The web page in headless Chromium against the central store: two sites replay
//! different real captures into their SQLite (hq: gen-sipp-mixed-calls-udp, 7 calls;
//! branch: gen-synth-100-calls, 100 calls), their rows are copied into a throwaway
//! PostgreSQL as the forwarder ships them (tests/central_support), and the built binary's
//! `callwarden serve --store postgres://...` serves the page. A supervisor logs in and:
//! - every filter offers the sites (all, branch, hq), and the calls table names the site
//!   of each row;
//! - with all sites the calls are the union (100 on the first page, 107 after "More"),
//!   and the charts' totals are the sum of both sites' figures;
//! - choosing one site, the calls table and the totals change to that site's own figures,
//!   as the site's own SQLite gives them (`callwarden stats` over `--db`, not over the
//!   central store), and so do the month's call-back figures;
//! - the browser's console has no error or warning at the end.
//!
//! chromedriver runs in a process group of its own, killed by id on drop; `serve` is
//! killed by its pid on drop (also on a panic); PostgreSQL is stopped by its pid.

mod api_support;
mod browser_support;
mod central_support;
mod pg_support;

use api_support::*;
use browser_support::*;
use central_support::*;
use fantoccini::{Client, Locator};
use serde_json::Value;
use std::process::Child;

/// `serve --store`, killed by its pid when the test ends.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A site's own figures from its SQLite (`callwarden stats --by day`): calls, answered
/// calls, violations.
fn figures(s: &Site) -> (u64, u64, u64) {
    let rows = json(s, None, &["stats", "--by", "day"]);
    let mut f = (0, 0, 0);
    for r in rows.as_array().unwrap() {
        f.0 += r["calls"].as_u64().unwrap();
        f.1 += r["answered"].as_u64().unwrap();
        f.2 += r["violations"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    }
    f
}

/// The calls table as shown: each row's cells.
async fn table(b: &Client) -> Vec<Vec<String>> {
    serde_json::from_value(
        js(b, "return [...document.querySelectorAll('#calls-table tbody tr')].map(r => [...r.cells].map(c => c.textContent));")
            .await,
    )
    .unwrap()
}

/// Choose `site` ("" = all) in the filter form `form` and submit it.
async fn choose(b: &Client, form: &str, site: &str) {
    b.find(Locator::Css(&format!("{form} select[name=site]"))).await.unwrap().select_by_value(site).await.unwrap();
    click(b, &format!("{form} button[type=submit]")).await;
}

/// Wait until the charts' totals read `want` (calls, answered, violations).
async fn totals(b: &Client, want: (u64, u64, u64), what: &str) {
    let (c, a, v) = want;
    wait_js(
        b,
        &format!(
            "(() => {{ const f = k => (document.querySelector('#charts-totals [data-figure=' + k + ']') || {{}}).textContent; \
             return f('calls') === '{c}' && f('answered') === '{a}' && f('violations') === '{v}'; }})()"
        ),
        10,
        what,
    )
    .await;
}

/// What the page must show, from the sites' own databases.
struct Expected {
    hq: (u64, u64, u64),
    branch: (u64, u64, u64),
    /// hq's calls as (caller, dialled or callee), sorted.
    hq_parties: Vec<(String, String)>,
    /// A month of hq's calls, and each site's own call-back report of it.
    month: String,
    callbacks: Vec<(&'static str, Value)>,
}

/// The sites and the central store are set up synchronously (the PostgreSQL client is a
/// blocking one), then the page is driven on a runtime of its own.
#[test]
fn the_central_page_in_headless_chromium() {
    let pg = central_store();
    let hq = site("hq", &["gen-sipp-mixed-calls-udp.pcap"]);
    let branch = site("branch", &["gen-synth-100-calls.pcap"]);
    copy_site(&hq, "hq", &pg);
    copy_site(&branch, "branch", &pg);

    // What each site says of itself, from its own SQLite.
    let (hq_f, br_f) = (figures(&hq), figures(&branch));
    assert_eq!((hq_f.0, br_f.0), (7, 100), "the captures' calls");
    assert!(hq_f.2 > 0 && br_f.2 > 0, "both captures have premium-rate calls: {hq_f:?} {br_f:?}");
    let hq_calls = json(&hq, None, &["calls"]);
    let url = pg.url();
    let mut hq_parties: Vec<(String, String)> = hq_calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let to = if c["dialled"].as_str().unwrap().is_empty() { &c["callee"] } else { &c["dialled"] };
            (c["caller"].as_str().unwrap().to_string(), to.as_str().unwrap().to_string())
        })
        .collect();
    hq_parties.sort();
    // (The captures are of different months: in hq's, branch made no call.)
    let month = hq_calls[0]["started_at"].as_str().unwrap()[..7].to_string();
    let callbacks: Vec<(&str, Value)> =
        [("hq", &hq), ("branch", &branch)].map(|(n, s)| (n, json(s, None, &["callbacks", "--month", &month]))).into();
    let made = |v: &Value| v["groups"][0]["made"].as_u64().unwrap();
    assert!(made(&callbacks[0].1) > 0, "hq's dispatch group calls out in {month}: {:?}", callbacks[0]);
    assert_ne!(callbacks[0].1, callbacks[1].1, "the sites' reports differ");
    let want = Expected { hq: hq_f, branch: br_f, hq_parties, month, callbacks };

    let (child, addr) = serve(&hq, &url).unwrap_or_else(|(code, said)| panic!("serve --store: {code:?} {said}"));
    let _serving = Serving(child);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(drive_the_page(&format!("http://{addr}"), &want));
}

async fn drive_the_page(base: &str, want: &Expected) {
    let (hq_f, br_f) = (want.hq, want.branch);
    let union = (hq_f.0 + br_f.0, hq_f.1 + br_f.1, hq_f.2 + br_f.2);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let b = connect(&driver, profile.path()).await;
    let session = b.session_id().await.unwrap().unwrap();

    // Log in as the supervisor, with the tokens of the config `serve` was given.
    b.goto(&format!("{base}/")).await.unwrap();
    wait_js(&b, "!document.getElementById('login').hidden", 10, "the login form").await;
    b.find(Locator::Id("login-token")).await.unwrap().send_keys(SUP).await.unwrap();
    click(&b, "#login-form button[type=submit]").await;
    wait_js(&b, "!document.getElementById('app').hidden", 10, "the app after login").await;
    wait_js(&b, "document.getElementById('who').textContent.includes('sup-1')", 5, "who").await;

    // 1. The site selector, in every filter: all sites, then each by name.
    click(&b, "button[data-tab=calls]").await;
    for form in ["#calls-filter", "#charts-filter", "#register-filter"] {
        let options = js(
            &b,
            &format!("return [...document.querySelectorAll('{form} select[name=site] option')].map(o => [o.value, o.textContent]);"),
        )
        .await;
        assert_eq!(
            options,
            serde_json::json!([["", "all sites"], ["branch", "branch"], ["hq", "hq"]]),
            "{form}'s site selector"
        );
    }

    // 2. All sites: the union, 100 calls on the first page and the rest after "More".
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 100", 10, "the first 100 calls").await;
    assert_eq!(js(&b, "return document.getElementById('calls-more').hidden;").await, Value::Bool(false), "More");
    assert_eq!(js(&b, "return document.querySelector('#calls-table th.site-col').hidden;").await, Value::Bool(false));
    click(&b, "#calls-more").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 107", 10, "all 107 calls").await;
    let rows = table(&b).await;
    let of = |rows: &[Vec<String>], s: &str| rows.iter().filter(|r| r.last().map(String::as_str) == Some(s)).count();
    assert_eq!((of(&rows, "hq"), of(&rows, "branch")), (7, 100), "each row names its site");
    assert_eq!(js(&b, "return document.getElementById('calls-more').hidden;").await, Value::Bool(true));
    screenshot(&b, "central-01-calls-all-sites").await;

    // 3. One site: its own calls, no more.
    choose(&b, "#calls-filter", "hq").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 7", 10, "hq's 7 calls").await;
    let rows = table(&b).await;
    assert_eq!(of(&rows, "hq"), 7, "{rows:?}");
    let mut shown: Vec<(String, String)> = rows.iter().map(|r| (r[1].clone(), r[2].clone())).collect();
    shown.sort();
    assert_eq!(shown, want.hq_parties, "hq's calls as hq's own database lists them");
    assert_eq!(js(&b, "return document.getElementById('calls-more').hidden;").await, Value::Bool(true));
    screenshot(&b, "central-02-calls-hq").await;
    choose(&b, "#calls-filter", "branch").await;
    wait_js(
        &b,
        "document.querySelectorAll('#calls-table tbody tr').length === 100 && \
         [...document.querySelectorAll('#calls-table tbody tr')].every(r => r.lastChild.textContent === 'branch')",
        10,
        "branch's 100 calls",
    )
    .await;
    assert_eq!(js(&b, "return document.getElementById('calls-more').hidden;").await, Value::Bool(true), "no more");
    // A row's detail is its site's call.
    click(&b, "#calls-table tbody tr").await;
    wait_js(
        &b,
        "!document.getElementById('call-detail').hidden && document.getElementById('call-detail').textContent.includes('INVITE')",
        10,
        "a branch call's detail",
    )
    .await;

    // 4. The charts' figures: the union, then each site's own.
    click(&b, "button[data-tab=charts]").await;
    totals(&b, union, "the union's totals").await;
    // p90 over the central store comes from the rollups' histograms: the legend says so.
    let legend =
        b.execute("return document.getElementById('chart-talk').getAttribute('aria-label')", vec![]).await.unwrap();
    assert_eq!(legend.as_str(), Some("mean, ≈ p90"), "{legend}");
    screenshot(&b, "central-03-charts-all-sites").await;
    choose(&b, "#charts-filter", "hq").await;
    totals(&b, hq_f, "hq's totals").await;
    screenshot(&b, "central-04-charts-hq").await;
    choose(&b, "#charts-filter", "branch").await;
    totals(&b, br_f, "branch's totals").await;
    choose(&b, "#charts-filter", "").await;
    totals(&b, union, "the union's totals again").await;

    // 5. The month's call-back figures (STA-3), per site: each site's own report.
    let month = &want.month;
    click(&b, "button[data-tab=register]").await;
    js(&b, &format!("document.querySelector('#register-filter [name=month]').value = '{month}'; return null;")).await;
    for (site, own) in &want.callbacks {
        choose(&b, "#register-filter", site).await;
        let cells: Vec<Vec<String>> = own["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let rate = g["answered_rate"].as_f64().map_or("–".to_string(), |r| format!("{:.1}%", r * 100.0));
                vec![
                    g["group"].as_str().unwrap().to_string(),
                    g["made"].to_string(),
                    g["numbers"].to_string(),
                    g["answered"].to_string(),
                    rate,
                    g["effective"].to_string(),
                    g["effective_min_talk_s"].as_f64().map(|s| format!("{s}")).unwrap(),
                ]
            })
            .collect();
        let want_text = serde_json::to_string(&cells).unwrap();
        wait_js(
            &b,
            &format!(
                "JSON.stringify([...document.querySelectorAll('#callbacks-table tbody tr')].map(r => [...r.cells].map(c => c.textContent))) === {}",
                serde_json::to_string(&want_text).unwrap()
            ),
            10,
            &format!("{site}'s call-back figures"),
        )
        .await;
        screenshot(&b, &format!("central-05-callbacks-{site}")).await;
    }

    let log = console(&driver, &session).await;
    b.close().await.unwrap();
    std::fs::write(shots().join("central-console.json"), serde_json::to_string_pretty(&log).unwrap()).unwrap();
    let bad: Vec<&Value> = log.iter().filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG").collect();
    assert!(bad.is_empty(), "console errors/warnings: {bad:#?}");
}
