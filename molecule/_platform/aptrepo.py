"""Signed local apt repositories of TEST-DOUBLE packages, for the molecule fixtures.

Shared by molecule/docker/fixtures/build_repo.py (laid out like download.docker.com) and
molecule/nvidia/fixtures/build_repo.py (laid out like NVIDIA's libnvidia-container repository).
The prepare step of each scenario copies this file next to its build_repo.py inside the test
instance. Every package carries a TEST-DOUBLE mark; the signing key is generated per build and
thrown away, so apt's signed-by verification runs for real and nobody can sign for the repository
again. Needs only python3, dpkg-deb and gpg.
"""
import datetime
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile


class Fixture:
    """Who builds the packages: the mark every package carries, the maintainer, the section."""

    def __init__(self, mark, maintainer, section):
        self.mark, self.maintainer, self.section = mark, maintainer, section

    def write_mark(self, root, name):
        doc = os.path.join(root, "usr/share/doc", name)
        os.makedirs(doc, exist_ok=True)
        with open(os.path.join(doc, "TEST-DOUBLE"), "w") as fh:
            fh.write(self.mark)

    def build_deb(self, workdir, outdir, name, version, arch, depends=(), description="", files=None):
        """An empty package (but for `files`: {install path: text}, installed 0755) named like upstream's."""
        root = os.path.join(workdir, "%s_%s" % (name, version.replace(":", "_")))
        os.makedirs(os.path.join(root, "DEBIAN"))
        for dest, text in (files or {}).items():
            path = os.path.join(root, dest.lstrip("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(text)
            os.chmod(path, 0o755)
        self.write_mark(root, name)
        control = [
            "Package: %s" % name,
            "Version: %s" % version,
            "Architecture: %s" % arch,
            "Maintainer: %s" % self.maintainer,
            "Section: %s" % self.section,
            "Priority: optional",
        ]
        if depends:
            control.append("Depends: %s" % ", ".join(depends))
        control.append("Description: %s (qvc TEST DOUBLE)\n %s" % (description or name, self.mark.strip()))
        with open(os.path.join(root, "DEBIAN/control"), "w") as fh:
            fh.write("\n".join(control) + "\n")
        return pack(root, os.path.join(outdir, deb_name(name, version, arch)), "gzip")


def deb_name(name, version, arch):
    """The pool file name (the epoch is not part of it, as in Debian's archive)."""
    return "%s_%s_%s.deb" % (name, version.split(":")[-1], arch)


def pack(root, deb, compression):
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Z" + compression, "--build", root, deb],
                   check=True, stdout=subprocess.DEVNULL)
    return deb


def _sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def write_packages(pool, index_dir, filename_prefix):
    """Packages and Packages.gz in index_dir for every .deb in pool; Filename is prefix + file name."""
    entries = []
    for deb in sorted(f for f in os.listdir(pool) if f.endswith(".deb")):
        path = os.path.join(pool, deb)
        with open(path, "rb") as fh:
            data = fh.read()
        control = subprocess.run(["dpkg-deb", "-f", path], check=True, capture_output=True, text=True).stdout
        entries.append(control.rstrip("\n") + "\nFilename: %s%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n" % (
            filename_prefix, deb, len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()))
    os.makedirs(index_dir, exist_ok=True)
    packages = "\n".join(entries).encode()
    with open(os.path.join(index_dir, "Packages"), "wb") as fh:
        fh.write(packages)
    with open(os.path.join(index_dir, "Packages.gz"), "wb") as fh:
        fh.write(gzip.compress(packages, mtime=0))


def write_release(dist, fields, indexes):
    """dist/Release: the given fields, a Date, and the SHA256 of each index (paths relative to dist)."""
    lines = list(fields) + [
        "Date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S UTC"),
        "SHA256:"]
    for rel in indexes:
        lines.append(" %s %d %s" % (_sha256(os.path.join(dist, rel)), os.path.getsize(os.path.join(dist, rel)), rel))
    with open(os.path.join(dist, "Release"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def sign(dist, keyfile, uid):
    """InRelease and Release.gpg with a throwaway ed25519 key; its armored public half to keyfile."""
    home = tempfile.mkdtemp(prefix="qvc-fixture-gnupg.")
    gpg = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run(gpg + ["--quick-gen-key", uid, "ed25519", "sign", "1d"], check=True, capture_output=True)
        with open(keyfile, "wb") as fh:
            fh.write(subprocess.run(gpg + ["--armor", "--export"], check=True, capture_output=True).stdout)
        release = os.path.join(dist, "Release")
        subprocess.run(gpg + ["--yes", "--clearsign", "-o", os.path.join(dist, "InRelease"), release],
                       check=True, capture_output=True)
        subprocess.run(gpg + ["--yes", "-abs", "-o", os.path.join(dist, "Release.gpg"), release],
                       check=True, capture_output=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the private key is gone: nobody can sign for this repo again
