//! Leg-linking tests in packet time: a phone's leg to the PBX and the PBX's legs onward,
//! built as values; and a property test of random B2BUA traffic (several calls, each with
//! a caller leg and up to three onward legs, answers, cancels, byes, duplicates, timeouts in
//! any interleaving) that checks the call-level contract the engine relies on: one
//! `Started` and one `Ended` per call, every other event inside its call, every leg in at
//! most one call, and all state freed at the end.

use super::test_msg::*;
use super::tests_calls::{t, H};
use super::*;
use crate::config::{ExtensionSet, NetSet};
use crate::sip::Method;
use proptest::prelude::*;
use std::collections::HashMap;

const PHONE: &str = "10.0.1.1:5060";
const PBX: &str = "10.0.0.2:5060";

fn tracker(linking: bool) -> H {
    tracker_with(linking, link::MAX_RECENT)
}

fn tracker_with(linking: bool, max_pending: usize) -> H {
    let pbx = if linking { vec!["10.0.0.2".to_string()] } else { Vec::new() };
    H::with_config(TrackConfig {
        cycle_ms: 5000,
        call_timeout: Dur::from_secs(60),
        extensions: ExtensionSet::parse(&["8000-8999".to_string()]).unwrap(),
        link: LinkConfig {
            pbx: NetSet::parse(&pbx).unwrap(),
            headers: Vec::new(),
            window: Dur::from_millis(2000),
            pickup_codes: Vec::new(),
            max_pending,
        },
        max_calls: crate::track::MAX_CALLS,
    })
}

fn phone_of(i: usize) -> String {
    format!("10.0.3.{}:5060", i + 1)
}

/// 8001 → PBX → 8002, answered after 6 s, 10 s of talk.
#[test]
fn internal_call_through_the_pbx_is_one_call() {
    for linking in [true, false] {
        let mut r = tracker(linking);
        let a = Dialog::new("a@phone", "8001", "8002");
        let b = Dialog::new("b@pbx", "8001", "8002");
        r.sip_at(t(0), PHONE, PBX, a.invite(1).sdp(sdp("10.0.1.1", 4000)));
        r.sip_at(t(20), PBX, &phone_of(1), b.invite(1).sdp(sdp("10.0.0.2", 20000)));
        r.sip_at(t(60), &phone_of(1), PBX, b.r(180, 1));
        r.sip_at(t(70), PBX, PHONE, a.r(180, 1));
        r.sip_at(t(6060), &phone_of(1), PBX, b.r(200, 1).sdp(sdp("10.0.3.2", 4000)));
        r.sip_at(t(6070), PBX, PHONE, a.r(200, 1).sdp(sdp("10.0.0.2", 20002)));
        r.sip_at(t(16070), PHONE, PBX, a.req(Method::Bye, 2));
        r.sip_at(t(16080), PBX, &phone_of(1), b.req(Method::Bye, 2));
        let starts = r.ev.iter().filter(|e| matches!(e, CallEvent::Started(_))).count();
        let recs = r.records();
        if linking {
            assert_eq!((starts, recs.len()), (1, 1), "{:#?}", r.ev);
            let c = recs[0];
            assert_eq!(c.linking.legs.len(), 2);
            assert_eq!(c.linking.link, Some(LinkKind::Inferred));
            assert_eq!(c.linking.answered_by.as_deref(), Some("8002"));
            assert_eq!((c.rings, c.ring_ms, c.talk_ms), (2, 6000, 10020));
            assert_eq!(c.call_id, "a@phone");
            assert_eq!(r.tr.stats().link.by_inference, 1);
        } else {
            assert_eq!((starts, recs.len()), (2, 2), "one record per dialog without linking");
            assert!(recs.iter().all(|c| c.linking.link.is_none() && c.linking.legs.len() == 1));
        }
    }
}

/// A leg the PBX starts toward a number nobody arriving dialled stays its own call, and
/// so does a leg after the window with no held call.
#[test]
fn unmatched_legs_stay_calls_of_their_own() {
    let mut r = tracker(true);
    let a = Dialog::new("a@phone", "8001", "8002");
    let b = Dialog::new("b@pbx", "8009", "8005");
    let late = Dialog::new("late@pbx", "8001", "8002");
    r.sip_at(t(0), PHONE, PBX, a.invite(1));
    r.sip_at(t(20), PBX, &phone_of(1), b.invite(1));
    r.sip_at(t(5000), PBX, &phone_of(2), late.invite(1));
    let starts = r.ev.iter().filter(|e| matches!(e, CallEvent::Started(_))).count();
    assert_eq!(starts, 3, "{:#?}", r.ev);
    assert_eq!(r.tr.stats().link.by_inference, 0);
}

#[derive(Clone, Debug)]
enum Op {
    /// Call `c`'s caller leg arrives at the PBX.
    Arrive {
        c: usize,
    },
    /// The PBX starts onward leg `l` of call `c`.
    Onward {
        c: usize,
        l: usize,
    },
    /// A response on a leg (`l` = 0 is the caller leg).
    Resp {
        c: usize,
        l: usize,
        status: u16,
    },
    Cancel {
        c: usize,
        l: usize,
    },
    Bye {
        c: usize,
        l: usize,
        by_caller: bool,
    },
    Dup {
        c: usize,
        l: usize,
    },
    Wait {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0usize..3;
    let l = 0usize..4;
    prop_oneof![
        3 => c.clone().prop_map(|c| Op::Arrive { c }),
        4 => (c.clone(), 1usize..4).prop_map(|(c, l)| Op::Onward { c, l }),
        6 => (c.clone(), l.clone(), prop::sample::select(vec![100u16, 180, 183, 200, 486, 487, 603]))
            .prop_map(|(c, l, status)| Op::Resp { c, l, status }),
        2 => (c.clone(), l.clone()).prop_map(|(c, l)| Op::Cancel { c, l }),
        3 => (c.clone(), l.clone(), any::<bool>()).prop_map(|(c, l, by_caller)| Op::Bye { c, l, by_caller }),
        1 => (c.clone(), l).prop_map(|(c, l)| Op::Dup { c, l }),
        2 => (1i64..4000).prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_b2bua_traffic_keeps_the_call_contract(ops in prop::collection::vec(op(), 1..80)) {
        let mut r = tracker(true);
        let caller = |c: usize| format!("80{}1", c + 1);
        let legs: Vec<Vec<Dialog>> = (0..3)
            .map(|c| (0..4).map(|l| Dialog::new(&format!("c{c}-l{l}"), &caller(c), &format!("80{c}{}", l + 5))).collect())
            .collect();
        let ends = |c: usize, l: usize| -> (String, String) {
            if l == 0 { (format!("10.0.1.{}:5060", c + 1), PBX.to_string()) } else { (PBX.to_string(), phone_of(c * 4 + l)) }
        };
        let mut now = 0i64;
        for op in ops {
            now += 5;
            match op {
                Op::Arrive { c } => { let (s, d) = ends(c, 0); r.sip_at(t(now), &s, &d, legs[c][0].invite(1).sdp(sdp("10.0.1.1", 4000 + c as u16))); }
                Op::Onward { c, l } => { let (s, d) = ends(c, l); r.sip_at(t(now), &s, &d, legs[c][l].invite(1).sdp(sdp("10.0.0.2", 20000 + (c * 4 + l) as u16))); }
                Op::Resp { c, l, status } => { let (s, d) = ends(c, l); r.sip_at(t(now), &d, &s, legs[c][l].r(status, 1)); }
                Op::Cancel { c, l } => { let (s, d) = ends(c, l); r.sip_at(t(now), &s, &d, legs[c][l].req(Method::Cancel, 1)); }
                Op::Bye { c, l, by_caller } => {
                    let (s, d) = ends(c, l);
                    if by_caller { r.sip_at(t(now), &s, &d, legs[c][l].req(Method::Bye, 2)) } else { r.sip_at(t(now), &d, &s, legs[c][l].callee_req(Method::Bye, 2)) }
                }
                Op::Dup { c, l } => { let (s, d) = ends(c, l); r.sip_at(t(now), &s, &d, legs[c][l].invite(1).via("z9hG4bK-copy")); }
                Op::Wait { ms } => { now += ms; r.run_until(t(now)); }
            }
        }
        r.tr.end_all(t(now), EndReason::CaptureEnded, &mut r.ev);
        r.run_until(t(now + 200_000));
        // The contract: Started, then its events, then one Ended, per call key.
        let mut state: HashMap<CallKey, u8> = HashMap::new();
        for e in &r.ev {
            match e {
                CallEvent::Started(s) => prop_assert_eq!(state.insert(s.key, 1), None, "second Started {:?}", s.key),
                CallEvent::Ringing { key, .. } | CallEvent::Answered { key, .. } | CallEvent::Dtmf { key, .. }
                | CallEvent::LegLinked { key, .. } => prop_assert_eq!(state.get(key).copied(), Some(1), "event outside its call {:?}", e),
                CallEvent::Ended(rec) => {
                    prop_assert_eq!(state.insert(rec.key, 2), Some(1), "Ended without Started {:?}", rec.key);
                    prop_assert!(!rec.linking.legs.is_empty());
                    prop_assert!(rec.ended_at >= rec.started_at && rec.ring_ms >= 0 && rec.talk_ms >= 0);
                    let mut ids: Vec<&str> = rec.linking.legs.iter().map(|l| l.call_id.as_str()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), rec.linking.legs.len(), "a leg twice in one call");
                }
            }
        }
        prop_assert!(state.values().all(|&s| s == 2), "a call never ended: {:?}", state);
        prop_assert_eq!(r.tr.index_sizes(), (0, 0, 0, 0));
        prop_assert_eq!(r.tr.link.open_calls(), 0, "the linker holds no call after the drain");
    }
}

/// Past `max_pending_legs` the oldest arriving leg leaves the candidates (counted); the
/// newest still links.
#[test]
fn a_full_candidate_table_evicts_the_oldest_arriving_leg() {
    let mut r = tracker_with(true, 2);
    let arrive: Vec<Dialog> =
        (0..3).map(|i| Dialog::new(&format!("a{i}@phone"), &format!("800{i}"), &format!("810{i}"))).collect();
    for (i, d) in arrive.iter().enumerate() {
        r.sip_at(t(10 * i as i64), &phone_of(i), PBX, d.invite(1));
    }
    assert_eq!(r.tr.evictions(), (0, 1));
    assert_eq!(r.tr.stats().link.evicted, 1);
    // The PBX's onward legs: the newest arrival's links; the evicted one's does not.
    r.sip_at(t(100), PBX, &phone_of(9), Dialog::new("b2@pbx", "8002", "8102").invite(1));
    r.sip_at(t(110), PBX, &phone_of(8), Dialog::new("b0@pbx", "8000", "8100").invite(1));
    let starts = r.ev.iter().filter(|e| matches!(e, CallEvent::Started(_))).count();
    assert_eq!((starts, r.tr.stats().link.by_inference), (4, 1), "{:#?}", r.ev);
}
