"""Jump host specs as ProxyJump and a server's `jump:` write them."""

from __future__ import annotations

import pytest

from fleettop.jumps import JumpHop, format_jump, parse_jump


@pytest.mark.parametrize(
    ("spec", "hops"),
    [
        ("bastion1", (JumpHop("bastion1"),)),
        ("ops@bastion1", (JumpHop("bastion1", username="ops"),)),
        ("ops@bastion1:2222", (JumpHop("bastion1", 2222, "ops"),)),
        ("10.0.0.1:2200", (JumpHop("10.0.0.1", 2200),)),
        ("[::1]:2222", (JumpHop("::1", 2222),)),
        ("fe80::1", (JumpHop("fe80::1"),)),
        ("ssh://ops@gw:22", (JumpHop("gw", 22, "ops"),)),
        ("a@outer:2201, inner", (JumpHop("outer", 2201, "a"), JumpHop("inner"))),
        ("none", ()),
        ("NONE", ()),
    ],
)
def test_a_spec_gives_its_hops_first_reached_first(spec, hops):
    assert parse_jump(spec) == hops


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is empty"),
        ("gw,", "hop 2 is empty"),
        ("gw:0", "hop 1 'gw:0' has port '0'"),
        ("gw:ssh", "must be a number from 1 to 65535"),
        ("@gw", "empty user name"),
        ("[::1", "without a closing ']'"),
        ("[::1]x", "after ']'"),
        ("ops@", "has no host"),
        ("gw x", "has a space"),
    ],
)
def test_a_wrong_spec_is_one_line_naming_the_hop(spec, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        parse_jump(spec)
    assert "\n" not in str(info.value)


def test_a_spec_written_back_reads_the_same():
    for spec in ("ops@bastion1:2222,[::1]:22,inner", "none"):
        assert parse_jump(format_jump(parse_jump(spec))) == parse_jump(spec)
    assert JumpHop("bastion1").bare and not JumpHop("bastion1", 22).bare
