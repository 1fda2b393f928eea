#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/ (corpus/<target>/<name>): real client frames and
request heads, in each harness's input layout. Deterministic (fixed masks), so re-running it
rewrites the same bytes. Regression inputs found by fuzzing are kept beside the seeds under
names starting with "regress-" and are not touched here.
Usage: tests/fuzz/make_corpus.py"""

import os
import struct
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SEED = b"\x2a\x00\x00\x00"  # split seed of the harnesses that take one

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, mask=b"\x37\xfa\x21\x3d", rsv=0, length_bits=None):
    """A client frame as a browser sends it (masked), or unmasked with mask=None."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bits = length_bits or (7 if n <= 125 else 16 if n <= 0xFFFF else 64)
    m = 0x80 if mask else 0
    if bits == 7:
        head += bytes([m | n])
    elif bits == 16:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_config(max_size=0x80, max_frames=0, close_after=0xFF, switch_at=0xFF, seed=SEED):
    return bytes([max_size, max_frames, close_after, switch_at]) + seed


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key


def upgrade(path=b"/chat", extra=b"", version=b"13", key=KEY, http=b"1.1", method=b"GET"):
    return (method + b" " + path + b" HTTP/" + http + b"\r\nHost: server.example.com\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
            b"\r\nSec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")


VALID_UTF8 = "κόσμε Hello-µ@ßöäüàá-UTF-8!! \U0001F600 \U0010FFFF".encode()

CORPORA = {
    "fuzz_utf8": {
        "ascii": SEED + b"Hello, world! " * 4,
        "mixed": SEED + VALID_UTF8,
        "long_ascii_then_multibyte": b"\x05\x00\x00\x00" + b"a" * 37 + "€ü𝄞".encode() + b"z" * 9,
        "overlong_slash": SEED + b"\xc0\xaf",
        "overlong_3byte": SEED + b"\xe0\x80\xaf",
        "surrogate": SEED + b"ab\xed\xa0\x80cd",
        "beyond_10ffff": SEED + b"\xf4\x90\x80\x80",
        "truncated": SEED + b"\xe2\x82",
        "autobahn_6_4_1": SEED + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
                                 b"\x65\x64\x69\x74\x65\x64",
    },
    "fuzz_close": {
        "empty": b"",
        "one_byte": b"\x03",
        "normal": close_payload(1000),
        "going_away_reason": close_payload(1001, b"server shutting down"),
        "reserved_1004": close_payload(1004),
        "no_status_1005": close_payload(1005),
        "app_4000_utf8": close_payload(4000, "κόσμε".encode()),
        "invalid_reason": close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"),
        "long_reason": close_payload(3000, ("é" * 70).encode()),
    },
    "fuzz_ws_stream": {
        "text_hello": ws_config() + frame(TEXT, b"Hello"),
        "binary_16bit_length": ws_config() + frame(BINARY, bytes(range(200))),
        "nonminimal_64bit_length": ws_config() + frame(BINARY, b"\x00\x01\x02\x03\x04",
                                                       length_bits=64),
        "fragments_ping_between": ws_config() + frame(TEXT, b"frag1-", fin=False)
        + frame(PING, b"ping") + frame(CONT, b"frag2", fin=False) + frame(PONG, b"")
        + frame(CONT, b"-end") + frame(CLOSE, close_payload(1000, b"bye")),
        "utf8_split_across_fragments": ws_config() + frame(TEXT, VALID_UTF8[:7], fin=False)
        + frame(CONT, VALID_UTF8[7:20], fin=False) + frame(CONT, VALID_UTF8[20:]),
        "invalid_utf8_second_fragment": ws_config() + frame(TEXT, b"ok ", fin=False)
        + frame(CONT, b"\xed\xa0\x80 surrogate"),
        "many_fragments_limit_3": ws_config(max_frames=3) + frame(BINARY, b"a", fin=False)
        + frame(CONT, b"b", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b"d"),
        "three_fragments_limit_3": ws_config(max_frames=3) + frame(TEXT, b"a", fin=False)
        + frame(CONT, b"b", fin=False) + frame(CONT, b"c") + frame(TEXT, b"next"),
        "too_big_fragmented": ws_config(max_size=16) + frame(TEXT, b"0123456789", fin=False)
        + frame(CONT, b"0123456789"),
        "owner_closes_mid_message": ws_config(switch_at=40) + frame(TEXT, b"first")
        + frame(BINARY, b"x" * 30, fin=False) + frame(CONT, b"y" * 30) + frame(PING, b"p")
        + frame(CLOSE, close_payload(1000)),
        "owner_closes_after_message": ws_config(close_after=1) + frame(TEXT, b"one")
        + frame(TEXT, b"two") + frame(PING, b"still answered") + frame(CLOSE, b""),
        "close_invalid_code": ws_config() + frame(CLOSE, close_payload(1005)),
        "close_split_control": ws_config(seed=b"\x01\x00\x00\xe0") + frame(BINARY, b"z" * 10)
        + frame(CLOSE, close_payload(1000, b"a reason long enough to be split")),
        "unmasked": ws_config() + frame(TEXT, b"Hello", mask=None),
        "rsv1": ws_config() + frame(TEXT, b"Hello", rsv=4),
        "reserved_opcode": ws_config() + frame(0x3, b""),
        "continuation_without_start": ws_config() + frame(CONT, b"orphan"),
        "fragmented_ping": ws_config() + frame(PING, b"x", fin=False),
        "ping_too_long": ws_config() + frame(PING, b"p" * 126),
        "length_msb_set": ws_config() + b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01" + b"\0" * 5,
    },
    "fuzz_http_head": {
        "upgrade": SEED + upgrade(extra=b"Origin: http://example.com\r\n"
                                  b"Sec-WebSocket-Protocol: chat, superchat\r\n"),
        "upgrade_then_frame": SEED + upgrade() + frame(TEXT, b"Hello"),
        "upgrade_version_8": SEED + upgrade(version=b"8"),
        "upgrade_http10": SEED + upgrade(http=b"1.0"),
        "upgrade_post": SEED + upgrade(method=b"POST"),
        "upgrade_bad_key": SEED + upgrade(key=b"dGhlIHNhbXBsZSBub25jZR=="),
        "keep_alive_two_gets": SEED + b"GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "post_with_body": SEED + b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
        b"Content-Type: text/plain\r\n\r\nhello world",
        "chunked": SEED + b"POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        "folded_and_blank_values": SEED + b"GET / HTTP/1.1\r\nHost:  a  \r\nX-Empty:\r\n"
        b"Upgrade: h2c, websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
        "http09_garbage": SEED + b"GARBAGE\r\n\r\n",
        # Refused at once or by the Host/key/version rules (conformance.handshake has the
        # same cases against the server).
        "upgrade_no_host": SEED + upgrade().replace(b"Host: server.example.com\r\n", b""),
        "upgrade_two_hosts": SEED + upgrade(extra=b"Host: other.example.com\r\n"),
        "upgrade_two_keys": SEED + upgrade(extra=b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
        "upgrade_two_versions": SEED + upgrade(extra=b"Sec-WebSocket-Version: 13\r\n"),
        "get_http11_no_host": SEED + b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        "get_http10_no_host": SEED + b"GET / HTTP/1.0\r\n\r\n",
        "tls_client_hello": SEED + bytes.fromhex("16030100c4010000c00303") + bytes(range(32))
        + b"\x00\x02\x13\x01\x01\x00\x00\x95\x00\x00\x00\x0e\x00\x0c\x00\x00\x09localhost",
        "binary_garbage_no_end": SEED + b"\x00\x01\x02\xff\xfe garbage without any line end",
        "bare_lf_head": SEED + b"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\n\n",
        "bare_cr_head": SEED + b"GET / HTTP/1.1\rHost: x\r\n\r\n",
        "empty_line_then_get": SEED + b"\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "control_char_in_value": SEED + b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n",
    },
}


def main():
    for target, seeds in CORPORA.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
