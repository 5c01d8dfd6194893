#!/usr/bin/env python3
"""An independent reading of SIP captures: tshark parses, a small reducer makes per-call figures.

callwarden's own figures (rings, ring and talk time, how a call ended) are checked against
this. It shares no code with callwarden: tshark (Wireshark's dissectors) parses every SIP
message, including IPv4/IPv6 defragmentation and TCP reassembly, and `reduce_calls` below
turns the messages into calls by the rules written in its docstring.

usage:
  tshark-reference.py PCAP... --out-dir DIR [--cycle-ms 5000] [--text]
(its tests: scripts/test_tshark_reference.py)

For each PCAP it writes DIR/<file name>.json:
  {"file", "reader", "tshark_version", "tshark_args", "reducer", "ring_cycle_ms",
   "sip_messages", "skipped_frames", "non_call_dialogs", "calls": [...]}
and each call is
  {"call_id", "from_tag", "from_user", "to_user", "ruri_user", "invite_at", "ringing_at",
   "answered_at", "ended_at", "final_status", "answered", "ring_ms", "rings", "talk_ms",
   "ending", "frames": {"invite", "ringing", "answered", "ended"}}
with times as Unix epoch seconds to the microsecond (as read by tshark: frame.time_epoch,
or the HEP timestamp), durations in whole milliseconds (truncated), frame numbers of the
messages each figure comes from. --text also prints one line per call.

Readers:
  * "tshark": `tshark -T fields` with the fields in FIELDS. A frame that holds more than
    one SIP message (several in one TCP segment) cannot be split reliably in that format
    (absent fields shift the columns), so such frames are read again with `-T json`, where
    every message is its own object.
  * "hep": for captures in which tshark finds no SIP but which carry HEPv3 (tshark 4.0 has
    no HEP dissector), the HEP decoding of scripts/peers/hep_dump.py takes every SIP
    payload (chunk 0x0f, or 0x10 inflated) with its HEP timestamp and inner addresses,
    writes it to a temporary pcap as plain UDP, and the same tshark reading and reducer run
    over that. Frame numbers are those of the original file.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import hep_dump  # noqa: E402  (scripts/peers/hep_dump.py)

FIELDS = [
    "frame.number", "frame.time_epoch", "sip.Call-ID", "sip.Method", "sip.Status-Code",
    "sip.CSeq.method", "sip.CSeq.seq", "sip.from.user", "sip.to.user", "sip.r-uri.user",
    "sip.from.tag", "sip.to.tag", "sdp.version",
]
# tshark reassembles IP fragments and TCP streams by default; say so explicitly so that a
# changed default or a user preference file cannot change the reading.
TSHARK_OPTS = [
    "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
    "-o", "tcp.desegment_tcp_streams:TRUE", "-o", "sip.desegment_headers:TRUE",
    "-o", "sip.desegment_body:TRUE",
]
# SIP quoted inside an ICMP error is not a message anybody received.
DISPLAY_FILTER = "sip && !icmp && !icmpv6"
AGG = "\x1f"  # aggregator for repeated fields: cannot occur in a SIP header value


def tshark_version():
    out = subprocess.run(["tshark", "-v"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0]  # "TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as ...)."
    parts = first.split()
    return parts[2] if len(parts) > 2 else first


def epoch_us(text):
    """'1700000000.123456789' -> 1700000000123456 (exact, no float)."""
    sec, _, frac = text.strip().partition(".")
    return int(sec) * 1000000 + int((frac + "000000")[:6])


def msg(frame, ts_us, call_id, method, status, cseq_method, cseq_seq, from_user, to_user, ruri_user,
        from_tag, to_tag, sdp):
    """One SIP message as the reducer sees it (None for an absent field)."""
    return {
        "frame": frame, "ts": ts_us, "call_id": call_id or None, "method": method or None,
        "status": int(status) if status else None, "cseq_method": cseq_method or None,
        "cseq_seq": int(cseq_seq) if cseq_seq and cseq_seq.isdigit() else None,
        "from_user": from_user or None, "to_user": to_user or None, "ruri_user": ruri_user or None,
        "from_tag": from_tag or None, "to_tag": to_tag or None, "sdp": bool(sdp),
    }


def run_tshark(path, extra):
    cmd = ["tshark", "-n", "-r", path] + TSHARK_OPTS + extra
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        # tshark exits 2 on a cut-short last packet yet prints what it read: keep that,
        # but a file it cannot open at all is an error.
        if not p.stdout:
            raise RuntimeError("%s: tshark failed (%d): %s" % (path, p.returncode, p.stderr.strip()[-500:]))
    return p.stdout


def read_sip(path):
    """All SIP messages of a capture, in capture order; also the frames tshark matched but
    that held no parsable message."""
    extra = ["-Y", DISPLAY_FILTER, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
             "-E", "aggregator=" + AGG, "-E", "quote=n"]
    for f in FIELDS:
        extra += ["-e", f]
    out = run_tshark(path, extra)
    msgs, multi, skipped = [], [], []
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < len(FIELDS):
            continue
        v = dict(zip(FIELDS, cols))
        methods = [x for x in v["sip.Method"].split(AGG) if x]
        statuses = [x for x in v["sip.Status-Code"].split(AGG) if x]
        frame = int(v["frame.number"])
        n = len(methods) + len(statuses)
        if n == 0:
            skipped.append(frame)
            continue
        if n > 1:
            multi.append(frame)
            msgs.append(("multi", frame))
            continue

        def first(name):
            return v[name].split(AGG)[0]

        msgs.append(msg(frame, epoch_us(v["frame.time_epoch"]), first("sip.Call-ID"),
                        methods[0] if methods else None, statuses[0] if statuses else None,
                        first("sip.CSeq.method"), first("sip.CSeq.seq"), first("sip.from.user"),
                        first("sip.to.user"), first("sip.r-uri.user"), first("sip.from.tag"),
                        first("sip.to.tag"), first("sdp.version")))
    if multi:
        split = read_multi(path, multi)
        flat = []
        for m in msgs:
            if isinstance(m, tuple):
                flat.extend(split.get(m[1], []))
            else:
                flat.append(m)
        msgs = flat
    return msgs, skipped


def find(node, key):
    """First value of `key` in a tshark JSON tree, depth first."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for val in node.values():
            r = find(val, key)
            if r is not None:
                return r
    elif isinstance(node, list):
        for val in node:
            r = find(val, key)
            if r is not None:
                return r
    return None


def read_multi(path, frames):
    """Frames with several SIP messages, read as JSON: one object per message, in order."""
    out = {}
    for i in range(0, len(frames), 200):  # keep the filter short
        chunk = frames[i:i + 200]
        flt = "frame.number in {%s}" % " ".join(str(f) for f in chunk)
        text = run_tshark(path, ["-Y", flt, "-T", "json", "--no-duplicate-keys", "-J", "frame sip sdp"])
        for pkt in json.loads(text or "[]"):
            layers = pkt["_source"]["layers"]
            frame = int(find(layers["frame"], "frame.number"))
            ts = epoch_us(find(layers["frame"], "frame.time_epoch"))
            sips = layers.get("sip", [])
            if isinstance(sips, dict):
                sips = [sips]
            got = []
            for s in sips:
                got.append(msg(frame, ts, find(s, "sip.Call-ID"), find(s, "sip.Method"),
                               find(s, "sip.Status-Code"), find(s, "sip.CSeq.method"),
                               find(s, "sip.CSeq.seq"), find(s, "sip.from.user"), find(s, "sip.to.user"),
                               find(s, "sip.r-uri.user"), find(s, "sip.from.tag"), find(s, "sip.to.tag"),
                               find(s, "sdp.version")))
            out[frame] = got
    return out


# ---------------------------------------------------------------- HEP


def _ip_checksum(h):
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(src, dst, sport, dport, payload):
    """Ethernet + IPv4/IPv6 + UDP around payload (UDP checksum 0: tshark does not check it)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if ":" in src or ":" in dst:
        ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64)
        ip6 += socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        return b"\0" * 12 + b"\x86\xdd" + ip6 + udp
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                                socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into("!H", hdr, 10, _ip_checksum(bytes(hdr)))
    return b"\0" * 12 + b"\x08\x00" + bytes(hdr) + udp


def hep_sip(path):
    """[(original frame number, ts_us, src, dst, sport, dport, payload)] of every HEPv3 packet
    that carries SIP (protocol type 1), in capture order."""
    out = []
    for n, (pcap_ts, link, data) in enumerate(hep_dump.frames(path), start=1):
        u = hep_dump.udp_payload(link, data)
        if not u:
            continue
        c = hep_dump.hep3(u[2])
        if not c or c.get(0x0B, b"\0")[:1] != b"\x01":
            continue
        payload = hep_dump.sip_payload(c)
        if not payload:
            continue

        def u16(t):
            return struct.unpack("!H", c[t])[0] if len(c.get(t, b"")) == 2 else 0

        def u32(t):
            return struct.unpack("!I", c[t])[0] if len(c.get(t, b"")) == 4 else None

        sec, usec = u32(0x09), u32(0x0A)
        ts = sec * 1000000 + (usec or 0) if sec is not None else pcap_ts
        src, dst = hep_dump.addr(c, 3, 5), hep_dump.addr(c, 4, 6)
        if "?" in (src, dst):
            src, dst = "0.0.0.0", "0.0.0.0"
        out.append((n, ts, src, dst, u16(7), u16(8), payload))
    return out


def read_hep(path):
    """The SIP inside HEPv3, through tshark via a temporary pcap; None if there is none."""
    hep = hep_sip(path)
    if not hep:
        return None
    with tempfile.TemporaryDirectory(prefix="cw-hepref.") as d:
        tmp = os.path.join(d, "hep-inner.pcap")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            for _, ts, src, dst, sp, dp, payload in hep:
                fr = udp_frame(src, dst, sp, dp, payload)
                f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(fr), len(fr)))
                f.write(fr)
        msgs, skipped = read_sip(tmp)
    orig = [h[0] for h in hep]
    for m in msgs:
        m["frame"] = orig[m["frame"] - 1]
    return msgs, [orig[f - 1] for f in skipped]


# ---------------------------------------------------------------- the reducer


def reduce_calls(msgs, cycle_ms=5000):
    """Per-call figures from SIP messages in capture order. The rules:

    * A call is the (Call-ID, From tag) of an initial INVITE: an INVITE request without a
      To tag. Call-IDs with no such INVITE (REGISTER, OPTIONS, ...) are not calls.
    * A message belongs to a call when its Call-ID matches and its From tag or its To tag
      is the call's From tag (requests from the callee carry the caller's tag in To).
    * The first occurrence wins everywhere: a retransmission, or the same message seen on
      the second hop of a proxy (same Call-ID, tags and CSeq), changes nothing.
    * The call's INVITE attempts are the CSeq numbers of its initial INVITEs (a new attempt
      after a 401/407 challenge has a higher CSeq). invite_at, from_user, to_user and
      ruri_user come from the first initial INVITE.
    * ringing_at: the first 180, or the first 183 that carries SDP, answering an attempt.
    * answered_at: the first 2xx answering an attempt; answered = it exists.
    * final_status: the code of that 2xx if answered; otherwise of the first 3xx-6xx
      answering the last attempt; null if there is none.
    * ending and ended_at: answered -> the first BYE ("bye"), or "none" without one;
      not answered -> the first CANCEL ("cancel"), else that 3xx-6xx ("status"), else "none".
    * ring_ms: from ringing_at to answered_at, or to ended_at for a call that ended without
      an answer; 0 when there was no ringing phase; null when it cannot be known (it rang
      and the capture stops). rings = floor(ring_ms / cycle_ms) + 1 after a ringing phase,
      0 without one, null when ring_ms is.
    * talk_ms: from answered_at to the BYE; 0 when not answered; null when answered and no
      BYE is seen. Durations are whole milliseconds, truncated.
    """
    calls, order = {}, []
    for m in msgs:
        if m["method"] == "INVITE" and not m["to_tag"] and m["call_id"]:
            key = (m["call_id"], m["from_tag"])
            if key not in calls:
                calls[key] = {"first": m, "attempts": [], "msgs": []}
                order.append(key)
    by_cid = {}
    for key in order:
        by_cid.setdefault(key[0], []).append(key)
    for m in msgs:
        for key in by_cid.get(m["call_id"], []):
            if m["from_tag"] == key[1] or (m["to_tag"] is not None and m["to_tag"] == key[1]):
                calls[key]["msgs"].append(m)
                break
    non_call = len({m["call_id"] for m in msgs if m["call_id"]} - set(by_cid))

    out = []
    for key in order:
        c = calls[key]
        attempts = []
        for m in c["msgs"]:
            if m["method"] == "INVITE" and not m["to_tag"] and m["cseq_seq"] not in attempts:
                attempts.append(m["cseq_seq"])
        last_attempt = max((a for a in attempts if a is not None), default=None)

        def answers(m):
            return m["status"] is not None and m["cseq_method"] == "INVITE" and m["cseq_seq"] in attempts

        ringing = next((m for m in c["msgs"] if answers(m) and (m["status"] == 180 or (m["status"] == 183 and m["sdp"]))), None)
        answer = next((m for m in c["msgs"] if answers(m) and 200 <= m["status"] < 300), None)
        reject = next((m for m in c["msgs"] if answers(m) and m["status"] >= 300 and m["cseq_seq"] == last_attempt), None)
        if answer:
            end = next((m for m in c["msgs"] if m["method"] == "BYE"), None)
            ending = "bye" if end else "none"
            final = answer["status"]
        else:
            cancel = next((m for m in c["msgs"] if m["method"] == "CANCEL"), None)
            end = cancel or reject
            ending = "cancel" if cancel else ("status" if reject else "none")
            final = reject["status"] if reject else None
        if ringing:
            stop = answer or (end if ending in ("cancel", "status") else None)
            ring_ms = (stop["ts"] - ringing["ts"]) // 1000 if stop else None
        else:
            ring_ms = 0
        rings = None if ring_ms is None else (ring_ms // cycle_ms + 1 if ringing else 0)
        if answer:
            talk_ms = (end["ts"] - answer["ts"]) // 1000 if end else None
        else:
            talk_ms = 0
        f = c["first"]
        out.append({
            "call_id": key[0], "from_tag": key[1], "from_user": f["from_user"], "to_user": f["to_user"],
            "ruri_user": f["ruri_user"], "invite_at": secs(f["ts"]), "ringing_at": secs(ringing and ringing["ts"]),
            "answered_at": secs(answer and answer["ts"]), "ended_at": secs(end and end["ts"]),
            "final_status": final, "answered": answer is not None, "ring_ms": ring_ms, "rings": rings,
            "talk_ms": talk_ms, "ending": ending,
            "frames": {"invite": f["frame"], "ringing": ringing and ringing["frame"],
                       "answered": answer and answer["frame"], "ended": end and end["frame"]},
        })
    out.sort(key=lambda c: (c["invite_at"], c["call_id"], c["from_tag"] or ""))
    return out, non_call


def secs(us):
    """µs since the epoch -> seconds with 6 decimals (a float that round-trips exactly)."""
    return None if us is None else round(us / 1e6, 6)


# ---------------------------------------------------------------- driver


def reference(path, cycle_ms, version):
    msgs, skipped = read_sip(path)
    reader = "tshark %s (-T fields; -T json for frames holding several SIP messages)" % version
    if not msgs:
        hep = read_hep(path)
        if hep and hep[0]:
            msgs, skipped = hep
            reader = ("hep_dump.py HEPv3 decoding (HEP timestamps and addresses) -> "
                      "tshark %s SIP dissector" % version)
    calls, non_call = reduce_calls(msgs, cycle_ms)
    return {
        "file": os.path.basename(path), "reader": reader, "tshark_version": version,
        "tshark_args": TSHARK_OPTS + ["-Y", DISPLAY_FILTER], "fields": FIELDS,
        "reducer": "scripts/tshark-reference.py reduce_calls", "ring_cycle_ms": cycle_ms,
        "sip_messages": len(msgs), "skipped_frames": skipped, "non_call_dialogs": non_call, "calls": calls,
    }


def dumps(v, ind=""):
    """JSON with one key per line, but lists of scalars and flat objects on one line, so
    that a changed figure shows as a one-line diff."""
    flat = (str, int, float, bool, type(None))
    if isinstance(v, dict) and v and not all(isinstance(x, flat) for x in v.values()):
        inner = ind + " "
        return "{\n" + ",\n".join(inner + json.dumps(k) + ": " + dumps(x, inner) for k, x in v.items()) + "\n" + ind + "}"
    if isinstance(v, list) and v and not all(isinstance(x, flat) for x in v):
        inner = ind + " "
        return "[\n" + ",\n".join(inner + dumps(x, inner) for x in v) + "\n" + ind + "]"
    return json.dumps(v, ensure_ascii=False)


def text_line(c):
    def t(x):
        return "-" if x is None else "%.6f" % x
    return ("%s  %s -> %s  invite %s ring %s answer %s end %s  ring_ms %s rings %s talk_ms %s  %s %s" % (
        c["call_id"], c["from_user"], c["to_user"], t(c["invite_at"]), t(c["ringing_at"]),
        t(c["answered_at"]), t(c["ended_at"]), c["ring_ms"], c["rings"], c["talk_ms"], c["ending"],
        c["final_status"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcaps", nargs="*")
    ap.add_argument("--out-dir")
    ap.add_argument("--cycle-ms", type=int, default=5000)
    ap.add_argument("--text", action="store_true", help="also print one line per call")
    a = ap.parse_args()
    if not a.pcaps or not a.out_dir:
        ap.error("PCAP... and --out-dir are needed")
    os.makedirs(a.out_dir, exist_ok=True)
    version = tshark_version()
    for p in a.pcaps:
        ref = reference(p, a.cycle_ms, version)
        dst = os.path.join(a.out_dir, os.path.basename(p) + ".json")
        with open(dst, "w") as f:
            f.write(dumps(ref) + "\n")
        print("%s: %d SIP messages, %d calls (%s)" % (dst, ref["sip_messages"], len(ref["calls"]),
                                                      ref["reader"].split(" ")[0]))
        if a.text:
            for c in ref["calls"]:
                print("  " + text_line(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
