//! RFC 4733 telephone-event payloads (DTMF over RTP) and the rule that turns a stream of
//! event packets into digits: one digit per event, however many packets carry it.
//! An event's packets all share one RTP timestamp (its start); the end packet is sent three
//! times. So a digit is reported at the first packet of a timestamp not seen before, and a
//! long event split into 0xFFFF-tick segments (RFC 4733 §2.5.1.3) stays one digit.
//! Written by hand: the crates that parse this (audio-codec, rvoip-rtp-core) bring whole
//! codec stacks for a 4-byte header.
//! May use: nothing. Invariants: never panics on any payload; constant memory per stream.

/// One telephone-event block (the first one of the payload).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

/// Read the first 4-byte event block; `None` if the payload is shorter.
pub(crate) fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
    let [event, flags, d0, d1, ..] = *payload else { return None };
    Some(TelephoneEvent { event, end: flags & 0x80 != 0, volume: flags & 0x3f, duration: u16::from_be_bytes([d0, d1]) })
}

/// RFC 4733 §3.2 event code → DTMF digit (0-9, *, #, A-D); other events are not digits.
pub(crate) fn digit(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (event - 12))),
        _ => None,
    }
}

/// How many event timestamps are remembered per stream: enough for end-packet
/// retransmissions arriving after the next event started (reordering).
const RECENT: usize = 8;

/// Per-direction event de-duplication.
#[derive(Clone, Debug, Default)]
pub(crate) struct DtmfState {
    recent: [u32; RECENT],
    filled: usize,
    next: usize,
    /// The latest new event: its RTP timestamp, code, longest duration, and whether its
    /// end packet was seen.
    last: Option<(u32, u8, u16, bool)>,
}

impl DtmfState {
    /// Feed one telephone-event packet; returns the digit when it starts a new event.
    pub(crate) fn on_packet(&mut self, rtp_ts: u32, ev: TelephoneEvent) -> Option<char> {
        if self.recent.iter().take(self.filled).any(|&t| t == rtp_ts) {
            if let Some((t, _, dur, end)) = &mut self.last {
                if *t == rtp_ts {
                    *end |= ev.end;
                    *dur = (*dur).max(ev.duration);
                }
            }
            return None;
        }
        if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = rtp_ts;
        }
        self.next = (self.next + 1) % RECENT;
        self.filled = (self.filled + 1).min(RECENT);
        // A segment of a long event: same code, the previous segment never ended and ran
        // to the full 16-bit duration.
        let continues = matches!(self.last, Some((_, code, 0xFFFF, false)) if code == ev.event);
        self.last = Some((rtp_ts, ev.event, ev.duration, ev.end));
        if continues {
            None
        } else {
            digit(ev.event)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent { event, end, volume: 10, duration }
    }

    #[test]
    fn parses_the_header() {
        assert_eq!(parse(&[1, 0x8a, 0x08, 0xc0]), Some(ev(1, true, 2240)));
        assert_eq!(parse(&[11, 0x0a, 0, 160, 99]), Some(ev(11, false, 160)));
        assert_eq!(parse(&[1, 0x8a, 0x08]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn digits() {
        let all: String = (0..=16).filter_map(digit).collect();
        assert_eq!(all, "0123456789*#ABCD");
    }

    #[test]
    fn one_digit_for_progress_and_three_end_packets() {
        let mut s = DtmfState::default();
        let mut got = String::new();
        for d in [160u16, 320, 480, 640, 800, 960, 1120] {
            got.extend(s.on_packet(1000, ev(1, false, d)));
        }
        for _ in 0..3 {
            got.extend(s.on_packet(1000, ev(1, true, 2240)));
        }
        // The same key pressed again is a new event with a new timestamp.
        got.extend(s.on_packet(9000, ev(1, false, 160)));
        got.extend(s.on_packet(9000, ev(1, true, 800)));
        got.extend(s.on_packet(20000, ev(11, true, 800)));
        assert_eq!(got, "11#");
    }

    #[test]
    fn late_end_packet_of_an_earlier_event_is_not_a_new_digit() {
        let mut s = DtmfState::default();
        assert_eq!(s.on_packet(100, ev(5, false, 160)), Some('5'));
        assert_eq!(s.on_packet(900, ev(6, false, 160)), Some('6'));
        assert_eq!(s.on_packet(100, ev(5, true, 800)), None);
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let mut s = DtmfState::default();
        assert_eq!(s.on_packet(0, ev(9, false, 0xFFFF)), Some('9'));
        assert_eq!(s.on_packet(0xFFFF, ev(9, false, 4000)), None);
        assert_eq!(s.on_packet(0xFFFF, ev(9, true, 8000)), None);
        assert_eq!(s.on_packet(0x2_0000, ev(9, true, 800)), Some('9'));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_reads_the_fields(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            match parse(&bytes) {
                None => prop_assert!(bytes.len() < 4),
                Some(e) => {
                    prop_assert_eq!(e.event, bytes[0]);
                    prop_assert_eq!(e.end, bytes[1] & 0x80 != 0);
                    prop_assert_eq!(e.volume, bytes[1] & 0x3f);
                    prop_assert_eq!(e.duration, u16::from_be_bytes([bytes[2], bytes[3]]));
                }
            }
        }

        #[test]
        fn at_most_one_digit_per_timestamp(pkts in proptest::collection::vec((0u32..6, 0u8..20, any::<bool>(), any::<u16>()), 0..60)) {
            let mut s = DtmfState::default();
            let mut reported = std::collections::HashSet::new();
            for (ts, code, end, dur) in pkts {
                if s.on_packet(ts, ev(code, end, dur)).is_some() {
                    prop_assert!(reported.insert(ts), "two digits for timestamp {}", ts);
                }
            }
        }
    }
}
