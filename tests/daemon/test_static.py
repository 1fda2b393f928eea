"""Static files from --www on a real pushwired: content types, ETag / If-None-Match (304),
index.html and the directory redirect, and path traversal attempts: "..", "%2e%2e" and mixed
encodings, encoded slashes, absolute-looking paths, symlinks escaping the root, hidden files.
Paths are sent byte for byte (http.client does not normalise them). A secret file next to the
root must never be served.

How each defence was checked to matter (the case fails without it):
- with the three layers of daemon/static_files.c disabled (relative_path's ".." refusal and
  its hidden-name rule, which also catches "..", and resolve_inside's prefix check),
  /../secret.txt was served (200);
- with only the prefix check disabled, /escape.txt (a symlink out of the root) was served;
- with etag_matches returning 0, the 304 case got 200.
"""
import os

from harness import Daemon, Runner, expect, finish, parse_args, tempdir

SECRET = b"top secret, outside the root\n"


def make_tree(base):
    root = os.path.join(base, "www")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "docs"))
    files = {
        "index.html": b"<!doctype html><title>home</title>\n",
        "app.js": b"console.log(1)\n",
        "style.css": b"body{}\n",
        "data.json": b"{}\n",
        "logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
        "blob.bin": b"\x00\x01",
        "sub/page.html": b"<p>sub</p>\n",
        "docs/index.html": b"<p>docs</p>\n",
        ".env": b"HIDDEN=1\n",
    }
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    with open(os.path.join(base, "secret.txt"), "wb") as f:
        f.write(SECRET)
    os.symlink(os.path.join(base, "secret.txt"), os.path.join(root, "escape.txt"))
    os.symlink(base, os.path.join(root, "updir"))
    os.symlink(os.path.join(root, "app.js"), os.path.join(root, "inside.js"))
    return root, files


def cases(r, d, files):
    def types():
        for path, ctype in [("/index.html", "text/html; charset=utf-8"),
                            ("/app.js", "text/javascript; charset=utf-8"),
                            ("/style.css", "text/css; charset=utf-8"),
                            ("/data.json", "application/json"),
                            ("/logo.svg", "image/svg+xml"),
                            ("/blob.bin", "application/octet-stream")]:
            status, headers, body = d.http("GET", path)
            expect(status == 200 and body == files[path[1:]], (path, status, body))
            expect(headers["content-type"] == ctype, (path, headers["content-type"]))
            expect(headers.get("x-content-type-options") == "nosniff", headers)
    r.check("files with their content types", types)

    def index_and_redirect():
        status, _, body = d.http("GET", "/")
        expect(status == 200 and body == files["index.html"], (status, body))
        status, _, body = d.http("GET", "/docs/")
        expect(status == 200 and body == files["docs/index.html"], (status, body))
        status, headers, _ = d.http("GET", "/docs")
        expect(status == 301 and headers.get("location") == "/docs/", (status, headers))
        status, _, body = d.http("GET", "/sub/page.html?v=3")
        expect(status == 200 and body == files["sub/page.html"], (status, body))
        status, _, body = d.http("GET", "/inside.js")
        expect(status == 200 and body == files["app.js"], "symlink inside the root: %d" % status)
    r.check("/ serves index.html, a directory without '/' redirects", index_and_redirect)

    def etag():
        status, headers, _ = d.http("GET", "/app.js")
        tag = headers.get("etag")
        expect(status == 200 and tag and tag.startswith('"'), headers)
        status, headers2, body = d.http("GET", "/app.js", headers={"If-None-Match": tag})
        expect(status == 304 and body == b"" and headers2.get("etag") == tag, (status, body))
        status, _, _ = d.http("GET", "/app.js", headers={"If-None-Match": '"x", W/' + tag})
        expect(status == 304, "weak tag in a list: %d" % status)
        status, _, body = d.http("GET", "/app.js", headers={"If-None-Match": '"other"'})
        expect(status == 200 and body == files["app.js"], "other tag: %d" % status)
        status, _, _ = d.http("GET", "/style.css", headers={"If-None-Match": tag})
        expect(status == 200, "another file's tag: %d" % status)
    r.check("ETag and If-None-Match: 304 only for the current tag", etag)

    def traversal():
        attempts = [
            "/../secret.txt", "/../../../../etc/passwd", "/sub/../../secret.txt",
            "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt", "/sub%2f..%2f..%2fsecret.txt",
            "/..%5csecret.txt", "//..//secret.txt", "/./../secret.txt",
            "/escape.txt", "/updir/secret.txt",
            "/etc/passwd", "//etc/passwd", "/%2fetc%2fpasswd",
            "/.env", "/sub/../.env", "/%00secret.txt", "/app.js%00.html",
        ]
        for path in attempts:
            status, _, body = d.http("GET", path)
            expect(status in (400, 403, 404), "%s: status %d" % (path, status))
            expect(SECRET not in body and b"root:" not in body, "%s leaked %r" % (path, body[:60]))
        for path, want in [("/../secret.txt", 403), ("/%2e%2e/secret.txt", 403),
                           ("/escape.txt", 403), ("/updir/secret.txt", 403), ("/.env", 404)]:
            status, _, _ = d.http("GET", path)
            expect(status == want, "%s: %d, expected %d" % (path, status, want))
    r.check("path traversal, encoded dots, symlinks out of the root, hidden files: refused",
            traversal)

    def methods_and_missing():
        status, headers, _ = d.http("POST", "/index.html", b"x")
        expect(status == 405 and headers.get("allow") == "GET, HEAD", (status, headers))
        # HEAD: the GET answer's status and headers, no body (fails if HEAD is refused or if
        # the library sends the body: http.client would then misread the next answer).
        _, get_headers, get_body = d.http("GET", "/index.html")
        status, headers, body = d.http("HEAD", "/index.html")
        expect(status == 200 and body == b"", (status, body[:40]))
        expect(headers.get("content-length") == str(len(get_body)), headers)
        expect(headers.get("etag") == get_headers.get("etag"), headers)
        status, _, _ = d.http("GET", "/missing.html")
        expect(status == 404, "missing: %d" % status)
        status, _, body = d.http("GET", "/healthz")
        expect(status == 200 and body == b"ok\n", (status, body))
    r.check("HEAD like GET without a body, 405 for other methods, 404 for missing files, "
            "/healthz still routed", methods_and_missing)


def main(path):
    r = Runner(None)
    with tempdir() as base:
        root, files = make_tree(base)
        d = Daemon(path, ["--www", root]).start()
        try:
            cases(r, d, files)
        finally:
            rc = d.stop()
        r.result("daemon exits 0 on SIGTERM", rc == 0, "rc=%r" % rc)
    return finish(r)


if __name__ == "__main__":
    raise SystemExit(main(parse_args(__doc__).daemon))
