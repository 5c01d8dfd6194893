//! Test helpers: a decoder harness that keeps owned copies of what it emitted, and packet
//! builders (etherparse's `PacketBuilder` where it fits; TCP by hand for free flags).

use super::{DecodeConfig, Decoder, Frame, LinkType, PayloadHint, Transport};
use crate::counters::Counters;
use crate::time::Ts;
use etherparse::{IpNumber, PacketBuilder};
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub ts: Ts,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: Vec<u8>,
    pub hint: PayloadHint,
}

pub struct Harness {
    pub decoder: Decoder,
    pub counters: Counters,
    pub out: Vec<Owned>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::with_config(DecodeConfig::default())
    }
}

impl Harness {
    pub fn with_config(cfg: DecodeConfig) -> Harness {
        Harness { decoder: Decoder::new(cfg), counters: Counters::default(), out: Vec::new() }
    }

    /// Decode one frame; returns how many datagrams it produced.
    pub fn feed(&mut self, link: LinkType, ts: i64, bytes: &[u8]) -> usize {
        let before = self.out.len();
        let out = &mut self.out;
        self.decoder.decode(Frame { ts: Ts(ts), link, bytes }, &mut self.counters, &mut |_, d| {
            out.push(Owned {
                ts: d.ts,
                src: d.src,
                dst: d.dst,
                transport: d.transport,
                payload: d.payload.to_vec(),
                hint: d.hint,
            })
        });
        self.out.len() - before
    }

    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.out.iter().map(|d| d.payload.clone()).collect()
    }
}

/// A raw IPv4 + UDP packet (valid checksums).
pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// A raw IPv6 + UDP packet.
pub fn ipv6_udp(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(src, dst, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// An IPv4 header with protocol `proto` around `inner` (IP-in-IP: 4 or 41).
pub fn ipv4_wrap(src: [u8; 4], dst: [u8; 4], proto: u8, inner: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).write(&mut v, IpNumber(proto), inner).unwrap();
    v
}

#[derive(Copy, Clone, Debug)]
pub struct TcpFlags(pub u8);
impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01 | 0x10);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const ACK: TcpFlags = TcpFlags(0x10);
}

/// A raw IPv4 + TCP packet (20-byte headers; checksums left 0: the decoder ignores them).
pub fn ipv4_tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let total = (40 + payload.len()) as u16;
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0x50, flags.0, 0xff, 0xff, 0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An Ethernet frame around an L3 packet.
pub fn ethernet(ether_type: u16, l3: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 12];
    v.extend_from_slice(&ether_type.to_be_bytes());
    v.extend_from_slice(l3);
    v
}

/// Split a raw IPv4 packet (20-byte header) into fragments of at most `size` payload
/// bytes (a multiple of 8).
pub fn ipv4_fragments(pkt: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let (head, body) = pkt.split_at(20);
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = head.to_vec();
            let off = (i * size / 8) as u16;
            let more = (i + 1) * size < body.len();
            f[2..4].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            f[6..8].copy_from_slice(&(off | if more { 0x2000 } else { 0 }).to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

/// Split a raw IPv6 packet (40-byte header, no extensions) into fragments with a
/// Fragment header.
pub fn ipv6_fragments(pkt: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let (head, body) = pkt.split_at(40);
    let next = head[6];
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = head.to_vec();
            f[6] = 44;
            f[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            let off = (i * size / 8) as u16;
            let more = (i + 1) * size < body.len();
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}
