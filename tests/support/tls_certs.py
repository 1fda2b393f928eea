"""Test certificates made at run time with `openssl req` (never committed): a throwaway CA, and
server and client certificates it signs, in a temporary directory removed at exit.

make_certs() -> Certs with paths: ca, server_cert/server_key (CN pushwire-test-a, for
127.0.0.1 and localhost), server_b_cert/server_b_key (CN pushwire-test-b, for reload tests),
client_cert/client_key (signed by the CA) and rogue_cert/rogue_key (self-signed: an unknown
issuer). EC P-256 keys: quick to make, quick to sign with.
"""
import atexit
import os
import shutil
import ssl
import subprocess
import tempfile


class Certs:
    pass


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def _key(cwd, name):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", name, cwd=cwd)


def _signed(cwd, name, cn, ext):
    """name.key and name.pem, a certificate for cn signed by the CA."""
    _key(cwd, name + ".key")
    _openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr",
             cwd=cwd)
    with open(os.path.join(cwd, name + ".ext"), "w") as f:
        f.write(ext)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem",
             cwd=cwd)


def make_certs():
    d = tempfile.mkdtemp(prefix="pw-tls-")
    atexit.register(shutil.rmtree, d, True)
    _key(d, "ca.key")
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=pushwire test CA",
             "-days", "2", "-out", "ca.pem", cwd=d)
    server_ext = ("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                  "extendedKeyUsage=serverAuth\n")
    _signed(d, "server", "pushwire-test-a", server_ext)
    _signed(d, "server_b", "pushwire-test-b", server_ext)
    _signed(d, "client", "pushwire-client", "extendedKeyUsage=clientAuth\n")
    _key(d, "rogue.key")
    _openssl("req", "-x509", "-new", "-key", "rogue.key", "-subj", "/CN=pushwire-rogue",
             "-days", "2", "-out", "rogue.pem", cwd=d)
    c = Certs()
    c.dir = d
    c.ca = os.path.join(d, "ca.pem")
    for name in ("server", "server_b", "client", "rogue"):
        setattr(c, name + "_cert", os.path.join(d, name + ".pem"))
        setattr(c, name + "_key", os.path.join(d, name + ".key"))
    return c


def client_context(certs, cert=None, key=None):
    """A client context that trusts the test CA (and checks the host name 127.0.0.1)."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def server_args(certs):
    """pw-echo arguments for TLS with the test server certificate."""
    return ["--tls-cert", certs.server_cert, "--tls-key", certs.server_key]
