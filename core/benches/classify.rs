//! Classification throughput: how many dialled numbers one core classifies per second,
//! with the non-allocating `classify_borrowed` (the hot path) and with `classify` (which
//! returns an owned String). Prints numbers/s; run with
//! `cargo bench -p callwarden-core --bench classify`. The target is ≥ 10 M numbers/s.
//! (A bench may read the clock: it is not part of the pure core.)

use callwarden_core::config::{Config, Group};
use callwarden_core::policy::Policy;
use std::hint::black_box;
use std::time::Instant;

/// A mix like a PBX's outbound day: locals, mobiles, long distance, some premium,
/// international, internal extensions, emergency, and odd forms.
const NUMBERS: [&str; 24] = [
    "012345678",
    "013912345678",
    "018612345678",
    "0075512345678",
    "001012345678",
    "016800123",
    "095588",
    "091234",
    "00085212345678",
    "000886212345678",
    "0001202555012",
    "04008123456",
    "8001",
    "8500",
    "0110",
    "119",
    "+8613912345678",
    "+862112345678",
    "017951075512345678",
    "002112345678",
    "19912345678",
    "alice",
    "*72",
    "sip:013800000000@pbx.example;user=phone",
];

/// CPU time this thread has run, from Linux's schedstat (ns); `None` elsewhere. The
/// machine may be shared, so numbers/s per CPU-second is the figure that means something.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn run(label: &str, rounds: usize, mut f: impl FnMut(&str) -> usize) {
    // Warm up, then time.
    let mut sink = 0usize;
    for n in NUMBERS.iter().cycle().take(100_000) {
        sink = sink.wrapping_add(f(black_box(n)));
    }
    let t = Instant::now();
    let cpu0 = thread_cpu_ns();
    for _ in 0..rounds {
        for n in NUMBERS.iter() {
            sink = sink.wrapping_add(f(black_box(n)));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    let count = rounds * NUMBERS.len();
    black_box(sink);
    let rate = |s: f64| count as f64 / s / 1e6;
    print!("{label:<28} {count} numbers: wall {secs:.3} s = {:.1} M/s", rate(secs));
    match cpu {
        Some(c) => {
            println!("; CPU {c:.3} s = {:.1} M numbers/s per core ({:.1} ns each)", rate(c), c * 1e9 / count as f64)
        }
        None => println!(),
    }
}

fn main() {
    let cfg = Config {
        groups: vec![Group { name: "dispatch".into(), extensions: vec!["8001-8009".into()], ..Default::default() }],
        ..Config::default()
    };
    let p = match Policy::new(&cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(1);
        }
    };
    let rounds = 1_000_000;
    run("classify_borrowed (no alloc)", rounds, |n| {
        let c = p.classify_borrowed(n, "8001");
        c.class as usize + c.number.len()
    });
    run("classify (owned String)", rounds, |n| {
        let (s, c) = p.classify(n, "8001");
        c as usize + s.len()
    });
}
