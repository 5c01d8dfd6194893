//! UDP: one datagram per payload, borrowed from the frame (no copy, no allocation), or
//! the HEP envelope inside it unwrapped (HEP3 by its magic on any port, HEPv1/v2 only on
//! `DecodeConfig::hep_ports` since that older header has no magic), or the mirror tunnel
//! inside it (VXLAN, TZSP on their configured ports: `tunnel`).
//! May use: `hep`. Invariants: the UDP length field bounds the payload (trailing bytes in
//! the IP packet are ignored); a length of 0 (IPv6 jumbogram) means "the rest"; checksums
//! are not verified (locally sent packets are often captured before the NIC fills them).

use super::tunnel::Via;
use super::{hep, Datagram, DatagramOut, Decoder, PayloadHint, Transport};
use crate::counters::DropReason;
use crate::time::Ts;
use etherparse::{UdpHeader, UdpHeaderSlice};
use std::net::{IpAddr, SocketAddr};

impl Decoder {
    pub(super) fn udp(
        &mut self,
        ts: Ts,
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        via: Via,
        sink: &mut DatagramOut<'_>,
    ) -> Result<(), DropReason> {
        let h = UdpHeaderSlice::from_slice(bytes).map_err(|_| DropReason::BadUdp)?;
        let len = usize::from(h.length());
        let end = match len {
            0 => bytes.len(),
            l if l < UdpHeader::LEN || l > bytes.len() => return Err(DropReason::BadUdp),
            l => l,
        };
        let payload = bytes.get(UdpHeader::LEN..end).ok_or(DropReason::BadUdp)?;
        let (sport, dport) = (h.source_port(), h.destination_port());
        if self.udp_tunnel(ts, (src, dst), dport, payload, via, sink)? {
            return Ok(());
        }
        if payload.starts_with(hep::HEP3_MAGIC) {
            return self.hep(ts, payload, false, sink);
        }
        if hep::may_be_hep2(payload) && (self.cfg.hep_ports.contains(&sport) || self.cfg.hep_ports.contains(&dport)) {
            return self.hep(ts, payload, true, sink);
        }
        sink.emit(Datagram {
            ts,
            src: SocketAddr::new(src, sport),
            dst: SocketAddr::new(dst, dport),
            transport: Transport::Udp,
            payload,
            hint: PayloadHint::Unknown,
            correlation: None,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::counters::DropReason;
    use crate::decode::{LinkType, Transport};

    #[test]
    fn udp_payload_and_addresses() {
        let mut h = Harness::default();
        let pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5062, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        h.feed(LinkType::Ipv4, 7, &pkt);
        assert_eq!(h.out.len(), 1);
        let d = &h.out[0];
        assert_eq!(d.ts.0, 7);
        assert_eq!(d.src.to_string(), "10.0.0.1:5060");
        assert_eq!(d.dst.to_string(), "10.0.0.2:5062");
        assert_eq!(d.transport, Transport::Udp);
        assert_eq!(d.payload, b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec());
    }

    #[test]
    fn udp_length_field() {
        let mut h = Harness::default();
        let mut pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"abcdef");
        // UDP length says 10: 2 payload bytes, the rest is trailing IP payload.
        pkt[24..26].copy_from_slice(&10u16.to_be_bytes());
        h.feed(LinkType::Ipv4, 1, &pkt);
        assert_eq!(h.payloads(), vec![b"ab".to_vec()]);
        // Longer than the IP payload, then shorter than the header.
        pkt[24..26].copy_from_slice(&100u16.to_be_bytes());
        h.feed(LinkType::Ipv4, 2, &pkt);
        pkt[24..26].copy_from_slice(&7u16.to_be_bytes());
        h.feed(LinkType::Ipv4, 3, &pkt);
        assert_eq!(h.counters.dropped(DropReason::BadUdp), 2);
        // IP payload too short for a UDP header.
        let mut short = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"");
        short.truncate(24);
        short[3] = 24;
        h.feed(LinkType::Ipv4, 4, &short);
        assert_eq!(h.counters.dropped(DropReason::BadUdp), 3);
    }
}
