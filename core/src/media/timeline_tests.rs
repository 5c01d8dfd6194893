//! Tests of the stereo timeline: packets with packet times in, the rendered recording out.

use super::*;
use crate::media::g711::alaw;
use crate::media::g722::G722Decoder;
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000_000;
const PTIME_US: i64 = 20_000;
const L: Leg = Leg::CallerToCallee;
const R: Leg = Leg::CalleeToCaller;

/// A rendered recording: what a WAV writer would have written.
#[derive(Debug, Default, PartialEq)]
struct Rec {
    rate: Option<SampleRate>,
    start: Option<Ts>,
    frames: Vec<[i16; 2]>,
    raw: Vec<(Leg, u8, Vec<u8>)>,
    silence_items: usize,
    longest_silence_item: u64,
}

fn render(outs: &[MediaOut]) -> Rec {
    let mut r = Rec::default();
    for o in outs {
        match o {
            MediaOut::Start { rate, at } => {
                assert!(r.rate.is_none() && r.frames.is_empty(), "Start must come once, first");
                r.rate = Some(*rate);
                r.start = Some(*at);
            }
            MediaOut::Audio(b) => {
                assert!(r.rate.is_some(), "Audio before Start");
                assert_eq!(b.start_frame, r.frames.len() as u64, "blocks must be contiguous");
                assert_eq!(b.samples.len() % 2, 0);
                assert!(!b.samples.is_empty());
                r.frames.extend(b.samples.chunks_exact(2).map(|c| [c[0], c[1]]));
            }
            MediaOut::Silence { start_frame, frames } => {
                assert!(r.rate.is_some(), "Silence before Start");
                assert_eq!(*start_frame, r.frames.len() as u64, "silence must be contiguous");
                assert!(*frames > 0);
                r.silence_items += 1;
                r.longest_silence_item = r.longest_silence_item.max(*frames);
                r.frames.extend(std::iter::repeat_n([0, 0], *frames as usize));
            }
            MediaOut::Raw { leg, pt, payload, .. } => r.raw.push((*leg, *pt, payload.clone())),
        }
    }
    r
}

/// The payload of packet `i` of a leg: every byte different along the call, so a sample
/// tells which packet and offset it came from. A-law never decodes to 0.
fn payload(leg: Leg, i: u64) -> Vec<u8> {
    let salt = if leg == L { 0 } else { 101 };
    (0..160u64).map(|j| ((i * 31 + j * 7 + salt) % 256) as u8).collect()
}

fn expected_sample(leg: Leg, i: u64, j: u64) -> i16 {
    alaw(payload(leg, i)[j as usize])
}

/// One packet as a test sends it.
#[derive(Clone, Debug)]
struct P {
    leg: Leg,
    at: i64,
    seq: u16,
    ts: u32,
    ssrc: u32,
    pt: u8,
    payload: Vec<u8>,
}

/// A clean PCMA stream: `n` packets of 20 ms from `start_us` after T0.
fn stream(leg: Leg, n: u64, start_us: i64, seq0: u16, ts0: u32, ssrc: u32) -> Vec<P> {
    (0..n)
        .map(|i| P {
            leg,
            at: T0 + start_us + i as i64 * PTIME_US,
            seq: seq0.wrapping_add(i as u16),
            ts: ts0.wrapping_add(i as u32 * 160),
            ssrc,
            pt: 8,
            payload: payload(leg, i),
        })
        .collect()
}

fn codec_of(pt: u8) -> Codec {
    match pt {
        101 => Codec::from_rtpmap(101, "telephone-event", 8000),
        _ => Codec::from_static_pt(pt),
    }
}

struct Run {
    audio: CallAudio,
    out: Vec<MediaOut>,
    max_memory: usize,
}

impl Run {
    fn new(opts: AudioOptions) -> Run {
        Run { audio: CallAudio::new(opts), out: Vec::new(), max_memory: 0 }
    }
    fn push(&mut self, p: &P) {
        let pkt = RtpPacket {
            payload_type: p.pt,
            marker: false,
            seq: p.seq,
            timestamp: p.ts,
            ssrc: p.ssrc,
            payload: &p.payload,
        };
        self.audio.push(Ts(p.at), p.leg, &pkt, &codec_of(p.pt), &mut self.out);
        self.max_memory = self.max_memory.max(self.audio.memory_bytes());
    }
    fn advance(&mut self, at: i64) {
        self.audio.advance(Ts(at), &mut self.out);
        self.max_memory = self.max_memory.max(self.audio.memory_bytes());
    }
    fn finish(mut self) -> (Rec, CallAudio, usize) {
        self.audio.finish(&mut self.out);
        (render(&self.out), self.audio, self.max_memory)
    }
}

/// Deliver packets in order of arrival time (stable for equal times).
fn run(mut pkts: Vec<P>, opts: AudioOptions) -> (Rec, CallAudio, usize) {
    pkts.sort_by_key(|p| p.at);
    let mut r = Run::new(opts);
    for p in &pkts {
        r.push(p);
    }
    r.finish()
}

fn run_default(pkts: Vec<P>) -> (Rec, CallAudio) {
    let (rec, audio, _) = run(pkts, AudioOptions::default());
    (rec, audio)
}

/// Check that channel `ch` holds packet `i` of `leg` at frame `first + 160 * i` for every
/// `i` in `packets`.
fn assert_leg(rec: &Rec, leg: Leg, first: u64, packets: impl Iterator<Item = u64>) {
    let ch = if leg == L { 0 } else { 1 };
    for i in packets {
        for j in 0..160 {
            let f = (first + 160 * i + j) as usize;
            assert_eq!(rec.frames[f][ch], expected_sample(leg, i, j), "leg {leg:?} packet {i} sample {j} (frame {f})");
        }
    }
}

#[test]
fn clean_call_has_media_length_and_exact_samples() {
    // Three seconds each way; the callee's stream starts 10 ms after the caller's.
    let mut pkts = stream(L, 150, 0, 1000, 5000, 0xaaaa);
    pkts.extend(stream(R, 150, 10_000, 7, 900_000, 0xbbbb));
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.rate, Some(SampleRate::Hz8000));
    assert_eq!(rec.start, Some(Ts(T0)));
    // Media time: 0 .. 10 ms + 150 × 20 ms = 3.01 s = 24080 frames.
    assert_eq!(rec.frames.len(), 24080);
    assert_eq!(audio.frames_emitted(), 24080);
    assert_leg(&rec, L, 0, 0..150);
    assert_leg(&rec, R, 80, 0..150);
    assert!(rec.frames[..80].iter().all(|f| f[1] == 0), "right channel silent before its first packet");
    assert!(rec.frames[24000..].iter().all(|f| f[0] == 0), "left channel silent after its last packet");
    let c = audio.counters();
    assert_eq!(c.packets_placed, 300);
    assert_eq!((c.duplicates, c.too_late, c.truncated, c.out_of_range, c.reanchors), (0, 0, 0, 0, 0));
    assert_eq!(c.streams, 2);
    assert_eq!((c.gap_frames_left, c.gap_frames_right), (0, 0));
    assert!(!audio.is_undecodable());
}

#[test]
fn output_is_written_as_packet_time_moves_on() {
    // Crash safety: audio comes out within the window, not at the end.
    let pkts = stream(L, 100, 0, 0, 0, 1);
    let mut r = Run::new(AudioOptions::default());
    for p in &pkts[..50] {
        r.push(p);
    }
    let so_far = render(&r.out);
    // 49 packets arrived up to 980 ms; everything before 980 − 200 ms is out.
    assert_eq!(so_far.frames.len(), 780 * 8);
    r.advance(T0 + 1_500_000);
    assert_eq!(render(&r.out).frames.len(), 50 * 160, "advance commits what is due without new packets");
}

#[test]
fn poll_timeout_says_when_the_next_audio_is_due() {
    let mut r = Run::new(AudioOptions::default());
    assert_eq!(r.audio.poll_timeout(), None);
    let pkts = stream(L, 3, 0, 0, 0, 1);
    for p in &pkts {
        r.push(p);
    }
    // Packet 0 starts at frame 0 (T0): due once packet time is 200 ms past it.
    let due = r.audio.poll_timeout();
    assert_eq!(due, Some(Ts(T0 + 200_000 + 125)));
    r.advance(T0 + 200_124);
    assert!(render(&r.out).frames.is_empty(), "not due yet");
    r.advance(T0 + 200_125);
    assert_eq!(render(&r.out).frames.len(), 1, "the first frame of packet 0");
    // Then packet 1 (frame 160) is the oldest queued.
    assert_eq!(r.audio.poll_timeout(), Some(Ts(T0 + 220_000 + 125)));
    r.advance(T0 + 10_000_000);
    assert_eq!(r.audio.poll_timeout(), None);
    assert_eq!(render(&r.out).frames.len(), 3 * 160);
}

#[test]
fn loss_of_five_packets_is_silence_of_exactly_that_length() {
    let mut pkts = stream(L, 150, 0, 0, 0, 1);
    pkts.retain(|p| !(50..55).contains(&p.seq));
    pkts.extend(stream(R, 150, 0, 0, 0, 2));
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 150 * 160);
    assert!(rec.frames[50 * 160..55 * 160].iter().all(|f| f[0] == 0));
    assert_eq!(rec.frames[50 * 160 - 1][0], expected_sample(L, 49, 159));
    assert_eq!(rec.frames[55 * 160][0], expected_sample(L, 55, 0));
    assert_leg(&rec, L, 0, (0..50).chain(55..150));
    assert_leg(&rec, R, 0, 0..150);
    assert_eq!(audio.counters().gap_frames_left, 5 * 160);
    assert_eq!(audio.counters().gap_frames_right, 0);
    assert_eq!(audio.counters().packets_placed, 295);
}

/// Delay packet `i` of the list by `delay_us` (it arrives after later ones).
fn delay(pkts: &mut [P], seqs: &[u16], delay_us: i64) {
    for p in pkts.iter_mut().filter(|p| seqs.contains(&p.seq)) {
        p.at += delay_us;
    }
}

#[test]
fn reordering_inside_the_window_gives_the_in_order_output() {
    let mut base = stream(L, 150, 0, 100, 0, 1);
    base.extend(stream(R, 150, 5_000, 200, 0, 2));
    let (want, _) = run_default(base.clone());

    let mut re = base.clone();
    // The very first packet late (the stream anchors on the second), some swaps, and
    // one packet 150 ms late (7 later packets overtake it).
    delay(&mut re[..150], &[100, 130, 131, 170], 45_000);
    delay(&mut re[..150], &[210], 150_000);
    delay(&mut re[150..], &[200, 250, 251, 252], 30_000);
    let (got, audio) = run_default(re);
    assert_eq!(got, want);
    let c = audio.counters();
    assert_eq!((c.too_late, c.reanchors, c.duplicates), (0, 0, 0));
    assert_eq!(c.packets_placed, 300);
}

#[test]
fn duplicates_give_the_same_output_and_are_counted() {
    let base = stream(L, 100, 0, 65_500, 0, 1);
    let (want, _) = run_default(base.clone());
    let mut dup = base.clone();
    // Every packet twice (a mirror port), a few a third time 100 ms later.
    dup.extend(base.iter().cloned().map(|mut p| {
        p.at += 300;
        p
    }));
    dup.extend(base.iter().filter(|p| p.seq % 10 == 0).cloned().map(|mut p| {
        p.at += 100_000;
        p
    }));
    let thirds = base.iter().filter(|p| p.seq % 10 == 0).count() as u64;
    assert_eq!(thirds, 11, "65500..=65530 step 10, then 0..=60 after the wrap");
    let (got, audio) = run_default(dup);
    assert_eq!(got, want);
    assert_eq!(audio.counters().duplicates, 100 + thirds);
    assert_eq!(audio.counters().packets_placed, 100);
}

#[test]
fn ssrc_change_mid_call_reanchors_without_drift() {
    // 2 s on one SSRC, then the same audio flow goes on with a new SSRC, sequence and
    // timestamp base (a transfer through a B2BUA) for 3 s.
    let first = stream(L, 100, 0, 10, 1000, 0x1111);
    let mut second = stream(L, 150, 2_000_000, 40_000, 3_000_000_000, 0x2222);
    for (k, p) in second.iter_mut().enumerate() {
        p.payload = payload(L, 100 + k as u64);
    }
    let mut pkts = first;
    pkts.extend(second);
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 250 * 160, "no gap, no overlap at the change");
    assert_leg(&rec, L, 0, 0..250);
    let c = audio.counters();
    assert_eq!((c.reanchors, c.streams), (1, 2));
    assert_eq!(c.gap_frames_left, 0);
}

#[test]
fn sequence_and_timestamp_wrap_mid_call_are_continuous() {
    let (want, _) = run_default(stream(L, 200, 0, 0, 0, 9));
    // Sequence wraps after 36 packets, the timestamp after 50.
    let (got, audio) = run_default(stream(L, 200, 0, 65_500, u32::MAX - 160 * 50 + 1, 9));
    assert_eq!(got, want);
    assert_eq!(audio.counters().reanchors, 0);
    assert_eq!(audio.counters().packets_placed, 200);
}

fn hold_call(ts_advances: bool) -> (Rec, CallAudio, usize) {
    // 2 s of audio, 10 s of nothing, 2 s again; the timeline is advanced every 100 ms
    // meanwhile (the engine's timers or other calls' packets).
    let before = stream(L, 100, 0, 0, 0, 5);
    let gap_ts = if ts_advances { 10 * 8000 } else { 0 };
    let mut after = stream(L, 100, 12_000_000, 100, 100 * 160 + gap_ts, 5);
    for (k, p) in after.iter_mut().enumerate() {
        p.payload = payload(L, 100 + k as u64);
    }
    let mut r = Run::new(AudioOptions::default());
    for p in &before {
        r.push(p);
    }
    let mut t = T0 + 2_000_000;
    while t < T0 + 12_000_000 {
        r.advance(t);
        t += 100_000;
    }
    for p in &after {
        r.push(p);
    }
    r.finish()
}

#[test]
fn hold_of_ten_seconds_is_ten_seconds_of_silence() {
    for ts_advances in [true, false] {
        let (rec, audio, max_mem) = hold_call(ts_advances);
        assert_eq!(rec.frames.len(), 14 * 8000, "ts_advances={ts_advances}");
        assert_leg(&rec, L, 0, 0..100);
        assert!(rec.frames[16_000..96_000].iter().all(|f| *f == [0, 0]));
        for i in 0..100u64 {
            assert_eq!(rec.frames[96_000 + 160 * i as usize][0], expected_sample(L, 100 + i, 0));
        }
        // The silence is one compact item, not 10 s of buffered samples.
        assert!(rec.longest_silence_item >= 10 * 8000 - 1600, "{}", rec.longest_silence_item);
        assert!(max_mem < 16 * 1024, "memory during hold: {max_mem}");
        assert_eq!(audio.counters().gap_frames_left, 10 * 8000);
        assert_eq!(audio.counters().reanchors, if ts_advances { 0 } else { 1 });
    }
}

#[test]
fn one_way_audio_leaves_the_right_channel_zero_in_bounded_memory() {
    // 60 s, caller only.
    let (rec, audio, max_mem) = run(stream(L, 3000, 0, 0, 0, 1), AudioOptions::default());
    assert_eq!(rec.frames.len(), 3000 * 160);
    assert!(rec.frames.iter().all(|f| f[1] == 0));
    assert_leg(&rec, L, 0, 0..3000);
    assert_eq!(audio.counters().gap_frames_right, 0, "a leg that never started has no gaps");
    assert!(max_mem <= 16 * 1024, "max memory {max_mem} bytes");
}

#[test]
fn undecodable_leg_is_kept_raw_and_the_other_leg_still_records() {
    let left = stream(L, 50, 0, 0, 0, 1);
    let right: Vec<P> = stream(R, 50, 0, 0, 0, 2)
        .into_iter()
        .map(|mut p| {
            p.pt = 18; // G.729
            p.payload.truncate(20);
            p
        })
        .collect();
    let mut pkts = left;
    pkts.extend(right.clone());
    let (rec, audio) = run_default(pkts);
    assert_eq!(audio.undecodable(), &[18]);
    assert!(audio.is_undecodable());
    assert_eq!(audio.counters().raw_packets, 50);
    assert_eq!(rec.raw.len(), 50);
    for (got, sent) in rec.raw.iter().zip(&right) {
        assert_eq!(got, &(R, 18, sent.payload.clone()));
    }
    assert_eq!(rec.frames.len(), 50 * 160);
    assert_leg(&rec, L, 0, 0..50);
    assert!(rec.frames.iter().all(|f| f[1] == 0));
}

/// The RTP packets of a capture in tests/fixtures/public/, with their packet times (µs).
fn capture(name: &str) -> Vec<P> {
    use pcap_file::pcap::PcapReader;
    let path = format!("{}/../tests/fixtures/public/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = PcapReader::new(file).unwrap();
    let mut pkts = Vec::new();
    while let Some(rec) = reader.next_packet() {
        let rec = rec.unwrap();
        let eth = etherparse::SlicedPacket::from_ethernet(&rec.data).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = eth.transport else { panic!("not UDP") };
        let rtp = rtp_rs::RtpReader::new(udp.payload()).unwrap();
        pkts.push(P {
            leg: L,
            at: rec.timestamp.as_micros() as i64,
            seq: u16::from(rtp.sequence_number()),
            ts: rtp.timestamp(),
            ssrc: rtp.ssrc(),
            pt: rtp.payload_type(),
            payload: rtp.payload().to_vec(),
        });
    }
    pkts
}

#[test]
fn telephone_event_pushed_as_other_is_not_audio() {
    // SIPp's RFC 2833 digit "1" (7 packets, then the end packet 3 times) on the callee's
    // leg, 200 ms into a PCMA call from the caller.
    let dtmf = capture("sipp-dtmf-2833-digit1.pcap");
    assert_eq!(dtmf.len(), 10);
    let t = dtmf[0].at;
    let mut pkts = stream(L, 50, 0, 0, 0, 1);
    pkts.extend(dtmf.into_iter().map(|mut p| {
        assert_eq!(p.pt, 101);
        p.leg = R;
        p.at = T0 + 200_000 + (p.at - t);
        p
    }));
    let (rec, audio) = run_default(pkts);
    assert!(rec.frames.iter().all(|f| f[1] == 0), "no DTMF in the audio");
    assert!(rec.raw.is_empty(), "DTMF is not an undecodable codec");
    assert!(!audio.is_undecodable());
    assert_eq!(audio.counters().events_ignored, 10);
    assert_leg(&rec, L, 0, 0..50);
}

#[test]
fn comfort_noise_is_silence() {
    // Packets 20..40 replaced by one CN packet (silence suppression), timestamps go on.
    let mut pkts: Vec<P> = stream(L, 60, 0, 0, 0, 1).into_iter().filter(|p| !(21..40).contains(&p.seq)).collect();
    if let Some(p) = pkts.iter_mut().find(|p| p.seq == 20) {
        p.pt = 13;
        p.payload = vec![60];
    }
    for p in pkts.iter_mut().filter(|p| p.seq >= 40) {
        p.seq -= 19; // DTX: the sender numbers only what it sends
    }
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 60 * 160);
    assert!(rec.frames[20 * 160..40 * 160].iter().all(|f| f[0] == 0));
    assert_leg(&rec, L, 0, (0..20).chain(40..60));
    assert_eq!(audio.counters().comfort_noise, 1);
    assert_eq!(audio.counters().reanchors, 0);
}

#[test]
fn a_packet_later_than_the_window_is_dropped_and_counted() {
    let mut pkts = stream(L, 100, 0, 0, 0, 1);
    delay(&mut pkts, &[30], 400_000);
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 100 * 160);
    assert!(rec.frames[30 * 160..31 * 160].iter().all(|f| f[0] == 0));
    assert_leg(&rec, L, 0, (0..30).chain(31..100));
    assert_eq!(audio.counters().too_late, 1);
    assert_eq!(audio.counters().reanchors, 0);
}

#[test]
fn timestamp_jump_without_ssrc_change_reanchors_on_packet_time() {
    let mut pkts = stream(L, 100, 0, 0, 0, 1);
    for p in pkts.iter_mut().filter(|p| p.seq >= 50) {
        p.ts = p.ts.wrapping_add(1_234_567); // the sender's clock jumped 154 s
    }
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 100 * 160);
    assert_leg(&rec, L, 0, 0..100);
    assert_eq!(audio.counters().reanchors, 1);
}

/// A caller whose clock runs `ppm` slow: packets carry 160 ticks but come every
/// 20 ms × (1 + ppm / 10⁶) of packet time.
fn drifting(ppm: i64, n: u64) -> Vec<P> {
    let mut pkts = stream(L, n, 0, 0, 0, 1);
    for (i, p) in pkts.iter_mut().enumerate() {
        p.at = T0 + i as i64 * (PTIME_US + PTIME_US * ppm / 1_000_000);
    }
    pkts
}

#[test]
fn clock_drift_within_the_tolerance_follows_the_timestamps() {
    // 1000 ppm over 60 s: 60 ms behind by the end, no re-anchor, no sample lost.
    let (rec, audio) = run_default(drifting(1000, 3000));
    assert_eq!(audio.counters().reanchors, 0);
    assert_eq!(rec.frames.len(), 3000 * 160);
    assert_leg(&rec, L, 0, 0..3000);
}

#[test]
fn clock_drift_past_the_tolerance_reanchors_and_keeps_length_near_media_time() {
    // 1 % over 60 s: 600 ms of drift, re-anchored about every 200 ms of it.
    let pkts = drifting(10_000, 3000);
    let media_us = pkts.last().unwrap().at + PTIME_US - T0;
    let (rec, audio) = run_default(pkts);
    assert!((2..=3).contains(&audio.counters().reanchors), "{:?}", audio.counters());
    let len_us = rec.frames.len() as i64 * 125;
    assert!((len_us - media_us).abs() <= 200_000, "length {len_us} µs, media {media_us} µs");
    assert_eq!(audio.counters().too_late, 0);
    assert_eq!(audio.counters().packets_placed, 3000);
}

#[test]
fn sequence_restart_on_the_same_ssrc_goes_on() {
    let mut pkts = stream(L, 100, 0, 30_000, 0, 1);
    for p in pkts.iter_mut().filter(|p| p.seq >= 30_050) {
        p.seq = p.seq - 30_050 + 1000; // renumbered from 1000: far behind the newest
        p.ts = p.ts.wrapping_sub(50 * 160).wrapping_add(777);
    }
    let (rec, audio) = run_default(pkts);
    assert_eq!(rec.frames.len(), 100 * 160);
    assert_leg(&rec, L, 0, 0..100);
    assert_eq!(audio.counters().reanchors, 1);
    assert_eq!(audio.counters().packets_placed, 100);
}

fn g722_fixture() -> Vec<u8> {
    let path = format!("{}/tests/fixtures/media/speech.g722", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The G.722 speech fixture as 20 ms packets (160 bytes = 320 samples at 16 kHz).
fn g722_stream(leg: Leg) -> Vec<P> {
    g722_fixture()
        .chunks(160)
        .enumerate()
        .map(|(i, c)| P {
            leg,
            at: T0 + i as i64 * PTIME_US,
            seq: 60_000u16.wrapping_add(i as u16),
            ts: 1000 + i as u32 * 160,
            ssrc: 77,
            pt: 9,
            payload: c.to_vec(),
        })
        .collect()
}

#[test]
fn g722_call_is_recorded_at_16k_equal_to_the_reference_decoder_even_reordered() {
    let bits = g722_fixture();
    let mut want = Vec::new();
    G722Decoder::new().decode(&bits, &mut want);
    let pkts = g722_stream(R);
    let (rec, _) = run_default(pkts.clone());
    assert_eq!(rec.rate, Some(SampleRate::Hz16000));
    assert_eq!(rec.frames.len(), want.len());
    assert!(rec.frames.iter().zip(&want).all(|(f, w)| f[1] == *w && f[0] == 0));

    // ADPCM is stateful: reordered packets must still be decoded in order.
    let mut re = pkts;
    delay(&mut re, &[60_003, 60_010, 60_011, 60_040], 70_000);
    let (got, audio) = run_default(re);
    assert_eq!(got, rec);
    assert_eq!(audio.counters().too_late, 0);
}

#[test]
fn mixed_call_at_16k_upsamples_the_g711_leg() {
    let opts = AudioOptions { rate: Some(SampleRate::Hz16000), ..AudioOptions::default() };
    let mut pkts = g722_stream(L);
    let n = pkts.len() as u64;
    pkts.extend(stream(R, n, 0, 0, 0, 2));
    let (rec, _, _) = run(pkts, opts);
    assert_eq!(rec.rate, Some(SampleRate::Hz16000));
    assert_eq!(rec.frames.len() as u64, n * 320, "both legs span the same time");
    // Every second sample is the A-law sample itself, the others lie between neighbours.
    for i in 0..n {
        for j in 0..160u64 {
            let f = (i * 320 + 2 * j) as usize;
            let x = expected_sample(R, i, j);
            assert_eq!(rec.frames[f + 1][1], x);
            let prev = if f == 0 { 0 } else { rec.frames[f - 1][1] };
            assert_eq!(rec.frames[f][1], ((i32::from(prev) + i32::from(x)) >> 1) as i16);
        }
    }
}

#[test]
fn g722_on_an_8k_recording_is_downsampled() {
    // The first packet decides 8 kHz (PCMA); G.722 arriving later on the other leg still
    // records, at half the rate, and takes the same time on the timeline.
    let mut pkts = stream(L, 75, 0, 0, 0, 1);
    pkts.extend(g722_stream(R).into_iter().map(|mut p| {
        p.at += 1000;
        p
    }));
    let (rec, _) = run_default(pkts);
    assert_eq!(rec.rate, Some(SampleRate::Hz8000));
    assert_eq!(rec.frames.len(), 75 * 160 + 8);
    let mut full = Vec::new();
    G722Decoder::new().decode(&g722_fixture(), &mut full);
    for (k, pair) in full.chunks_exact(2).enumerate() {
        let want = ((i32::from(pair[0]) + i32::from(pair[1])) >> 1) as i16;
        assert_eq!(rec.frames[8 + k][1], want, "frame {k}");
    }
}

#[test]
fn oversized_and_far_future_packets_are_bounded() {
    let mut pkts = stream(L, 50, 0, 0, 0, 1);
    // A 1 s payload (over max_packet), and packets on a second SSRC whose timestamps run
    // 2 s ahead of packet time after its first packet.
    pkts.push(P { leg: R, at: T0 + 100_000, seq: 1, ts: 0, ssrc: 9, pt: 8, payload: vec![0xd5; 8000] });
    for k in 0..5u16 {
        pkts.push(P {
            leg: R,
            at: T0 + 200_000 + i64::from(k) * 20_000,
            seq: 10 + k,
            ts: if k == 0 { 0 } else { 16_000 + u32::from(k) * 160 },
            ssrc: 10,
            pt: 8,
            payload: vec![0x55; 160],
        });
    }
    let (rec, audio, max_mem) = run(pkts, AudioOptions::default());
    assert_eq!(audio.counters().out_of_range, 1, "the 1 s packet");
    assert!(audio.counters().reanchors >= 1);
    assert_eq!(rec.frames.len(), 50 * 160);
    assert!(max_mem < 32 * 1024, "{max_mem}");
}

#[test]
fn sipp_g711a_capture_decodes_to_sox_reference() {
    let pkts = capture("sipp-g711a-rtp-only.pcap");
    assert_eq!(pkts.len(), 236);
    let (first_at, last_at) = (pkts[0].at, pkts[235].at);
    let mut audio = CallAudio::default();
    let mut out = Vec::new();
    for p in &pkts {
        let pkt = RtpPacket {
            payload_type: p.pt,
            marker: false,
            seq: p.seq,
            timestamp: p.ts,
            ssrc: p.ssrc,
            payload: &p.payload,
        };
        audio.push(Ts(p.at), L, &pkt, &Codec::from_static_pt(p.pt), &mut out);
    }
    audio.finish(&mut out);
    let rec = render(&out);
    let sox: Vec<i16> =
        std::fs::read(format!("{}/tests/fixtures/media/sipp-g711a-payloads.s16", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
    // 236 packets × 240 samples (30 ms); media time from packet times is 7.0496 s + 30 ms.
    assert_eq!(rec.frames.len(), 236 * 240);
    assert_eq!(sox.len(), rec.frames.len());
    let media_us = last_at - first_at + 30_000;
    assert!((rec.frames.len() as i64 * 125 - media_us).abs() <= 100_000);
    assert!(rec.frames.iter().zip(&sox).all(|(f, s)| f[0] == *s && f[1] == 0));
    assert_eq!(rec.start, Some(Ts(first_at)));
    let c = audio.counters();
    assert_eq!((c.packets_placed, c.reanchors, c.too_late, c.gap_frames_left), (236, 0, 0, 0));
}

#[test]
fn pushes_after_finish_are_counted_not_recorded() {
    let pkts = stream(L, 10, 0, 0, 0, 1);
    let mut r = Run::new(AudioOptions::default());
    for p in &pkts[..5] {
        r.push(p);
    }
    r.audio.finish(&mut r.out);
    for p in &pkts[5..] {
        r.push(p);
    }
    let (rec, audio, _) = r.finish();
    assert_eq!(rec.frames.len(), 5 * 160);
    assert_eq!(audio.counters().after_finish, 5);
}

#[test]
fn adversarial_input_stays_within_the_memory_bound() {
    // 16 kHz; per leg: a flood of 1-byte packets (queue entries), 200 ms packets as far
    // ahead as a re-anchor allows (ring span), eight SSRCs of G.722 (decoder states).
    let opts = AudioOptions { rate: Some(SampleRate::Hz16000), ..AudioOptions::default() };
    let mut r = Run::new(opts);
    let bound = r.audio.memory_bound();
    for step in 0..400i64 {
        let at = T0 + step * 5_000;
        for (k, leg) in [L, R].into_iter().enumerate() {
            for f in 0..4u16 {
                let seq = (step as u16).wrapping_mul(8).wrapping_add(f);
                let ts = (step as u32) * 40 + u32::from(f);
                r.push(&P { leg, at, seq, ts, ssrc: 1 + k as u32, pt: 9, payload: vec![0x3c] });
            }
            let ssrc = 100 + (step % 8) as u32;
            let ts = (step as u32) * 40 + 1600;
            r.push(&P { leg, at, seq: step as u16, ts, ssrc, pt: 9, payload: vec![0x99; 1600] });
        }
    }
    let (_, audio, max_mem) = r.finish();
    assert!(audio.counters().out_of_range > 0, "the flood must hit the queue bounds");
    assert!(max_mem <= bound, "memory {max_mem} over the bound {bound}");
    // Default options, 16 kHz: under 64 KiB for any input.
    assert!(bound <= 64 * 1024, "bound {bound}");
    // The flood got close to it: the bound is not loose by much.
    assert!(max_mem * 10 >= bound * 8, "memory {max_mem}, bound {bound}");
}

/// A random delivery of a two-way call: per packet loss, jitter (< 40 ms, so packets of
/// 20 ms overtake each other), duplication up to 150 ms later.
fn delivery() -> impl Strategy<Value = (u64, Vec<(bool, i64, bool, i64)>)> {
    (20u64..200).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec((any::<bool>(), 0i64..40_000, any::<bool>(), 0i64..150_000), 2 * n as usize),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_loss_jitter_duplication_keeps_length_within_100ms(
        (n, fate) in delivery(),
        loss_pct in 0u32..30,
        ssrc_change in proptest::option::of(5u64..150),
    ) {
        let mut pkts = stream(L, n, 0, 65_000, u32::MAX - 20_000, 1);
        pkts.extend(stream(R, n, 7_000, 10, 0, 2));
        if let Some(k) = ssrc_change {
            for p in pkts.iter_mut().filter(|p| p.leg == R && u64::from(p.seq.wrapping_sub(10)) >= k) {
                p.ssrc = 3;
                p.seq = p.seq.wrapping_add(20_000);
            }
        }
        let mut sent = Vec::new();
        for (i, p) in pkts.iter().enumerate() {
            let (lose, jitter, dup, dup_delay) = fate[i];
            // Keep each leg's first and last packet so the media time is known.
            let edge = i % n as usize == 0 || i % n as usize == n as usize - 1;
            if lose && !edge && (jitter as u32 % 100) < loss_pct {
                continue;
            }
            let mut q = p.clone();
            q.at += jitter;
            sent.push(q.clone());
            if dup {
                q.at += dup_delay;
                sent.push(q);
            }
        }
        let (rec, audio, max_mem) = run(sent, AudioOptions::default());
        // Media time: from the first packet sent to the end of the last (each leg's first
        // and last packets are never lost). Jitter moves a stream by at most 40 ms.
        let media_us = pkts.iter().map(|p| p.at).max().unwrap() + PTIME_US - T0;
        let len_us = rec.frames.len() as i64 * 125;
        prop_assert!((len_us - media_us).abs() <= 100_000, "length {} µs, media {} µs", len_us, media_us);
        prop_assert_eq!(audio.counters().too_late, 0);
        prop_assert!(max_mem <= 64 * 1024, "memory {}", max_mem);
    }

    #[test]
    fn arbitrary_packets_never_panic_and_memory_stays_bounded(
        pkts in proptest::collection::vec(
            (any::<bool>(), -3_000_000i64..3_000_000, any::<u16>(), any::<u32>(), 0u32..4, 0u8..4,
             proptest::collection::vec(any::<u8>(), 0..400)),
            1..120),
        rate16 in any::<bool>(),
        advance_to in proptest::option::of(any::<i64>()),
    ) {
        let opts = AudioOptions { rate: rate16.then_some(SampleRate::Hz16000), ..AudioOptions::default() };
        let mut r = Run::new(opts);
        for (i, (left, dt, seq, ts, ssrc, kind, payload)) in pkts.into_iter().enumerate() {
            let pt = [0u8, 8, 9, 13][kind as usize];
            let p = P { leg: if left { L } else { R }, at: T0 + i as i64 * 10_000 + dt, seq, ts, ssrc, pt, payload };
            r.push(&p);
            if i % 7 == 3 {
                r.advance(T0 + i as i64 * 10_000);
            }
        }
        if let Some(t) = advance_to {
            r.advance(t);
        }
        let bound = r.audio.memory_bound();
        let (rec, audio, max_mem) = r.finish();
        prop_assert!(max_mem <= bound, "memory {} over the bound {}", max_mem, bound);
        prop_assert_eq!(rec.frames.len() as u64, audio.frames_emitted());
    }
}
