#!/usr/bin/env python3
"""A small SMTP server for tests (aiosmtpd): stores what it receives, can refuse on purpose.

    smtp_sink.py --dir D [--port 0] [--host 127.0.0.1]
                 [--starttls CERT KEY | --tls CERT KEY] [--auth USER:PASS]
                 [--fail-first N [--fail-code 451]]

The first line on stdout is the port it listens on (useful with --port 0, the default);
logs go to stderr. Each accepted message n (1, 2, ...) is written as D/<n>.eml (the data as
received) and then D/<n>.json ({"mail_from": ..., "rcpt_tos": [...], "auth": user or null});
a reader waits for the .json. --starttls offers and requires STARTTLS; --tls speaks TLS from
the first byte; --auth requires AUTH PLAIN/LOGIN with these credentials (over TLS);
--fail-first N answers the first N messages' DATA with --fail-code (451 by default, 550 for
a permanent refusal) and stores nothing for them. Stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, fail_first, fail_code):
        self.directory = directory
        self.fail_left = fail_first
        self.fail_code = fail_code
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            print(f"refusing a message with {self.fail_code}", file=sys.stderr)
            if self.fail_code >= 500:
                return f"{self.fail_code} 5.7.1 refused by the test sink"
            return f"{self.fail_code} 4.3.0 try again later (test sink)"
        self.count += 1
        n = self.count
        base = os.path.join(self.directory, str(n))
        write_atomic(base + ".eml", envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None,
        }
        write_atomic(base + ".json", json.dumps(meta).encode())
        print(f"stored message {n}", file=sys.stderr)
        return "250 2.0.0 OK stored"


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def server_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def main():
    p = argparse.ArgumentParser(description="SMTP sink for tests")
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", metavar="USER:PASS")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-code", type=int, default=451)
    a = p.parse_args()
    if a.starttls and a.tls:
        p.error("--starttls and --tls exclude each other")
    os.makedirs(a.dir, exist_ok=True)
    handler = Sink(a.dir, a.fail_first, a.fail_code)

    kwargs = {}
    if a.starttls:
        kwargs.update(tls_context=server_context(*a.starttls), require_starttls=True)
    if a.auth:
        user, _, password = a.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            if ok:
                return AuthResult(success=True, auth_data=auth_data)
            # handled=False makes aiosmtpd answer 535 (handled=True would leave the client
            # waiting for an answer).
            return AuthResult(success=False, handled=False)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # With --tls the whole connection is encrypted, which aiosmtpd does not see.
            auth_require_tls=not a.tls,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", **kwargs),
        host=a.host,
        port=a.port,
        ssl=server_context(*a.tls) if a.tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
