"""Prints N distinct free TCP ports on 127.0.0.1, drawn from 20000-44999 so that
servers deriving a gRPC port as port + 10000 stay in range. Each port is checked
by binding it (and its +10000 partner) and released; the caller starts its server
right away."""
import random
import socket
import sys


def free(port):
    for p in (port, port + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True


ports = []
while len(ports) < int(sys.argv[1]):
    p = random.randrange(20000, 45000)
    if p not in ports and free(p):
        ports.append(p)
print(" ".join(map(str, ports)))
