//! Link layer: strips the link header of a frame and says which network protocol follows.
//! Ethernet and its 802.1Q / 802.1ad (QinQ) tags are sliced with etherparse; MPLS label
//! stacks (EtherType 0x8847/0x8848, RFC 3032) are walked here to the IP packet or, behind
//! a pseudowire control word, the Ethernet frame they carry; Linux SLL and
//! SLL2 and the BSD NULL/LOOP headers are fixed-offset fields read here (etherparse has no
//! SLL2 and no NULL/LOOP, and its SLL slice rejects ARPHRD types it does not know, such as
//! tunnel devices, whose protocol field is still an EtherType).
//! May use: nothing but etherparse. Invariant: every read is length-checked; a frame
//! shorter than its link header is `Truncated`, a non-IP payload is `NotIp`; tags and labels
//! are followed at most `MAX_LINK_STEPS` times, so a hostile frame cannot loop.

use super::LinkType;
use crate::counters::DropReason;
use etherparse::{EtherType, Ethernet2Header, Ethernet2HeaderSlice, SingleVlanHeader, SingleVlanHeaderSlice};

/// The IP version the link header announced (None: read it from the version nibble).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum IpVersion {
    V4,
    V6,
}

/// What follows the link header.
#[derive(Copy, Clone, Debug)]
pub(crate) struct L3<'a> {
    pub version: Option<IpVersion>,
    pub bytes: &'a [u8],
    /// An 802.1ad service tag was on the way (counted as `Tunnel::Qinq`).
    pub qinq: bool,
    /// An MPLS label stack was on the way (counted as `Tunnel::Mpls`).
    pub mpls: bool,
}

impl<'a> L3<'a> {
    pub(crate) fn new(version: Option<IpVersion>, bytes: &'a [u8]) -> L3<'a> {
        L3 { version, bytes, qinq: false, mpls: false }
    }
}

/// VLAN tags, label stacks and pseudowire Ethernet headers followed at most (QinQ is two
/// tags; more is a malformed or hostile frame).
const MAX_LINK_STEPS: usize = 8;
/// MPLS labels in one stack followed at most.
const MAX_MPLS_LABELS: usize = 8;
const ETHERTYPE_MPLS: EtherType = EtherType(0x8847);
const ETHERTYPE_MPLS_MULTICAST: EtherType = EtherType(0x8848);

/// Strip the link header of `link` (never `Hep` or `Other`: the caller handles those).
pub(crate) fn parse(link: LinkType, bytes: &[u8]) -> Result<L3<'_>, DropReason> {
    match link {
        LinkType::Ethernet => ethernet(bytes),
        LinkType::LinuxSll => sll(bytes),
        LinkType::LinuxSll2 => sll2(bytes),
        LinkType::RawIp => Ok(L3::new(None, bytes)),
        LinkType::Ipv4 => Ok(L3::new(Some(IpVersion::V4), bytes)),
        LinkType::Ipv6 => Ok(L3::new(Some(IpVersion::V6), bytes)),
        LinkType::Null => null_family(bytes, false),
        LinkType::Loop => null_family(bytes, true),
        LinkType::Hep | LinkType::Other(_) => Err(DropReason::UnknownLink),
    }
}

fn ethernet(bytes: &[u8]) -> Result<L3<'_>, DropReason> {
    let eth = Ethernet2HeaderSlice::from_slice(bytes).map_err(|_| DropReason::Truncated)?;
    after_ethertype(eth.ether_type(), bytes.get(Ethernet2Header::LEN..).unwrap_or(&[]))
}

/// Follow VLAN tags and MPLS label stacks, then map the EtherType to an IP version. Also
/// used for the protocol field of GRE, which is an EtherType too.
pub(crate) fn after_ethertype(mut ether_type: EtherType, mut rest: &[u8]) -> Result<L3<'_>, DropReason> {
    let (mut qinq, mut mpls) = (false, false);
    for _ in 0..=MAX_LINK_STEPS {
        let version = match ether_type {
            EtherType::IPV4 => Some(IpVersion::V4),
            EtherType::IPV6 => Some(IpVersion::V6),
            EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                qinq |= ether_type != EtherType::VLAN_TAGGED_FRAME;
                let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| DropReason::Truncated)?;
                ether_type = tag.ether_type();
                rest = rest.get(SingleVlanHeader::LEN..).ok_or(DropReason::Truncated)?;
                continue;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                mpls = true;
                match mpls_stack(rest)? {
                    MplsInner::Ip(bytes) => return Ok(L3 { version: None, bytes, qinq, mpls }),
                    MplsInner::Ethernet(frame) => {
                        let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| DropReason::Truncated)?;
                        ether_type = eth.ether_type();
                        rest = frame.get(Ethernet2Header::LEN..).unwrap_or(&[]);
                        continue;
                    }
                }
            }
            _ => return Err(DropReason::NotIp),
        };
        return Ok(L3 { version, bytes: rest, qinq, mpls });
    }
    Err(DropReason::NotIp)
}

/// What an MPLS label stack carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum MplsInner<'a> {
    /// An IP packet (first nibble 4 or 6; the IP layer checks which).
    Ip(&'a [u8]),
    /// An Ethernet frame behind a pseudowire control word (RFC 4385: first nibble 0).
    Ethernet(&'a [u8]),
}

/// Walk an MPLS label stack to its bottom (S bit), at most `MAX_MPLS_LABELS` labels. The
/// stack does not say what it carries: the first nibble after it does (RFC 4385).
pub(crate) fn mpls_stack(bytes: &[u8]) -> Result<MplsInner<'_>, DropReason> {
    let mut at = 0usize;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = bytes.get(at..at + 4).ok_or(DropReason::BadMpls)?;
        at += 4;
        if entry[2] & 1 == 1 {
            let rest = bytes.get(at..).unwrap_or(&[]);
            return match rest.first().map(|b| b >> 4) {
                Some(4 | 6) => Ok(MplsInner::Ip(rest)),
                Some(0) => rest.get(4..).map(MplsInner::Ethernet).ok_or(DropReason::BadMpls),
                _ => Err(DropReason::BadMpls),
            };
        }
    }
    Err(DropReason::BadMpls)
}

/// Linux cooked capture v1: 16 bytes, protocol (an EtherType for IP) at offset 14.
fn sll(bytes: &[u8]) -> Result<L3<'_>, DropReason> {
    let header: &[u8; 16] = bytes.get(..16).and_then(|h| h.try_into().ok()).ok_or(DropReason::Truncated)?;
    let hatype = u16::from_be_bytes([header[2], header[3]]);
    if hatype == ARPHRD_NETLINK {
        return Err(DropReason::NotIp);
    }
    let proto = EtherType(u16::from_be_bytes([header[14], header[15]]));
    after_ethertype(proto, bytes.get(16..).unwrap_or(&[]))
}

/// Linux cooked capture v2: 20 bytes, protocol (EtherType) at offset 0.
fn sll2(bytes: &[u8]) -> Result<L3<'_>, DropReason> {
    let header: &[u8; 20] = bytes.get(..20).and_then(|h| h.try_into().ok()).ok_or(DropReason::Truncated)?;
    let hatype = u16::from_be_bytes([header[8], header[9]]);
    if hatype == ARPHRD_NETLINK {
        return Err(DropReason::NotIp);
    }
    let proto = EtherType(u16::from_be_bytes([header[0], header[1]]));
    after_ethertype(proto, bytes.get(20..).unwrap_or(&[]))
}

const ARPHRD_NETLINK: u16 = 824;

/// BSD loopback: a 4-byte address family. NULL writes it in the capturing host's byte
/// order (unknown to us), LOOP in network order. The families we accept are small
/// numbers, so a value read in the wrong order is ≥ 2^24 and cannot be mistaken: for NULL
/// both orders are tried.
fn null_family(bytes: &[u8], network_order: bool) -> Result<L3<'_>, DropReason> {
    let head: [u8; 4] = bytes.get(..4).and_then(|h| h.try_into().ok()).ok_or(DropReason::Truncated)?;
    let rest = bytes.get(4..).unwrap_or(&[]);
    let be = u32::from_be_bytes(head);
    let family = if network_order { be } else { be.min(u32::from_le_bytes(head)) };
    match family {
        // AF_INET everywhere.
        2 => Ok(L3::new(Some(IpVersion::V4), rest)),
        // AF_INET6: OpenBSD/NetBSD 24, FreeBSD 28, macOS 30.
        24 | 28 | 30 => Ok(L3::new(Some(IpVersion::V6), rest)),
        _ => Err(DropReason::NotIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_plain_vlan_qinq() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        let l3 = parse(LinkType::Ethernet, &f).unwrap();
        assert_eq!(l3.version, Some(IpVersion::V4));
        assert_eq!(l3.bytes, &[0x45]);

        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd, 0x60]);
        let l3 = parse(LinkType::Ethernet, &f).unwrap();
        assert_eq!(l3.version, Some(IpVersion::V6));
        assert_eq!(l3.bytes, &[0x60]);
    }

    #[test]
    fn ethernet_errors() {
        assert_eq!(parse(LinkType::Ethernet, &[0u8; 13]).unwrap_err(), DropReason::Truncated);
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(parse(LinkType::Ethernet, &arp).unwrap_err(), DropReason::NotIp);
        // A VLAN tag cut short.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(parse(LinkType::Ethernet, &f).unwrap_err(), DropReason::Truncated);
        // Ten nested tags is more than we follow.
        let mut f = vec![0u8; 12];
        for _ in 0..10 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(LinkType::Ethernet, &f).unwrap_err(), DropReason::NotIp);
    }

    #[test]
    fn sll_and_sll2() {
        let mut f = vec![0u8; 14];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0x01]);
        let l3 = parse(LinkType::LinuxSll, &f).unwrap();
        assert_eq!((l3.version, l3.bytes), (Some(IpVersion::V6), &[0x60u8, 0x01][..]));
        assert_eq!(parse(LinkType::LinuxSll, &f[..15]).unwrap_err(), DropReason::Truncated);

        let mut f = vec![0x08, 0x00];
        f.extend_from_slice(&[0u8; 18]);
        f.push(0x45);
        let l3 = parse(LinkType::LinuxSll2, &f).unwrap();
        assert_eq!((l3.version, l3.bytes), (Some(IpVersion::V4), &[0x45u8][..]));
        assert_eq!(parse(LinkType::LinuxSll2, &f[..19]).unwrap_err(), DropReason::Truncated);
        // Netlink monitor frames are not IP whatever the protocol says.
        f[8..10].copy_from_slice(&824u16.to_be_bytes());
        assert_eq!(parse(LinkType::LinuxSll2, &f).unwrap_err(), DropReason::NotIp);
    }

    #[test]
    fn null_both_orders_and_loop() {
        let l3 = parse(LinkType::Null, &[2, 0, 0, 0, 0x45]).unwrap();
        assert_eq!(l3.version, Some(IpVersion::V4));
        let l3 = parse(LinkType::Null, &[0, 0, 0, 2, 0x45]).unwrap();
        assert_eq!(l3.version, Some(IpVersion::V4));
        for fam in [24u32, 28, 30] {
            let mut f = fam.to_le_bytes().to_vec();
            f.push(0x60);
            assert_eq!(parse(LinkType::Null, &f).unwrap().version, Some(IpVersion::V6));
            let mut f = fam.to_be_bytes().to_vec();
            f.push(0x60);
            assert_eq!(parse(LinkType::Loop, &f).unwrap().version, Some(IpVersion::V6));
        }
        // LOOP is network order only: a little-endian 2 is family 0x02000000.
        assert_eq!(parse(LinkType::Loop, &[2, 0, 0, 0, 0x45]).unwrap_err(), DropReason::NotIp);
        assert_eq!(parse(LinkType::Null, &[7, 0, 0, 0]).unwrap_err(), DropReason::NotIp);
        assert_eq!(parse(LinkType::Null, &[2, 0, 0]).unwrap_err(), DropReason::Truncated);
    }

    #[test]
    fn raw_ip_passes_through() {
        let l3 = parse(LinkType::RawIp, &[0x45, 1]).unwrap();
        assert_eq!((l3.version, l3.bytes), (None, &[0x45u8, 1][..]));
        assert_eq!(parse(LinkType::Ipv6, &[0x60]).unwrap().version, Some(IpVersion::V6));
    }
}
