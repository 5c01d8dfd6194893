#!/usr/bin/env python3
"""Tests of scripts/tshark-reference.py: the reducer's rules on hand-made message lists,
the tshark reading of a TCP segment holding three SIP messages, HEP (plain and zlib, pcap
and pcapng) read the same as the direct capture, and the real Kamailio run read both ways.

usage: python3 scripts/test_tshark_reference.py      (needs tshark; ends "N passed, N failed")
"""
import importlib.util
import os
import struct
import sys
import tempfile
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLIC = os.path.join(HERE, "..", "tests", "fixtures", "public")
_spec = importlib.util.spec_from_file_location("tshark_reference", os.path.join(HERE, "tshark-reference.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

T0 = 1700000000000000  # µs


class Dialog:
    """Builds reducer input for one dialog: caller tag "a", callee tag "b"."""

    def __init__(self, cid="c1@h", caller="8001", callee="8101"):
        self.cid, self.caller, self.callee, self.frame, self.out = cid, caller, callee, 0, []

    def add(self, ms, method=None, status=None, cseq=1, cseq_method="INVITE", to_tag="b", from_tag="a", sdp=False):
        self.frame += 1
        fu, tu = (self.caller, self.callee) if from_tag == "a" else (self.callee, self.caller)
        self.out.append(ref.msg(self.frame, T0 + ms * 1000, self.cid, method, str(status) if status else None,
                                cseq_method, str(cseq), fu, tu, tu if method else None, from_tag, to_tag,
                                "0" if sdp else None))
        return self

    def invite(self, ms, cseq=1):
        return self.add(ms, "INVITE", cseq=cseq, to_tag=None, sdp=True)

    def resp(self, ms, status, cseq=1, method="INVITE", sdp=False):
        return self.add(ms, status=status, cseq=cseq, cseq_method=method, to_tag=None if status == 100 else "b",
                        sdp=sdp)


def one(msgs, cycle=5000):
    calls, _ = ref.reduce_calls(msgs, cycle)
    assert len(calls) == 1, calls
    return calls[0]


def test_answered_callee_hangs_up():
    d = Dialog().invite(0).resp(1, 100).resp(2, 180).resp(7002, 200, sdp=True).add(7003, "ACK", cseq_method="ACK")
    d.add(9503, "BYE", cseq=1, cseq_method="BYE", from_tag="b", to_tag="a").resp(9504, 200, method="BYE")
    c = one(d.out)
    assert c["answered"] and c["final_status"] == 200, c
    assert (c["ring_ms"], c["rings"], c["talk_ms"], c["ending"]) == (7000, 2, 2501, "bye"), c
    assert c["frames"] == {"invite": 1, "ringing": 3, "answered": 4, "ended": 6}, c
    assert (c["from_user"], c["to_user"], c["ruri_user"]) == ("8001", "8101", "8101"), c
    assert c["invite_at"] == 1700000000.0 and c["ended_at"] == 1700000009.503, c


def test_retransmissions_and_second_hop_change_nothing():
    d = Dialog().invite(0).resp(2, 180).resp(12002, 200, sdp=True).add(14000, "BYE", cseq=2, cseq_method="BYE")
    base = one(d.out)
    doubled = []
    for m in d.out:  # every message seen again 3 ms later (proxy hop or retransmission)
        again = dict(m)
        again["ts"] += 3000
        again["frame"] += 100
        doubled += [m, again]
    c = one(doubled)
    assert {k: v for k, v in c.items() if k != "frames"} == {k: v for k, v in base.items() if k != "frames"}
    assert (c["rings"], c["ring_ms"], c["talk_ms"]) == (3, 12000, 1998), c


def test_answer_without_any_18x_is_zero_rings():
    d = Dialog().invite(0).resp(1, 100).resp(2000, 200, sdp=True).add(4500, "BYE", cseq=2, cseq_method="BYE")
    c = one(d.out)
    assert (c["ringing_at"], c["ring_ms"], c["rings"], c["talk_ms"]) == (None, 0, 0, 2500), c


def test_183_counts_only_with_sdp():
    d = Dialog().invite(0).resp(5, 183).resp(1000, 180).resp(3000, 200, sdp=True)
    c = one(d.out)
    assert c["ring_ms"] == 2000 and c["frames"]["ringing"] == 3, c
    d = Dialog().invite(0).resp(5, 183, sdp=True).resp(1000, 180).resp(3000, 200, sdp=True)
    assert one(d.out)["ring_ms"] == 2995


def test_cancel_keeps_the_rings_heard():
    d = Dialog().invite(0).resp(2, 180).add(7002, "CANCEL", cseq_method="CANCEL", to_tag=None)
    d.resp(7003, 200, method="CANCEL").resp(7004, 487).add(7005, "ACK", cseq_method="ACK")
    c = one(d.out)
    assert not c["answered"] and c["ending"] == "cancel" and c["final_status"] == 487, c
    assert (c["ended_at"], c["ring_ms"], c["rings"], c["talk_ms"]) == (1700000007.002, 7000, 2, 0), c


def test_busy_is_a_status_ending():
    d = Dialog().invite(0).resp(2, 180).resp(3002, 486).add(3003, "ACK", cseq_method="ACK")
    c = one(d.out)
    assert (c["ending"], c["final_status"], c["ring_ms"], c["rings"]) == ("status", 486, 3000, 1), c


def test_challenge_then_new_attempt_is_one_call():
    d = Dialog().invite(0).resp(100, 407).add(101, "ACK", cseq_method="ACK").invite(5000, cseq=2)
    d.resp(5100, 180, cseq=2).resp(8100, 200, cseq=2, sdp=True).add(9000, "BYE", cseq=3, cseq_method="BYE")
    c = one(d.out)
    assert c["answered"] and c["final_status"] == 200 and c["ending"] == "bye", c
    assert c["invite_at"] == 1700000000.0 and c["ring_ms"] == 3000, c
    # challenged and never retried: the 407 ends it
    d = Dialog().invite(0).resp(100, 407).add(101, "ACK", cseq_method="ACK")
    c = one(d.out)
    assert (c["ending"], c["final_status"], c["ended_at"]) == ("status", 407, 1700000000.1), c
    # a reject of the first attempt only: the second is still open
    d = Dialog().invite(0).resp(100, 407).invite(5000, cseq=2).resp(5100, 180, cseq=2)
    c = one(d.out)
    assert (c["ending"], c["final_status"], c["ring_ms"], c["rings"]) == ("none", None, None, None), c


def test_register_only_is_not_a_call_and_reinvite_is_not_new():
    r = Dialog(cid="reg@h")
    r.add(0, "REGISTER", cseq_method="REGISTER", to_tag=None).resp(1, 200, method="REGISTER")
    d = Dialog().invite(10).resp(20, 200, sdp=True).add(30, "INVITE", cseq=2, sdp=True).resp(40, 200, cseq=2)
    calls, non_call = ref.reduce_calls(r.out + d.out)
    assert len(calls) == 1 and non_call == 1, (calls, non_call)
    assert calls[0]["answered_at"] == 1700000000.02 and calls[0]["talk_ms"] is None, calls


def test_same_call_id_two_from_tags_are_two_calls():
    a = Dialog().invite(0).resp(1000, 486)
    b = Dialog()
    b.frame = 10
    b.add(500, "INVITE", to_tag=None, from_tag="x").add(600, status=180, to_tag="y", from_tag="x")
    calls, _ = ref.reduce_calls(a.out + b.out)
    assert [c["from_tag"] for c in calls] == ["a", "x"], calls
    assert calls[1]["ring_ms"] is None and calls[0]["ending"] == "status", calls


def test_ring_boundaries():
    for ring, rings in ((4999, 1), (5000, 2), (9999, 2), (10000, 3), (15000, 4)):
        d = Dialog().invite(0).resp(10, 180).resp(10 + ring, 200)
        assert one(d.out)["rings"] == rings, ring
    d = Dialog().invite(0).resp(10, 180).resp(2010, 200)
    assert one(d.out, cycle=1000)["rings"] == 3


# ---------------------------------------------------------------- through tshark

ETH = b"\0" * 12 + b"\x08\x00"


def sip_bytes(first, hdrs, body=""):
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return ("%s\r\n%s%sContent-Length: %d\r\n\r\n%s" % (first, "".join(h + "\r\n" for h in hdrs), ctype,
                                                         len(body), body)).encode()


SDP = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"


def dialog_messages(transport="UDP"):
    """[(ms, from_caller, bytes)] of a call: INVITE 100 180 ..7 s.. 200 ACK ..2.5 s.. BYE 200."""
    via = "Via: SIP/2.0/%s 127.0.0.1:5070;branch=z9hG4bK-t1" % transport
    frm, cid = "From: <sip:8001@127.0.0.1>;tag=a", "Call-ID: t1@127.0.0.1"
    to, tot = "To: <sip:8101@127.0.0.1>", "To: <sip:8101@127.0.0.1>;tag=b"
    inv = sip_bytes("INVITE sip:8101@127.0.0.1:5080 SIP/2.0", [via, frm, to, cid, "CSeq: 1 INVITE"], SDP)
    return [
        (0, True, inv),
        (1, False, sip_bytes("SIP/2.0 100 Trying", [via, frm, to, cid, "CSeq: 1 INVITE"])),
        (2, False, sip_bytes("SIP/2.0 180 Ringing", [via, frm, tot, cid, "CSeq: 1 INVITE"])),
        (7002, False, sip_bytes("SIP/2.0 200 OK", [via, frm, tot, cid, "CSeq: 1 INVITE"], SDP)),
        (7003, True, sip_bytes("ACK sip:8101@127.0.0.1:5080 SIP/2.0", [via, frm, tot, cid, "CSeq: 1 ACK"])),
        (9503, True, sip_bytes("BYE sip:8101@127.0.0.1:5080 SIP/2.0", [via, frm, tot, cid, "CSeq: 2 BYE"])),
        (9504, False, sip_bytes("SIP/2.0 200 OK", [via, frm, tot, cid, "CSeq: 2 BYE"])),
    ]


def write_pcap(path, frames, link=1):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, link))
        for ts, fr in frames:
            f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(fr), len(fr)))
            f.write(fr)


def write_pcapng(path, frames, link=113):
    """One interface (Linux cooked by default), µs resolution, enhanced packet blocks."""
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(1, struct.pack("<HHI", link, 0, 262144)))
        for ts, fr in frames:
            f.write(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(fr), len(fr)) + fr))


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload):
    th = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0x4000, 64, 6, 0,
                               bytes(src), bytes(dst)))
    struct.pack_into("!H", ip, 10, ref._ip_checksum(bytes(ip)))
    return ETH + bytes(ip) + th + payload


def test_tcp_segment_with_three_messages():
    """100, 183 with SDP and 180 in one TCP segment: -T fields cannot split it, -T json can."""
    msgs = dialog_messages("TCP")
    inv, r100, r180 = msgs[0][2], msgs[1][2], msgs[2][2]
    r183 = r180.replace(b"180 Ringing", b"183 Session Progress").replace(
        b"Content-Length: 0\r\n\r\n", ("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
                                      % (len(SDP), SDP)).encode())
    a, b = [127, 0, 0, 1], [127, 0, 0, 2]
    frames = [
        (T0, tcp_frame(a, b, 40000, 5060, 1000, 0, 0x02, b"")),
        (T0 + 100, tcp_frame(b, a, 5060, 40000, 5000, 1001, 0x12, b"")),
        (T0 + 200, tcp_frame(a, b, 40000, 5060, 1001, 5001, 0x10, b"")),
        (T0 + 1000000, tcp_frame(a, b, 40000, 5060, 1001, 5001, 0x18, inv)),
        (T0 + 1100000, tcp_frame(b, a, 5060, 40000, 5001, 1001 + len(inv), 0x18, r100 + r183 + r180)),
    ]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "multi.pcap")
        write_pcap(p, frames)
        got, skipped = ref.read_sip(p)
    assert [(m["frame"], m["method"], m["status"], m["sdp"]) for m in got] == [
        (4, "INVITE", None, True), (5, None, 100, False), (5, None, 183, True), (5, None, 180, False)], got
    assert got[2]["to_tag"] == "b" and got[1]["to_tag"] is None and skipped == [], got
    c = one(got)
    assert c["ringing_at"] == 1700000001.1 and c["frames"]["ringing"] == 5, c


def hep3_packet(ts_us, payload, compress=False, src="10.0.0.1", dst="10.0.0.2", sport=5070, dport=5080):
    def chunk(t, body):
        return struct.pack("!HHH", 0, t, 6 + len(body)) + body
    body = (chunk(1, b"\x02") + chunk(2, b"\x11") + chunk(3, bytes(map(int, src.split("."))))
            + chunk(4, bytes(map(int, dst.split(".")))) + chunk(7, struct.pack("!H", sport))
            + chunk(8, struct.pack("!H", dport)) + chunk(9, struct.pack("!I", ts_us // 1000000))
            + chunk(10, struct.pack("!I", ts_us % 1000000)) + chunk(11, b"\x01")
            + chunk(12, struct.pack("!I", 2001)))
    body += chunk(0x10, zlib.compress(payload)) if compress else chunk(0x0F, payload)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def udp_on_lo(payload, sport=5062, dport=9060):
    return ref.udp_frame("127.0.0.1", "127.0.0.1", sport, dport, payload)


def test_hep_reads_like_the_direct_capture():
    msgs = dialog_messages()
    direct = [(T0 + ms * 1000, ref.udp_frame("10.0.0.1" if up else "10.0.0.2", "10.0.0.2" if up else "10.0.0.1",
                                             5070 if up else 5080, 5080 if up else 5070, b)) for ms, up, b in msgs]
    hep = []
    for i, (ms, up, b) in enumerate(msgs):
        ts = T0 + ms * 1000
        src, dst = ("10.0.0.1", "10.0.0.2") if up else ("10.0.0.2", "10.0.0.1")
        sp, dp = (5070, 5080) if up else (5080, 5070)
        # the pcap time is 40 ms later than the HEP time: the reference must use the HEP one
        hep.append((ts + 40000, udp_on_lo(hep3_packet(ts, b, compress=i % 2 == 1, src=src, dst=dst,
                                                      sport=sp, dport=dp))))
    hep.insert(3, (T0 + 5000000, udp_on_lo(b"HEP3\x00\x06")))  # empty HEP: ignored
    with tempfile.TemporaryDirectory() as d:
        pd, ph, pn = os.path.join(d, "d.pcap"), os.path.join(d, "h.pcap"), os.path.join(d, "h.pcapng")
        write_pcap(pd, direct)
        write_pcap(ph, hep)
        # the same HEP in pcapng on a Linux cooked link
        sll = [(ts, struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + fr[14:]) for ts, fr in hep]
        write_pcapng(pn, sll)
        version = ref.tshark_version()
        rd, rh, rn = (ref.reference(p, 5000, version) for p in (pd, ph, pn))
    assert rd["reader"].startswith("tshark") and rh["reader"].startswith("hep_dump.py"), (rd, rh)
    assert rn["reader"].startswith("hep_dump.py"), rn
    strip = [{k: v for k, v in c.items() if k != "frames"} for c in rd["calls"]]
    assert len(strip) == 1 and strip[0]["rings"] == 2 and strip[0]["talk_ms"] == 2501, strip
    for r in (rh, rn):
        assert [{k: v for k, v in c.items() if k != "frames"} for c in r["calls"]] == strip, r["calls"]
        assert r["sip_messages"] == 7, r
    assert rh["calls"][0]["frames"] == {"invite": 1, "ringing": 3, "answered": 5, "ended": 7}, rh["calls"]


def test_real_kamailio_run_hep_agrees_with_the_wire():
    """The public Kamailio capture and its HEP copies: same calls, same outcomes, ring and
    talk times within 5 ms (HEP stamps are Kamailio's clock at receipt, the wire's tcpdump's)."""
    wire = os.path.join(PUBLIC, "gen-kamailio-proxy-calls-udp-with-hep3.pcap")
    hep = os.path.join(PUBLIC, "gen-kamailio-hep3-only-udp9060.pcap")
    version = ref.tshark_version()
    rw, rh = ref.reference(wire, 5000, version), ref.reference(hep, 5000, version)
    assert len(rw["calls"]) == 7 and len(rh["calls"]) == 7, (rw["calls"], rh["calls"])
    for a, b in zip(rw["calls"], rh["calls"]):
        for k in ("call_id", "from_user", "to_user", "answered", "final_status", "ending", "rings"):
            assert a[k] == b[k], (k, a, b)
        for k in ("ring_ms", "talk_ms"):
            assert abs(a[k] - b[k]) <= 5, (k, a, b)
    assert [c["rings"] for c in rw["calls"]] == [3, 4, 1, 1, 1, 2, 1], rw["calls"]


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, f in tests:
        try:
            f()
            passed += 1
            print("ok   %s" % name)
        except Exception:  # report every failure, not only the first
            failed += 1
            print("FAIL %s" % name)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
