"""The binaries' wire format to the node daemon."""
from podnet.cni.client import decode_request, encode_reply, encode_request


def test_request_roundtrip_keeps_the_whole_environment():
    """A delegated IPAM plugin gets the same environment as the plugin (SPEC.md §4)."""
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=b;C=d", "PODNET_DATASTORE": "sqlite:///x",
           "HOME": "/root", "PATH": "/bin", "CNI_IFNAME": "eth0", "EMPTY": "", "EQ": "a=b"}
    raw = {k.encode(): v.encode() for k, v in env.items()}  # as posix.environ holds it
    binary, got, stdin = decode_request(encode_request("cni", raw, b'{"a": "\\u0000"}\0x'))
    assert binary == "cni" and stdin == b'{"a": "\\u0000"}\0x'
    assert got == env


def test_reply_layout():
    r = encode_reply(1, b'{"code": 7}', b"trace")
    assert r[0] == 1 and int.from_bytes(r[1:5], "big") == 11 and r[5:16] == b'{"code": 7}' and r[16:] == b"trace"


def _exe(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_thin_launcher_finds_the_full_plugin_after_itself(tmp_path):
    """The launcher execs the next plugin of its name on CNI_PATH: never itself (also not
    through a symlink), never one before it, and copies of it further on cannot loop."""
    from podnet.cni.client import find_full
    thin, a, b, c = (tmp_path / d for d in ("thin", "a", "b", "c"))
    for d in (thin, a, b, c):
        d.mkdir()
    me = _exe(thin / "podnet-cni")
    before, full = _exe(a / "podnet-cni"), _exe(c / "podnet-cni")
    (b / "podnet-cni").symlink_to(me)  # the launcher again, under another name
    (b / "podnet-ipam").write_text("not executable")
    path = ":".join(map(str, (a, thin, b, c)))
    assert find_full("podnet-cni", me, path) == full
    assert find_full("podnet-cni", str(b / "podnet-cni"), path) == full
    assert find_full("podnet-cni", me, f"{thin}:{b}") is None
    assert find_full("podnet-cni", me, f"{a}:::") == before  # launcher not on CNI_PATH: all dirs
    assert find_full("podnet-ipam", str(b / "podnet-ipam"), path) is None
