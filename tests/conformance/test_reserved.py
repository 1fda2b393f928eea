#!/usr/bin/env python3
"""Reserved bits and opcodes (Autobahn groups 3 and 4) and masking: with no extension
negotiated any RSV bit -> 1002; reserved opcodes 3-7 and 0xB-0xF -> 1002; an unmasked client
frame -> 1002."""

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RSV1, RSV2,
                      RSV3, Tests, build_frame, run)

T = Tests("reserved")


def make_error_case(wire_fn, echoes=(), code=1002, chunk=None):
    def fn(ctx):
        c = ctx.ws()
        c.send(wire_fn(), chunk=chunk)
        for op, d in echoes:
            c.expect_echo(op, d)
        c.expect_close(code)
    return fn


for _rsv, _name in ((RSV1, "rsv1"), (RSV2, "rsv2"), (RSV3, "rsv3"), (RSV1 | RSV3, "rsv1_rsv3"),
                    (7, "rsv_all")):
    T.add(f"{_name}_text_1002", make_error_case(
        lambda r=_rsv: build_frame(OP_TEXT, b"Hello", rsv=r)))
T.add("rsv2_binary_1002", make_error_case(lambda: build_frame(OP_BINARY, b"\x00\x01", rsv=RSV2)))
T.add("rsv3_ping_1002", make_error_case(lambda: build_frame(OP_PING, b"p", rsv=RSV3)))
T.add("rsv1_close_1002", make_error_case(lambda: build_frame(OP_CLOSE, b"\x03\xe8", rsv=RSV1)))
T.add("rsv1_empty_text_1002", make_error_case(lambda: build_frame(OP_TEXT, b"", rsv=RSV1)))
T.add("rsv2_on_continuation_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"frag", fin=False) + build_frame(OP_CONT, b"ment", rsv=RSV2)))
# Autobahn 3.2: a valid message before the bad frame is echoed, a ping after it is not answered
T.add("echo_then_rsv2_then_ping_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"Hello, world!") + build_frame(OP_TEXT, b"Hello", rsv=RSV2)
    + build_frame(OP_PING, b""), echoes=[(OP_TEXT, b"Hello, world!")]))
T.add("rsv3_chopped_bytewise_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"Hello, world!") + build_frame(OP_TEXT, b"Hello", rsv=RSV3),
    echoes=[(OP_TEXT, b"Hello, world!")], chunk=1))

for _op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    T.add(f"reserved_opcode_{_op:#x}_1002", make_error_case(
        lambda o=_op: build_frame(o, b"")))
T.add("reserved_opcode_3_with_payload_1002", make_error_case(
    lambda: build_frame(3, b"reserved payload")))
T.add("reserved_opcode_0xb_with_payload_1002", make_error_case(
    lambda: build_frame(0xB, b"reserved control payload")))
T.add("echo_then_reserved_opcode_then_ping_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"Hello") + build_frame(5, b"") + build_frame(OP_PING, b""),
    echoes=[(OP_TEXT, b"Hello")]))
T.add("reserved_opcode_0xf_fin0_1002", make_error_case(
    lambda: build_frame(0xF, b"x", fin=False)))

T.add("unmasked_text_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"Hello", mask=False)))
T.add("unmasked_empty_binary_1002", make_error_case(
    lambda: build_frame(OP_BINARY, b"", mask=False)))
T.add("unmasked_ping_1002", make_error_case(
    lambda: build_frame(OP_PING, b"ping", mask=False)))
T.add("unmasked_pong_1002", make_error_case(
    lambda: build_frame(OP_PONG, b"pong", mask=False)))
T.add("unmasked_close_1002", make_error_case(
    lambda: build_frame(OP_CLOSE, b"\x03\xe8", mask=False)))
T.add("unmasked_continuation_1002", make_error_case(
    lambda: build_frame(OP_TEXT, b"ab", fin=False) + build_frame(OP_CONT, b"cd", mask=False)))
T.add("echo_then_unmasked_1002", make_error_case(
    lambda: build_frame(OP_BINARY, b"\x01") + build_frame(OP_BINARY, b"\x02", mask=False),
    echoes=[(OP_BINARY, b"\x01")]))


if __name__ == "__main__":
    run(T)
