"""The binaries' wire format to the node daemon."""
from podnet.cni.client import decode_request, encode_reply, encode_request


def test_request_roundtrip_keeps_only_cni_env():
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=b;C=d", "PODNET_DATASTORE": "sqlite:///x",
           "HOME": "/root", "PATH": "/bin", "CNI_IFNAME": "eth0"}
    binary, got, stdin = decode_request(encode_request("cni", env, b'{"a": "\\u0000"}\0x'))
    assert binary == "cni" and stdin == b'{"a": "\\u0000"}\0x'
    assert got == {k: v for k, v in env.items() if k != "HOME"}


def test_reply_layout():
    r = encode_reply(1, b'{"code": 7}', b"trace")
    assert r[0] == 1 and int.from_bytes(r[1:5], "big") == 11 and r[5:16] == b'{"code": 7}' and r[16:] == b"trace"
