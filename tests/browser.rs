//! The web page in real headless Chromium (Debian's chromium + chromium-driver, which
//! scripts/install-test-deps installs), driven over WebDriver with fantoccini, against a
//! real server on 127.0.0.1 and a database filled by replaying captures:
//! - the page loads and a person logs in with a token through the form;
//! - a filter narrows the calls table (every row left is the extension's), a call's
//!   detail shows its SIP ladder;
//! - a premium call (1003 → 16800123) replayed through the real pipeline while the page is
//!   open appears in the live view;
//! - a recording plays: the audio element's time advances, and the fetch is in the
//!   playback log;
//! - the language switch gives Chinese labels, drawn with real glyphs (not tofu boxes:
//!   fonts-noto-cjk);
//! - local mode (no tokens): the page works from 127.0.0.1 without logging in, and offers
//!   no "Log out";
//! - the browser's console log (read from chromedriver, every level) has no error, at
//!   the end of all that.
//!
//! Screenshots are saved under target/tmp/browser/ for a person to look at.
//! One test function: one chromedriver and one browser, nothing else in this binary runs
//! at the same time. chromedriver is started in a process group of its own on a free
//! port and that group is ended by its id when the test ends (also on a panic).

mod api_support;
mod browser_support;

use api_support::*;
use browser_support::*;
use callwarden::api::EventsSink;
use fantoccini::Locator;
use serde_json::Value;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium() {
    let site = Site::new();
    // (Before the recording below is added: a replay expires recordings past retention.)
    let legs = legs_captures();
    site.replay(&[
        &Path::new(PUBLIC).join("gen-synth-100-calls.pcap"),
        &Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap"),
        &legs.path().join("ringgroup-answered.pcap"),
    ]);
    site.add_recording("00000000000000b1", "rec-call-1", 1_762_050_000_000_000, "complete", "2026/11/b1.wav", 4);
    let tx = events();
    let sink = EventsSink::new(tx.clone(), "Asia/Shanghai");
    let srv = Server::start(site.state().with_events(tx.clone()).with_live_calls(sink.live_calls_fn())).await;

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let b = connect(&driver, profile.path()).await;
    let session = b.session_id().await.unwrap().unwrap();
    let mut log: Vec<Value> = Vec::new();

    // 1. The page loads, asks for a token, and logging in shows the app.
    b.goto(&srv.url("/")).await.unwrap();
    wait_js(&b, "!document.getElementById('login').hidden", 10, "the login form").await;
    screenshot(&b, "01-login").await;
    b.find(Locator::Id("login-token")).await.unwrap().send_keys(ADMIN).await.unwrap();
    click(&b, "#login-form button[type=submit]").await;
    wait_js(&b, "!document.getElementById('app').hidden", 10, "the app after login").await;
    wait_js(&b, "document.getElementById('who').textContent.includes('admin-1')", 5, "who").await;
    assert_eq!(js(&b, "return document.getElementById('logout').hidden;").await, Value::Bool(false), "Log out");
    wait_js(&b, "document.getElementById('live-status').classList.contains('on')", 10, "live events connected").await;

    // 2. A premium call replayed while the page is open appears in the live view.
    let settings = site.settings();
    let replay = tokio::task::spawn_blocking(move || {
        drive(&settings, &Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap"), vec![Box::new(sink)]);
    });
    wait_js(
        &b,
        "[...document.querySelectorAll('#live-violations li[data-rule=\"OUT-1\"]')]\
         .some(li => li.textContent.includes('16800123') && li.textContent.includes('1003'))",
        20,
        "the premium-rate violation in the live view",
    )
    .await;
    replay.await.unwrap();
    wait_js(&b, "document.querySelectorAll('#live-ended li').length >= 7", 10, "the ended calls").await;
    screenshot(&b, "02-live").await;

    // 3. The calls table, then a filter narrows it to one extension's calls.
    click(&b, "button[data-tab=calls]").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 100", 10, "the first 100 calls").await;
    let filter_ext = "1003";
    b.find(Locator::Css("#calls-filter input[name=ext]")).await.unwrap().send_keys(filter_ext).await.unwrap();
    click(&b, "#calls-filter button[type=submit]").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length < 100", 10, "the filtered table").await;
    let rows = js(
        &b,
        "return [...document.querySelectorAll('#calls-table tbody tr')].map(r => [...r.cells].map(c => c.textContent));",
    )
    .await;
    let rows = rows.as_array().unwrap();
    let api_rows = get_json(&client(), &srv.url(&format!("/api/calls?ext={filter_ext}&limit=1000")), SUP).await;
    assert_eq!(rows.len(), api_rows["calls"].as_array().unwrap().len(), "the table shows what the API answers");
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r[1] == filter_ext || r[2] == filter_ext, "a row of another extension: {r}");
    }
    screenshot(&b, "03-calls-filtered").await;
    // A call's detail with its SIP ladder.
    click(&b, "#calls-table tbody tr").await;
    wait_js(
        &b,
        "!document.getElementById('call-detail').hidden && document.getElementById('call-detail').textContent.includes('INVITE')",
        10,
        "the call detail with its ladder",
    )
    .await;
    let detail = js(&b, "return document.getElementById('call-detail').textContent;").await;
    let detail = detail.as_str().unwrap();
    assert!(!detail.contains("null") && !detail.contains("undefined"), "a missing value shown as text: {detail}");
    screenshot(&b, "04-call-detail").await;

    // A call through the PBX: one row, its detail lists its four legs on a timeline.
    let ext = b.find(Locator::Css("#calls-filter input[name=ext]")).await.unwrap();
    ext.clear().await.unwrap();
    ext.send_keys("8022").await.unwrap();
    click(&b, "#calls-filter button[type=submit]").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 1", 10, "the one ring-group call").await;
    click(&b, "#calls-table tbody tr").await;
    wait_js(&b, "document.querySelectorAll('#call-legs svg.legs rect.leg-ring').length === 4", 10, "four legs").await;
    let legs_text = js(&b, "return document.getElementById('call-legs').textContent;").await;
    let legs_text = legs_text.as_str().unwrap();
    for want in ["caller-side", "callee-side", "ring", "13900139000 → 8022", "(487)"] {
        assert!(legs_text.contains(want), "{want:?} not in the legs timeline: {legs_text}");
    }
    // One answered leg to the phone and the caller's own: two talk bars.
    let talk = js(&b, "return document.querySelectorAll('#call-legs rect.leg-talk').length;").await;
    assert_eq!(talk, 2);
    let detail = js(&b, "return document.getElementById('call-detail').textContent;").await;
    assert!(detail.as_str().unwrap().contains("inferred"), "the link evidence is shown");
    screenshot(&b, "04b-call-legs").await;

    // 4. Charts draw (something other than the background on each canvas).
    click(&b, "button[data-tab=charts]").await;
    for id in ["chart-rings", "chart-daily", "chart-talk"] {
        wait_js(
            &b,
            &format!(
                // Copied to a canvas of the test's own, so the page's canvas is not read back
                // (the browser would warn about repeated readbacks).
                "(() => {{ const c = document.getElementById('{id}'); const t = document.createElement('canvas'); \
                 t.width = c.width; t.height = c.height; const g = t.getContext('2d', {{ willReadFrequently: true }}); \
                 g.drawImage(c, 0, 0); const d = g.getImageData(0, 0, t.width, t.height).data; \
                 for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }})()"
            ),
            10,
            id,
        )
        .await;
    }
    screenshot(&b, "05-charts").await;

    // 5. A recording plays: the audio element's time advances; the fetch is logged.
    click(&b, "button[data-tab=recordings]").await;
    wait_js(
        &b,
        "document.querySelector('#rec-table tbody tr[data-recording=\"00000000000000b1\"]')",
        10,
        "the recording",
    )
    .await;
    click(&b, "#rec-table tbody tr[data-recording=\"00000000000000b1\"] button.play").await;
    wait_js(&b, "document.getElementById('audio').currentTime > 0.5", 15, "the audio playing").await;
    let err = js(&b, "const a = document.getElementById('audio'); return a.error && a.error.message;").await;
    assert_eq!(err, Value::Null);
    wait_js(&b, "document.querySelector('#log-table tbody tr')", 10, "the playback log on the page").await;
    screenshot(&b, "06-recording-playing").await;
    let plog = get_json(&client(), &srv.url("/api/playback-log"), ADMIN).await;
    let prow = &plog["rows"][0];
    assert_eq!(prow["who"], "admin-1", "{plog}");
    assert_eq!(prow["recording_id"], "00000000000000b1");

    // 5b. The long-distance register tab, and with it the month's call-back figures
    //     (STA-3): the table shows what /api/callbacks answers, group by group.
    let first = get_json(&client(), &srv.url("/api/calls?limit=1"), ADMIN).await;
    let month = first["calls"][0]["started_at"].as_str().unwrap()[..7].to_string();
    click(&b, "button[data-tab=register]").await;
    js(&b, &format!("document.querySelector('#register-filter [name=month]').value = '{month}'; return null;")).await;
    click(&b, "#register-filter button[type=submit]").await;
    let cb = get_json(&client(), &srv.url(&format!("/api/callbacks?month={month}")), ADMIN).await;
    let groups = cb["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["made"].as_u64() > Some(0)), "the fixture has outbound calls in a group: {cb}");
    let want: Vec<Vec<String>> = groups
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
                // As JavaScript prints a number: 30.0 → "30", 2.5 → "2.5".
                g["effective_min_talk_s"].as_f64().map(|s| format!("{s}")).unwrap(),
            ]
        })
        .collect();
    // Wait for the month asked, not just any table (the register tab may first show the
    // default month's rows, as many of them).
    let want_text = serde_json::to_string(&want).unwrap();
    wait_js(
        &b,
        &format!(
            "JSON.stringify([...document.querySelectorAll('#callbacks-table tbody tr')].map(r => [...r.cells].map(c => c.textContent))) === {}",
            serde_json::to_string(&want_text).unwrap()
        ),
        10,
        "the call-back figures",
    )
    .await;
    let shown: Vec<Vec<String>> = serde_json::from_value(
        js(
            &b,
            "return [...document.querySelectorAll('#callbacks-table tbody tr')].map(r => [...r.cells].map(c => c.textContent));",
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown, want, "the page shows the API's call-back figures");
    screenshot(&b, "06b-register-callbacks").await;

    // 6. The language switch.
    b.find(Locator::Id("lang")).await.unwrap().select_by_value("zh").await.unwrap();
    wait_js(&b, "document.querySelector('button[data-tab=calls]').textContent === '通话记录'", 5, "Chinese labels")
        .await;
    screenshot(&b, "07-chinese").await;
    // Real glyphs, not tofu: with no CJK font every Chinese character is drawn as the same
    // empty box. Drawn with the label's own font on a canvas, distinct characters must give
    // distinct pixels (and not the box of a private-use code point, which no font has).
    let tofu = js(
        &b,
        r#"const font = getComputedStyle(document.querySelector('button[data-tab=calls]')).font;
           const draw = ch => {
             const c = document.createElement('canvas'); c.width = 64; c.height = 64;
             const x = c.getContext('2d'); x.font = font; x.textBaseline = 'top';
             x.fillText(ch, 4, 4);
             return Array.from(x.getImageData(0, 0, 64, 64).data).join(',');
           };
           const chars = [...'通话记录'], box = draw('\uE000');
           const imgs = chars.map(draw);
           return { font, distinct: new Set(imgs).size, boxes: imgs.filter(i => i === box).length,
                    blank: imgs.filter(i => !/[1-9]/.test(i)).length };"#,
    )
    .await;
    assert_eq!(tofu["distinct"], 4, "Chinese renders as tofu (install fonts-noto-cjk): {tofu}");
    assert_eq!(tofu["boxes"], 0, "Chinese renders as the missing-glyph box: {tofu}");
    assert_eq!(tofu["blank"], 0, "Chinese renders as nothing: {tofu}");
    b.find(Locator::Id("lang")).await.unwrap().select_by_value("en").await.unwrap();

    log.extend(console(&driver, &session).await);

    // 7. Local mode: no tokens, the page works from 127.0.0.1 with no login.
    let local = Site::new();
    std::fs::write(&local.config, "[site]\ntimezone = \"Asia/Shanghai\"\nextensions = [\"1000-1099\"]\n").unwrap();
    local.replay(&[&Path::new(PUBLIC).join("gen-sipp-mixed-calls-udp.pcap")]);
    let srv2 = Server::start(local.state()).await;
    b.goto(&srv2.url("/")).await.unwrap();
    wait_js(&b, "!document.getElementById('app').hidden", 10, "the app in local mode").await;
    wait_js(&b, "document.getElementById('who').textContent.includes('local')", 5, "who in local mode").await;
    assert_eq!(js(&b, "return document.getElementById('login').hidden;").await, Value::Bool(true));
    assert_eq!(
        js(&b, "return document.getElementById('logout').hidden;").await,
        Value::Bool(true),
        "no login in local mode: no Log out"
    );
    click(&b, "button[data-tab=calls]").await;
    wait_js(&b, "document.querySelectorAll('#calls-table tbody tr').length === 7", 10, "local mode's calls").await;
    screenshot(&b, "08-local-mode").await;
    log.extend(console(&driver, &session).await);

    b.close().await.unwrap();
    srv.stop().await.unwrap();
    srv2.stop().await.unwrap();

    // The console, every level: no error or warning from the page at any step.
    std::fs::write(shots().join("console.json"), serde_json::to_string_pretty(&log).unwrap()).unwrap();
    let bad: Vec<&Value> = log.iter().filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG").collect();
    assert!(bad.is_empty(), "console errors/warnings: {bad:#?}");
}
