#!/usr/bin/env python3
"""UTF-8 handling (Autobahn group 6): valid texts echoed however they are split; invalid texts
(and close reasons) -> 1007, detected fail-fast (without waiting for FIN or more bytes)."""

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Tests,
                      build_frame, check, fragment_frames, run)

T = Tests("utf8")

VALID = {
    "latin_mix": "Hello-µ@ßöäüàá-UTF-8!!",
    "greek_kosme": "κόσμε",
    "cjk": "日本語のテキスト, 中文, 한국어",
    "emoji_4byte": "emoji 😀🎉👍🏽 end",
    "max_code_point": "\U0010ffff",
    "boundaries": "\x00\x7f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\ufeff\uffff\U00010000",
    "all_widths": "a\u00e9\u20ac\U00010348\U0010ffffz",
    "long_multibyte": "€😀ж" * 5000,
}


def make_valid_case(text):
    def fn(ctx):
        c = ctx.ws()
        data = text.encode("utf-8")
        c.send_frame(OP_TEXT, data)
        c.expect_echo(OP_TEXT, data)
    return fn


for _name, _text in VALID.items():
    T.add(f"valid_{_name}", make_valid_case(_text))


@T.case
def test_valid_split_in_two_fragments_at_every_byte(ctx):
    c = ctx.ws()
    data = VALID["all_widths"].encode("utf-8")  # 1+2+3+4+4+1 = 15 bytes
    wire = b"".join(fragment_frames(OP_TEXT, [data[:i], data[i:]]) for i in range(len(data) + 1))
    c.send(wire)
    for i in range(len(data) + 1):
        c.expect_echo(OP_TEXT, data, what=f"split at byte {i}")


@T.case
def test_valid_split_in_three_fragments_inside_4byte_char(ctx):
    c = ctx.ws()
    ch = "\U0010ffff".encode("utf-8")  # f4 8f bf bf
    cases = []
    for i in range(1, 4):
        for j in range(i + 1, 4):
            cases.append([b"x" + ch[:i], ch[i:j], ch[j:] + b"y"])
    c.send(b"".join(fragment_frames(OP_TEXT, p) for p in cases))
    for p in cases:
        c.expect_echo(OP_TEXT, b"".join(p), what=f"fragments {[x.hex() for x in p]}")


@T.case
def test_valid_one_byte_per_fragment(ctx):
    c = ctx.ws()
    data = "κόσμε€😀\U0010ffff".encode("utf-8")
    c.send(fragment_frames(OP_TEXT, [data[i:i + 1] for i in range(len(data))]))
    c.expect_echo(OP_TEXT, data)


@T.case
def test_valid_frame_chopped_bytewise(ctx):
    c = ctx.ws()
    data = VALID["emoji_4byte"].encode("utf-8")
    c.send_frame(OP_TEXT, data, chunk=1, delay=0.0005)
    c.expect_echo(OP_TEXT, data)


@T.case
def test_binary_with_invalid_utf8_is_fine(ctx):
    c = ctx.ws()
    data = b"\xc0\xaf\xed\xa0\x80\xff\xfe\xf4\x90\x80\x80"
    c.echo_roundtrip(OP_BINARY, data)
    c.send_frame(OP_PING, data)
    c.expect_frame(OP_PONG, data)


INVALID = {
    "overlong_2byte_slash": b"\xc0\xaf",
    "overlong_c1": b"\xc1\xbf",
    "overlong_3byte": b"\xe0\x80\xaf",
    "overlong_4byte": b"\xf0\x80\x80\xaf",
    "overlong_max_3byte_as_4": b"\xf0\x8f\xbf\xbf",
    "surrogate_d800": b"\xed\xa0\x80",
    "surrogate_dfff": b"\xed\xbf\xbf",
    "surrogate_pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above_10ffff_f4_90": b"\xf4\x90\x80\x80",
    "above_10ffff_f5": b"\xf5\x80\x80\x80",
    "above_10ffff_f7": b"\xf7\xbf\xbf\xbf",
    "five_byte_form": b"\xf8\x88\x80\x80\x80",
    "six_byte_form": b"\xfc\x84\x80\x80\x80\x80",
    "byte_fe": b"\xfe",
    "byte_ff": b"\xff",
    "lone_continuation": b"\x80",
    "lone_continuation_bf": b"\xbf",
    "bad_continuation_2byte": b"\xc3\x28",
    "bad_continuation_3byte_second": b"\xe2\x28\xa1",
    "bad_continuation_3byte_third": b"\xe2\x82\x28",
    "bad_continuation_4byte": b"\xf0\x90\x28\xbc",
    "start_byte_after_start_byte": b"\xe2\xe2\x82\xac",
    "truncated_2byte_at_end": b"\xc3",
    "truncated_3byte_at_end": b"\xe2\x82",
    "truncated_4byte_at_end": b"\xf0\x9f\x98",
}


def make_invalid_case(bad, prefix=b"valid prefix \xce\xba ", suffix=b""):
    def fn(ctx):
        c = ctx.ws()
        c.send_frame(OP_TEXT, prefix + bad + suffix)
        c.expect_close(1007)
    return fn


for _name, _bad in INVALID.items():
    T.add(f"invalid_{_name}_1007", make_invalid_case(_bad))
T.add("invalid_at_start_1007", make_invalid_case(b"\xff", prefix=b"", suffix=b"rest"))
T.add("invalid_in_middle_1007", make_invalid_case(b"\xed\xa0\x80", suffix=b" and more text"))


@T.case
def test_truncated_at_end_of_fragmented_message_1007(ctx):
    c = ctx.ws()
    c.send(fragment_frames(OP_TEXT, [b"ok \xe2\x82\xac ", b"then \xe2", b"\x82"]))
    c.expect_close(1007)


@T.case
def test_truncated_then_empty_final_fragment_1007(ctx):
    c = ctx.ws()
    c.send(fragment_frames(OP_TEXT, [b"abc\xf0\x9f", b""]))
    c.expect_close(1007)


@T.case
def test_invalid_split_across_fragments_1007(ctx):
    c = ctx.ws()
    c.send(fragment_frames(OP_TEXT, [b"abc\xf4", b"\x90\x80\x80", b"def"]))
    c.expect_close(1007)


# ---- fail-fast: the 1007 must come without FIN, without the rest of the message
@T.case
def test_fail_fast_first_fragment_fin0(ctx):
    c = ctx.ws()
    c.send_frame(OP_TEXT, b"hello \xc0\xaf world", fin=False)
    c.expect_close(1007, timeout=2)


@T.case
def test_fail_fast_surrogate_in_first_fragment_fin0(ctx):
    c = ctx.ws()
    c.send_frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
                 fin=False)
    c.expect_close(1007, timeout=2)


@T.case
def test_fail_fast_in_continuation_fin0(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"good start ", fin=False)
           + build_frame(OP_CONT, b"then \xff bad", fin=False))
    c.expect_close(1007, timeout=2)


@T.case
def test_fail_fast_split_char_across_fragments_fin0(ctx):
    c = ctx.ws()
    c.send(build_frame(OP_TEXT, b"abc\xf4", fin=False)
           + build_frame(OP_CONT, b"\x90", fin=False))
    c.expect_close(1007, timeout=2)


@T.case
def test_fail_fast_mid_frame(ctx):
    # a text frame announcing 200 bytes, of which only the first 12 are sent, with an invalid
    # byte at offset 5: the close must arrive before the rest of the frame
    c = ctx.ws()
    payload = b"abcde\xc0\xafxyzzy" + b"z" * 188
    check(len(payload) == 200, "test bug")
    wire = build_frame(OP_TEXT, payload)
    hdr_len = 2 + 2 + 4
    c.send(wire[:hdr_len + 12])
    c.expect_close(1007, timeout=2)


@T.case
def test_fail_fast_bytewise(ctx):
    # chopped byte by byte; stop right after the invalid byte
    c = ctx.ws()
    payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74"
    wire = build_frame(OP_TEXT, payload)
    stop = 6 + 13  # header(2)+mask(4) + 13 payload bytes, through the 0x90 byte
    c.send(wire[:stop], chunk=1, delay=0.001)
    c.expect_close(1007, timeout=2)


# ---- close reasons
def make_close_reason_case(reason, expect):
    def fn(ctx):
        c = ctx.ws()
        c.send_frame(OP_CLOSE, b"\x03\xe8" + reason)
        if expect == 1000:
            c.expect_close(1000, reply=False)
        else:
            c.expect_close(expect)
    return fn


T.add("close_reason_invalid_ff_1007", make_close_reason_case(b"\xff", 1007))
T.add("close_reason_invalid_surrogate_1007", make_close_reason_case(b"abc\xed\xa0\x80", 1007))
T.add("close_reason_invalid_overlong_1007", make_close_reason_case(b"\xc0\x80", 1007))
T.add("close_reason_truncated_1007", make_close_reason_case(b"bye \xe2\x82", 1007))
T.add("close_reason_valid_multibyte_1000",
      make_close_reason_case("bye κόσμε 😀 \U0010ffff".encode("utf-8"), 1000))


if __name__ == "__main__":
    run(T)
