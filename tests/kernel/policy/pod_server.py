"""Tiny server run inside a test pod's netns: TCP accept (send "ok", close) and UDP echo on
the given ports, IPv4 and IPv6. Stands in for the lab's `podnet serve`. With
`--report-peers` first, it prints `from <source address>` for each client (for a reader
that drains its stdout)."""
import selectors
import socket
import sys

args = sys.argv[1:]
report = args[:1] == ["--report-peers"]
sel = selectors.DefaultSelector()
for port in (int(p) for p in args[report:]):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(fam, typ)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            if typ == socket.SOCK_STREAM:
                s.listen(128)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, typ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data == socket.SOCK_STREAM:
                c, peer = s.accept()
                c.sendall(b"ok\n")
                c.close()
            else:
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)
            if report:
                print("from", peer[0], flush=True)
        except OSError:
            pass
