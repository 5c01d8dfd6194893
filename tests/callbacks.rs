//! STA-3 through the built binary: tests/fixtures/rules/outbound.pcap replayed into a
//! temporary site whose callers form two groups, then `callwarden callbacks`. Every
//! expected figure is computed here from the independent tshark reading
//! (outbound.pcap.json: who called which number, answered or not, talk time), never
//! from callwarden's own output.

mod common;

use common::{reference, RefCall};
use serde_json::Value;
use std::collections::HashSet;
use std::process::{Command, Output};

/// `callback`: every caller of the capture but 8061, which is `sales`. Each group has its
/// own effective threshold, and `[limits]` one that would make nothing effective, so a
/// report that ignored the group's value would fail.
const CONFIG: &str = r#"
[site]
name = "hq"
timezone = "Asia/Shanghai"
area_code = "021"
outside_prefix = "0"
extensions = ["8000-8999"]

[limits]
effective_min_talk_s = 60

[[group]]
name = "callback"
extensions = ["8001-8060", "8062-8099"]
effective_min_talk_s = 4

[[group]]
name = "sales"
extensions = ["8061"]
effective_min_talk_s = 3

[store]
path = "cw.db"

[recordings]
dir = "rec"
"#;

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("cw.toml"), CONFIG).expect("config");
        let site = Site { dir };
        let pcap = common::fixture("outbound.pcap");
        site.ok(&["replay", "--quiet", "--no-webhooks", pcap.to_str().expect("path")]);
        site
    }
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_callwarden"))
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("cw.toml"))
            .output()
            .expect("run callwarden")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("json")
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("path").to_string()
    }
}

/// Our extensions: 4 digits starting with 8 (the site's 8000-8999).
fn ours(user: &str) -> bool {
    user.len() == 4 && user.starts_with('8') && user.bytes().all(|b| b.is_ascii_digit())
}

/// The reference calls of a group: ours calling a number that is not ours.
fn outbound_of(r: &[RefCall], group: &dyn Fn(&str) -> bool) -> Vec<RefCall> {
    r.iter().filter(|c| ours(&c.from) && group(&c.from) && !ours(&c.to)).cloned().collect()
}

fn is_sales(ext: &str) -> bool {
    ext == "8061"
}

/// made, numbers, answered, effective (talk ≥ min_ms) from the reference.
fn expected(calls: &[RefCall], min_ms: i64) -> (u64, u64, u64, u64) {
    let numbers: HashSet<&str> = calls.iter().map(|c| c.to.as_str()).collect();
    let answered = calls.iter().filter(|c| c.answered_at.is_some()).count() as u64;
    let effective = calls.iter().filter(|c| c.answered_at.is_some() && c.talk_ms >= min_ms).count() as u64;
    (calls.len() as u64, numbers.len() as u64, answered, effective)
}

fn figures(g: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| g[k].as_u64().unwrap_or_else(|| panic!("{k} in {g}"));
    (n("made"), n("numbers"), n("answered"), n("effective"))
}

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"].as_array().expect("groups").iter().find(|g| g["group"] == name).expect(name)
}

#[test]
fn sta_3_made_answered_and_rate_per_group() {
    let r = reference("outbound");
    // The capture was made on 2026-11-25 local time: all of it is in the month.
    assert!(r.iter().all(|c| common::local(c.invite_at).strftime("%Y-%m").to_string() == "2026-11"));
    let site = Site::new();
    let report = site.json(&["callbacks", "--month", "2026-11", "--json"]);
    assert_eq!(report["month"], "2026-11");
    let names: Vec<&str> =
        report["groups"].as_array().expect("groups").iter().filter_map(|g| g["group"].as_str()).collect();
    assert_eq!(names, ["callback", "sales"], "every group of the config, in its order");

    for (name, member, min_ms) in
        [("callback", &(|e: &str| !is_sales(e)) as &dyn Fn(&str) -> bool, 4000), ("sales", &is_sales, 3000)]
    {
        let want = expected(&outbound_of(&r, member), min_ms);
        let g = group(&report, name);
        assert_eq!(figures(g), want, "{name}: {g}");
        let rate = g["answered_rate"].as_f64().expect("rate");
        assert!((rate - want.2 as f64 / want.0 as f64).abs() < 1e-12, "{name}: {rate}");
        assert!(g.get("plan").is_none(), "no plan asked for");
    }
    // The capture's sales calls: 3.3 s, 1.3 s and busy. Guard against a fixture that no
    // longer tests anything (all answered, or none effective).
    let sales = expected(&outbound_of(&r, &is_sales), 3000);
    assert_eq!(sales, (3, 3, 2, 1));

    // One group, and the table.
    let one = site.json(&["callbacks", "--month", "2026-11", "--group", "sales", "--json"]);
    assert_eq!(one["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(figures(&one["groups"][0]), sales);
    let table = site.ok(&["callbacks", "--month", "2026-11", "--group", "sales"]);
    let line = table.lines().nth(1).expect("a row");
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells, ["sales", "3", "3", "2", "66.7%", "1", "3"], "{table}");

    // `--site`: this site's own name is all of it; another site's calls are not here.
    assert_eq!(site.json(&["callbacks", "--month", "2026-11", "--site", "hq", "--json"]), report);
    let elsewhere = site.json(&["callbacks", "--month", "2026-11", "--site", "branch", "--json"]);
    assert_eq!(figures(group(&elsewhere, "sales")), (0, 0, 0, 0));
    assert_eq!(figures(group(&elsewhere, "callback")), (0, 0, 0, 0));

    // Another month: nothing made, no rate.
    let oct = site.json(&["callbacks", "--month", "2026-10", "--json"]);
    let g = group(&oct, "callback");
    assert_eq!((figures(g), &g["answered_rate"]), ((0, 0, 0, 0), &Value::Null));
}

#[test]
fn sta_3_plan_reached_answered_and_never_called() {
    let r = reference("outbound");
    let site = Site::new();
    // Each planned number as a supervisor writes it, with the number the capture dialled
    // for it (None: nobody called it). 13812340004 was called, but by sales, not by the
    // call-back group.
    let plan: [(&str, Option<&str>); 7] = [
        ("138 1234 0002", Some("013812340002")),
        ("+86 138-1234-0003", Some("013812340003")),
        ("010 1234 5678", Some("001012345678")),
        ("95588", Some("095588")),
        ("13800000000", None),
        ("13812340004", None),
        ("013812340007", Some("013812340007")),
    ];
    let text = format!(
        "号码,备注\n{}\n13812340002,again\n",
        plan.iter().map(|p| format!("{},x", p.0)).collect::<Vec<_>>().join("\n")
    );
    let file = site.path("plan.csv");
    std::fs::write(&file, text).expect("plan");

    let callback = outbound_of(&r, &|e| !is_sales(e));
    let calls_to = |dialled: &str| callback.iter().filter(|c| c.to == dialled).collect::<Vec<_>>();
    let reached: Vec<_> = plan.iter().filter_map(|p| p.1).filter(|d| !calls_to(d).is_empty()).collect();
    let answered = reached.iter().filter(|d| calls_to(d).iter().any(|c| c.answered_at.is_some())).count();
    // The fixture holds the calls the plan names (else this test proves nothing).
    assert_eq!(reached.len(), 5);
    assert!(calls_to("013812340004").is_empty() && r.iter().any(|c| c.to == "013812340004" && is_sales(&c.from)));

    let report = site.json(&["callbacks", "--month", "2026-11", "--group", "callback", "--plan", &file, "--json"]);
    let p = &group(&report, "callback")["plan"];
    assert_eq!(p["planned"], 7, "{p}");
    assert_eq!(p["reached"].as_u64(), Some(reached.len() as u64), "{p}");
    assert_eq!(p["answered"].as_u64(), Some(answered as u64), "{p}");
    assert!((p["completion_rate"].as_f64().expect("rate") - reached.len() as f64 / 7.0).abs() < 1e-12);
    assert_eq!(p["never_called"], serde_json::json!(["13800000000", "13812340004"]));
    // The group's own figures do not change with a plan.
    assert_eq!(figures(group(&report, "callback")), expected(&callback, 4000));

    let table = site.ok(&["callbacks", "--month", "2026-11", "--group", "callback", "--plan", &file]);
    assert!(table.contains("71.4%") && table.contains("2: 13800000000 13812340004"), "{table}");
}

#[test]
fn sta_3_bad_usage_and_bad_plan() {
    let site = Site::new();
    let code = |args: &[&str]| site.cmd(args).status.code();
    assert_eq!(code(&["callbacks", "--month", "2026-13"]), Some(2));
    assert_eq!(code(&["callbacks", "--month", "2026-11", "--group", "nobody"]), Some(2));
    let file = site.path("plan.txt");
    std::fs::write(&file, "13800000000\nsee attached\n").expect("plan");
    // A plan is per group.
    assert_eq!(code(&["callbacks", "--month", "2026-11", "--plan", &file]), Some(2));
    let out = site.cmd(&["callbacks", "--month", "2026-11", "--group", "callback", "--plan", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan.txt: line 2: not a telephone number"), "{err}");
}

/// The page's view: `GET /api/callbacks` from the real server over the same database gives
/// exactly the CLI's JSON (all groups, one group, an empty month); bad questions are 400s
/// that name the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sta_3_api_equals_cli() {
    let site = Site::new();
    let settings =
        callwarden::settings::Settings::load(Some(&site.dir.path().join("cw.toml")), None).expect("settings");
    let state = callwarden::api::AppState::new(site.dir.path().join("cw.db"), &settings).expect("api state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(callwarden::api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let c = reqwest::Client::builder().no_proxy().build().expect("client");
    let get = |q: &str| {
        let url = format!("http://{addr}/api/callbacks?{q}");
        let c = c.clone();
        async move {
            let res = c.get(url).send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    for (q, args) in [
        ("month=2026-11", vec!["callbacks", "--month", "2026-11", "--json"]),
        ("month=2026-11&group=sales", vec!["callbacks", "--month", "2026-11", "--group", "sales", "--json"]),
        ("month=2026-10", vec!["callbacks", "--month", "2026-10", "--json"]),
        ("month=2026-11&site=hq", vec!["callbacks", "--month", "2026-11", "--site", "hq", "--json"]),
        ("month=2026-11&site=branch", vec!["callbacks", "--month", "2026-11", "--site", "branch", "--json"]),
        ("month=2026-11&site=", vec!["callbacks", "--month", "2026-11", "--json"]),
    ] {
        let (status, api) = get(q).await;
        assert_eq!(status, 200, "{q}: {api}");
        assert_eq!(api, site.json(&args), "{q}");
    }
    let (_, all) = get("month=2026-11").await;
    assert_eq!(figures(group(&all, "sales")), (3, 3, 2, 1));
    let (_, branch) = get("month=2026-11&site=branch").await;
    assert_eq!(figures(group(&branch, "sales")), (0, 0, 0, 0), "not this site's calls");
    for (q, says) in [
        ("month=2026-13", "month: \"2026-13\" is not a month YYYY-MM"),
        ("month=2026-11&group=nobody", "group: \"nobody\" is not a [[group]] of the config"),
        ("", "month: required"),
    ] {
        let (status, err) = get(q).await;
        assert_eq!(status, 400, "{q}: {err}");
        assert!(err["error"].as_str().is_some_and(|e| e.contains(says)), "{q}: {err}");
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}
