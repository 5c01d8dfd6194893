//! Test helper: the UDP payloads of a capture in tests/fixtures/public/, for the SIP and RTP
//! parser tests. Deliberately narrow — Ethernet or Linux SLL, IPv4, UDP, unfragmented, pcap
//! or pcapng — since decoding in general is the decode module's job; frames it cannot read
//! are skipped, and each test asserts the counts it expects so nothing is skipped silently.

use pcap_file::pcapng::Block;
use pcap_file::DataLink;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

/// One UDP datagram of a capture, with its 1-based frame number (as tshark numbers them).
#[derive(Clone, Debug)]
pub(crate) struct Udp {
    pub frame: usize,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/public").join(name)
}

/// Every readable IPv4/UDP datagram of the named fixture, in capture order.
pub(crate) fn udp_payloads(name: &str) -> Vec<Udp> {
    let bytes = std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut frames: Vec<(DataLink, Vec<u8>)> = Vec::new();
    if name.ends_with(".pcapng") {
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).expect("pcapng header");
        while let Some(block) = r.next_block() {
            let (id, data) = match block.expect("pcapng block") {
                Block::EnhancedPacket(p) => (p.interface_id as usize, p.data.into_owned()),
                _ => continue,
            };
            frames.push((r.interfaces()[id].linktype, data));
        }
    } else {
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("pcap header");
        let link = r.header().datalink;
        while let Some(p) = r.next_packet() {
            frames.push((link, p.expect("pcap packet").data.into_owned()));
        }
    }
    let mut out = Vec::new();
    for (i, (link, data)) in frames.iter().enumerate() {
        let sliced = match link {
            DataLink::ETHERNET => etherparse::SlicedPacket::from_ethernet(data),
            // etherparse maps SLL protocols by ARPHRD type and skips loopback (772): read
            // the 16-byte SLL header's protocol field ourselves.
            DataLink::LINUX_SLL if data.get(14..16) == Some(&[0x08, 0x00]) => {
                etherparse::SlicedPacket::from_ip(&data[16..])
            }
            _ => continue,
        };
        let Ok(p) = sliced else { continue };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(udp))) = (p.net, p.transport)
        else {
            continue;
        };
        if ip.is_payload_fragmented() {
            continue;
        }
        let h = ip.header();
        out.push(Udp {
            frame: i + 1,
            src: SocketAddrV4::new(Ipv4Addr::from(h.source()), udp.source_port()),
            dst: SocketAddrV4::new(Ipv4Addr::from(h.destination()), udp.destination_port()),
            payload: udp.payload().to_vec(),
        });
    }
    out
}
