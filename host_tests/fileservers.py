"""Minimal file servers for the firmware-management tests (CPython stdlib only).

HttpFileServer: GET of registered paths (bytes, a status code, a redirect, or
chunked bytes), POST multipart/form-data uploads recorded in .uploads, an
optional forced status for POSTs, HTTPS with a certs.pki() server certificate.

FtpServer: USER/PASS/SYST/TYPE/PASV/RETR/STOR/CWD/PWD/NOOP/QUIT over a root
directory, passive mode only; accounts {user: password} (None = anonymous
allowed); stored files recorded in .stored.
"""
import email.parser
import email.policy
import http.server
import os
import socket
import socketserver
import ssl
import threading


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        self.server.owner.log.append(fmt % args)

    def do_GET(self):
        own = self.server.owner
        own.requests.append(("GET", self.path))
        r = own.routes.get(self.path)
        if r is None:
            return self._plain(404, b"not found")
        kind, val = r
        if kind == "status":
            return self._plain(val, b"error %d" % val)
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", val)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(val), 1000):
                part = val[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(val)))
        self.end_headers()
        self.wfile.write(val)

    def do_POST(self):
        own = self.server.owner
        own.requests.append(("POST", self.path))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if own.post_status != 200:
            return self._plain(own.post_status, b"refused")
        ctype = self.headers.get("Content-Type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        if not msg.is_multipart():
            return self._plain(400, b"not multipart")
        for part in msg.iter_parts():
            name = part.get_filename()
            if name:
                own.uploads.append(
                    (
                        self.path,
                        part.get_param("name", header="content-disposition"),
                        name,
                        part.get_payload(decode=True),
                    )
                )
        self._plain(200, b"ok")

    def _plain(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ThreadingHttp(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpFileServer:
    def __init__(self, tls=None):
        """tls: a certs.Pki to serve HTTPS with its server certificate."""
        self.routes = {}
        self.requests = []
        self.uploads = []  # (path, field, filename, bytes)
        self.post_status = 200
        self.log = []
        self.srv = _ThreadingHttp(("127.0.0.1", 0), _HttpHandler)
        self.srv.owner = self
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.server_cert, tls.server_key)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            self.scheme = "https"
        self.port = self.srv.server_address[1]
        self._t = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def url(self, path, host="127.0.0.1"):
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    def add(self, path, data=None, status=None, redirect=None, chunked=None):
        if status is not None:
            self.routes[path] = ("status", status)
        elif redirect is not None:
            self.routes[path] = ("redirect", redirect)
        elif chunked is not None:
            self.routes[path] = ("chunked", chunked)
        else:
            self.routes[path] = ("data", data)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class _FtpHandler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        own = self.server.owner
        user = None
        logged = False
        pasv = None
        self.reply("220-mini ftp\r\n220 ready")
        while True:
            line = self.rfile.readline()
            if not line:
                break
            line = line.decode(errors="replace").rstrip("\r\n")
            own.commands.append(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "USER":
                user = arg
                self.reply("331 password please")
            elif verb == "PASS":
                if own.accounts is None or own.accounts.get(user) == arg:
                    logged = True
                    self.reply("230 logged in")
                else:
                    self.reply("530 login incorrect")
            elif verb == "QUIT":
                self.reply("221 bye")
                break
            elif not logged:
                self.reply("530 not logged in")
            elif verb == "SYST":
                self.reply("215 UNIX Type: L8")
            elif verb in ("TYPE", "NOOP"):
                self.reply("200 ok")
            elif verb == "PWD":
                self.reply('257 "/"')
            elif verb == "CWD":
                self.reply("250 ok")
            elif verb == "PASV":
                if pasv is not None:
                    pasv.close()
                pasv = socket.socket()
                pasv.bind(("127.0.0.1", 0))
                pasv.listen(1)
                pasv.settimeout(10)
                p = pasv.getsockname()[1]
                self.reply("227 Entering Passive Mode (127,0,0,1,%d,%d)" % (p >> 8, p & 255))
            elif verb in ("RETR", "STOR"):
                if pasv is None:
                    self.reply("425 use PASV first")
                    continue
                path = self._path(arg)
                if verb == "RETR" and (path is None or not os.path.isfile(path)):
                    self.reply("550 no such file")
                    pasv.close()
                    pasv = None
                    continue
                if path is None:
                    self.reply("553 bad name")
                    continue
                self.reply("150 opening data connection")
                conn, _ = pasv.accept()
                pasv.close()
                pasv = None
                with conn:
                    if verb == "RETR":
                        with open(path, "rb") as f:
                            conn.sendall(f.read())
                    else:
                        chunks = []
                        while True:
                            b = conn.recv(65536)
                            if not b:
                                break
                            chunks.append(b)
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "wb") as f:
                            f.write(b"".join(chunks))
                        own.stored.append((arg, b"".join(chunks)))
                self.reply("226 transfer complete")
            else:
                self.reply("502 not implemented")
        if pasv is not None:
            pasv.close()

    def _path(self, arg):
        root = self.server.owner.root
        p = os.path.normpath(os.path.join(root, arg.lstrip("/")))
        return p if p.startswith(root) else None


class _ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class FtpServer:
    def __init__(self, root, accounts=None):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.accounts = accounts
        self.commands = []
        self.stored = []  # (path argument, bytes)
        self.srv = _ThreadingTcp(("127.0.0.1", 0), _FtpHandler)
        self.srv.owner = self
        self.port = self.srv.server_address[1]
        self._t = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def url(self, path, user=None, password=None):
        auth = ""
        if user is not None:
            auth = user + (":" + password if password is not None else "") + "@"
        return "ftp://%s127.0.0.1:%d%s" % (auth, self.port, path)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
