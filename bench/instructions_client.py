"""A client for bench/instructions.sh: CREATE, 100 PUTs, then REQUESTS requests of a 90% GET / 10% PUT
mix over those keys, IN_FLIGHT at a time on one connection.

  python3 instructions_client.py PORT REQUESTS IN_FLIGHT
"""
import socket, sys
port, n, depth = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def ask(lines, expect_lines):
    s.sendall(b"".join(lines))
    for _ in range(expect_lines):
        f.readline()
ask([b"CREATE b\r\n"], 1)
ask([b"PUT b k%d 0123456789abcdef\r\n" % i for i in range(100)], 100)
done = 0
i = 0
while done < n:
    batch = []
    expect = 0
    for _ in range(depth):
        i += 1
        if i % 10 == 0:
            batch.append(b"PUT b k%d 0123456789abcdef\r\n" % (i % 100)); expect += 1
        else:
            batch.append(b"GET b k%d\r\n" % (i % 100)); expect += 2
    ask(batch, expect)
    done += depth
s.close()
