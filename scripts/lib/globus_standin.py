#!/usr/bin/env python3
"""The token endpoint of the local collection's Globus Auth stand-in.

scripts/collection-server starts this as a daemon beside nginx. It listens
on a Unix socket in the state directory, and nginx passes it the requests
for POST /_auth/v2/oauth2/token. It answers the OAuth2 client-credentials
grant for the clients of the clients file and hands out tokens that nginx
checks by itself with its secure_link module:

    g1.<resource>.<mode>.<expires>.<mac>

resource is "transfer" or a collection id, mode the client's (rw or ro),
expires a Unix time, and mac the MD5 of "<expires> <resource> <mode>
<grant secret>" in base64url without padding.

Each grant is logged (time, client id, scopes asked, outcome) without any
secret or token. Standard library only.

Tests start the collection often, so the caller waits only for the first
part below: read the configuration, listen, fork, write the pid file. The
HTTP machinery is imported after the fork, in the daemon, while the caller
goes on to start nginx; a request that comes meanwhile waits in the
socket's backlog.
"""

import os
import signal
import socket
import sys

USAGE = """usage: globus_standin.py --socket PATH --pid-file PATH --clients FILE
       --grant-secret-file FILE --collection-id ID [--https-off-id ID]
       --log FILE [--foreground]"""
OPTIONS = ("socket", "pid-file", "clients", "grant-secret-file", "collection-id",
           "https-off-id", "log")
REQUIRED = ("socket", "pid-file", "clients", "grant-secret-file", "collection-id", "log")


class Client:
    def __init__(self, client_id, secret, mode, lifetime):
        self.client_id = client_id
        self.secret = secret
        self.mode = mode
        self.lifetime = lifetime


def parse_args(argv):
    """{option: value} and whether --foreground was given; None when bad."""
    opts, foreground, i = {}, False, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--foreground":
            foreground = True
            i += 1
        elif arg.startswith("--") and arg[2:] in OPTIONS and i + 1 < len(argv):
            opts[arg[2:]] = argv[i + 1]
            i += 2
        else:
            return None, False
    if any(name not in opts for name in REQUIRED):
        return None, False
    return opts, foreground


def read_clients(path):
    """Lines "CLIENT_ID SECRET MODE LIFETIME"; collection-server has already
    checked them, so a bad line is only skipped here."""
    clients = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if len(fields) != 4 or fields[2] not in ("rw", "ro"):
                continue
            if not fields[3].isdigit() or int(fields[3]) <= 0:
                continue
            clients[fields[0]] = Client(fields[0], fields[1], fields[2], int(fields[3]))
    return clients


def listen(path):
    """A Unix stream socket listening on path, for the owner alone."""
    # A socket left by an instance that was killed would make bind fail.
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            os.unlink(path)
    except OSError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def daemonize(pid_file):
    """Forks; the child goes on in a session of its own. The parent exits
    once the child has written the pid file, so that the caller finds the
    pid file and a listening socket when it returns."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        ready = os.read(read_end, 1)
        os._exit(0 if ready == b"1" else 1)
    os.close(read_end)
    os.setsid()
    os.chdir("/")
    write_pid_file(pid_file)
    os.write(write_end, b"1")
    os.close(write_end)


def write_pid_file(pid_file):
    tmp = f"{pid_file}.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, pid_file)


def start():
    """Everything the caller waits for; returns what the daemon needs."""
    opts, foreground = parse_args(sys.argv[1:])
    if opts is None:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    try:
        clients = read_clients(opts["clients"])
        with open(opts["grant-secret-file"], encoding="ascii") as f:
            grant_secret = f.read().strip()
        if not grant_secret:
            raise ValueError(f"{opts['grant-secret-file']} is empty")
    except (OSError, ValueError) as e:
        print(f"globus_standin: {e}", file=sys.stderr)
        sys.exit(1)
    try:
        sock = listen(opts["socket"])
    except OSError as e:
        print(f"globus_standin: cannot listen on {opts['socket']}: {e.strerror or e}",
              file=sys.stderr)
        sys.exit(1)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if foreground:
        write_pid_file(opts["pid-file"])
    else:
        daemonize(opts["pid-file"])
    return opts, clients, grant_secret, sock


if __name__ == "__main__":
    started = start()

# --- the daemon: loaded after the fork ------------------------------------

import base64  # noqa: E402
import binascii  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socketserver  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

TOKEN_PATH = "/_auth/v2/oauth2/token"
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
TRANSFER_SERVER = "transfer.api.globus.org"
MAX_BODY = 64 * 1024
COLLECTION_SCOPE = re.compile(
    r"^https://auth\.globus\.org/scopes/([A-Za-z0-9][A-Za-z0-9._-]*)/(https|data_access)$"
)


def mac(expires, resource, mode, secret):
    digest = hashlib.md5(f"{expires} {resource} {mode} {secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def printable(text, limit=500):
    """Text safe for one log line: no control characters, bounded length."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


class Standin:
    def __init__(self, clients, grant_secret, collection_id, https_off_id, log_path):
        self.clients = clients
        self.grant_secret = grant_secret
        self.collections = {collection_id}
        if https_off_id:
            self.collections.add(https_off_id)
        self.log_path = log_path
        self.log_lock = threading.Lock()

    def log(self, client_id, scopes, outcome):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f'{stamp} client={client_id} scopes="{printable(scopes)}" outcome={outcome}\n'
        with self.log_lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)

    def authenticate(self, header):
        """(the client named by HTTP Basic credentials or None, the id to
        log: a known client's id, else "unknown", for an unknown id might be
        a secret sent in the wrong field)"""
        if not header:
            return None, "none"
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None, "none"
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, "unknown"
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None, "unknown"
        # RFC 6749 asks clients to form-encode both before Basic; most send
        # them as they are. Either way is accepted.
        log_id = "unknown"
        for cid, sec in ((client_id, secret),
                         (urllib.parse.unquote_plus(client_id),
                          urllib.parse.unquote_plus(secret))):
            client = self.clients.get(cid)
            if client is None:
                continue
            if hmac.compare_digest(client.secret.encode(), sec.encode()):
                return client, client.client_id
            log_id = f"{client.client_id}(bad-secret)"
        return None, log_id

    def resource_of(self, scope):
        """(resource server, token resource) of a scope, or None."""
        if scope == TRANSFER_SCOPE:
            return TRANSFER_SERVER, "transfer"
        m = COLLECTION_SCOPE.match(scope)
        if m and m.group(1) in self.collections:
            return m.group(1), m.group(1)
        return None

    def grant(self, auth_header, body):
        """(status, JSON document, client id for the log, scopes for the log)"""
        client, log_id = self.authenticate(auth_header)
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}
        scope_text = " ".join(form.get("scope", []))
        if client is None:
            return 401, {"error": "invalid_client"}, log_id, scope_text
        if any(len(v) > 1 for v in form.values()):
            return 400, {"error": "invalid_request"}, client.client_id, scope_text
        if form.get("grant_type", [""])[0] != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, client.client_id, scope_text

        scopes = []
        for s in scope_text.split():
            if s not in scopes:
                scopes.append(s)
        groups = {}  # resource server -> (token resource, scopes); keeps order
        for s in scopes:
            found = self.resource_of(s)
            if found is None:
                return 400, {"error": "invalid_scope"}, client.client_id, scope_text
            server, resource = found
            groups.setdefault(server, (resource, []))[1].append(s)
        if not groups:
            return 400, {"error": "invalid_scope"}, client.client_id, scope_text

        expires = int(time.time()) + client.lifetime
        tokens = []
        for server, (resource, group_scopes) in groups.items():
            token = (f"g1.{resource}.{client.mode}.{expires}."
                     f"{mac(expires, resource, client.mode, self.grant_secret)}")
            tokens.append({
                "access_token": token,
                "expires_in": client.lifetime,
                "token_type": "Bearer",
                "scope": " ".join(group_scopes),
                "resource_server": server,
            })
        doc = dict(tokens[0])
        doc["other_tokens"] = tokens[1:]
        return 200, doc, client.client_id, scope_text


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "ferry-auth-standin"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        # The access log of nginx already records each request; a Unix socket
        # has no client address for the base class to print.
        pass

    def answer(self, status, doc, extra_headers=()):
        body = (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != TOKEN_PATH:
            self.answer(404, {"error": "not_found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.answer(400, {"error": "invalid_request"})
            return
        body = self.rfile.read(length)
        standin = self.server.standin
        status, doc, client_id, scopes = standin.grant(self.headers.get("Authorization"), body)
        outcome = f"{status} {doc.get('error', 'ok')}"
        if status == 200:
            servers = [doc["resource_server"]] + [t["resource_server"] for t in doc["other_tokens"]]
            outcome += " resource_servers=" + ",".join(servers)
        standin.log(client_id, scopes, outcome)
        headers = []
        if status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="ferry local auth"'))
        self.answer(status, doc, headers)

    def do_GET(self):
        self.answer(405, {"error": "invalid_request"}, [("Allow", "POST")])

    do_HEAD = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, sock, socket_path, pid_file, standin):
        super().__init__(socket_path, Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # bound and listening since before the fork
        self.socket_path = socket_path
        self.socket_ino = os.stat(socket_path).st_ino
        self.pid_file = pid_file
        self.standin = standin

    def still_wanted(self):
        """False once the state directory no longer names this process: the
        socket was removed or replaced (the folder deleted), or the pid file
        names another process. Then nothing is left behind."""
        try:
            if os.stat(self.socket_path).st_ino != self.socket_ino:
                return False
            with open(self.pid_file, encoding="ascii") as f:
                return f.read().strip() == str(os.getpid())
        except OSError:
            return False

    def service_actions(self):
        if not self.still_wanted():
            raise SystemExit(0)


def serve(opts, clients, grant_secret, sock):
    standin = Standin(clients, grant_secret, opts["collection-id"],
                      opts.get("https-off-id", ""), opts["log"])
    server = Server(sock, opts["socket"], opts["pid-file"], standin)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        try:
            if os.stat(opts["socket"]).st_ino == server.socket_ino:
                os.unlink(opts["socket"])
        except OSError:
            pass
        try:
            with open(opts["pid-file"], encoding="ascii") as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(opts["pid-file"])
        except OSError:
            pass
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(*started))
