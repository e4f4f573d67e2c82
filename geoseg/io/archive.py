"""Finding the scenes of a batch input and hashing their bytes.

A batch input is a folder, a glob, a ``.zip``, a ``.tar``/``.tar.gz``, a text file listing paths
or URLs, or a single raster. Archive members are never unpacked to disk: each becomes a GDAL
virtual path (``/vsizip/``, ``/vsitar/``) that :func:`geoseg.io.scene.open_scene` reads in place,
and its content hash is computed by streaming the member out of the archive.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import posixpath
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from geoseg.errors import BatchError

#: File name endings taken as scenes; other files in a folder or an archive are ignored.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
LIST_SUFFIXES = (".txt", ".lst", ".list")
URL_SCHEMES = ("http", "https")
_CHUNK = 1 << 20
_GLOB_CHARS = frozenset("*?[")

InputKind = Literal["folder", "glob", "zip", "tar", "list", "file"]


@dataclass(frozen=True)
class SceneSource:
    """One scene of a batch input.

    Parameters
    ----------
    name : str
        Relative POSIX name of the scene within the input (outputs mirror it), e.g.
        ``2020/S2_T37MEM.tif``.
    path : str
        Dataset name for GDAL: a file, a URL or a ``/vsizip/`` / ``/vsitar/`` member path.
    container : str or None
        The archive holding the scene, for archive members.
    member : str or None
        The member's name inside ``container``.
    """

    name: str
    path: str
    container: str | None = None
    member: str | None = None

    @property
    def is_url(self) -> bool:
        """Whether the scene is read over HTTP(S)."""
        return urllib.parse.urlsplit(self.path).scheme in URL_SCHEMES


@dataclass(frozen=True)
class BatchInput:
    """The scenes found in a batch input, and what was passed over.

    Parameters
    ----------
    kind : str
        ``folder``, ``glob``, ``zip``, ``tar``, ``list`` or ``file``.
    scenes : tuple of SceneSource
        Scenes in a stable (sorted) order.
    ignored : tuple of str
        Files that were not taken as scenes because of their name.
    """

    kind: InputKind
    scenes: tuple[SceneSource, ...]
    ignored: tuple[str, ...] = ()


def is_raster_name(name: str) -> bool:
    """Whether ``name`` ends like a raster geoseg reads.

    >>> is_raster_name("a/B.TIF"), is_raster_name("readme.txt")
    (True, False)
    """
    return name.lower().endswith(RASTER_SUFFIXES)


def input_kind(spec: str) -> InputKind:
    """Tell what kind of batch input ``spec`` is, from the file system and its name.

    Raises
    ------
    BatchError
        If ``spec`` does not exist (and is no glob) or its kind cannot be told from its name.
    """
    path = Path(spec)
    lower = spec.lower()
    if path.is_dir():
        return "folder"
    if not path.exists():
        if _GLOB_CHARS & set(spec):
            return "glob"
        raise BatchError(f"batch input {spec} does not exist")
    if lower.endswith(ZIP_SUFFIXES):
        return "zip"
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    if lower.endswith(LIST_SUFFIXES):
        return "list"
    if is_raster_name(lower):
        return "file"
    raise BatchError(
        f"cannot tell what batch input {spec} is: give a folder, a glob, a .zip, a .tar or "
        f".tar.gz, a .txt list of scenes, or a raster ({', '.join(RASTER_SUFFIXES)})"
    )


def list_scenes(spec: str | Path, *, exclude: Path | None = None) -> BatchInput:
    """Find the scenes of a batch input.

    Parameters
    ----------
    spec : str or Path
        Folder (searched recursively), glob, ``.zip``, ``.tar``/``.tar.gz``/``.tgz``, text list
        (one path or URL per line; ``#`` comments; relative paths are relative to the list), or
        a single raster.
    exclude : Path, optional
        A folder whose files are never scenes (the batch's own output folder).

    Returns
    -------
    BatchInput

    Raises
    ------
    BatchError
        If the input is missing, of an unknown kind, a corrupt archive, or holds no scene.
    """
    text = str(spec)
    kind = input_kind(text)
    if kind == "folder":
        found = _walk_folder(Path(text), exclude)
    elif kind == "glob":
        found = _match_glob(text, exclude)
    elif kind == "zip":
        found = _zip_members(Path(text))
    elif kind == "tar":
        found = _tar_members(Path(text))
    elif kind == "list":
        found = _read_list(Path(text))
    else:
        path = Path(text).resolve()
        found = ([SceneSource(path.name, str(path))], [])
    scenes, ignored = found
    if not scenes:
        what = {"zip": "archive", "tar": "archive", "list": "list", "glob": "glob"}.get(kind, kind)
        hint = f" ({len(ignored)} other files ignored)" if ignored else ""
        raise BatchError(
            f"no scenes in {what} {text}{hint}: expected files ending in "
            f"{', '.join(RASTER_SUFFIXES)}"
        )
    return BatchInput(kind, tuple(_unique_names(scenes)), tuple(ignored))


def _walk_folder(folder: Path, exclude: Path | None) -> tuple[list[SceneSource], list[str]]:
    root = folder.resolve()
    skip = exclude.resolve() if exclude is not None else None
    scenes, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # hidden folders hold temporaries and the output folder must not feed itself back in
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d) != skip)
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            relative = (here / filename).relative_to(root).as_posix()
            if is_raster_name(filename):
                scenes.append(SceneSource(relative, str(here / filename)))
            else:
                ignored.append(relative)
    return scenes, ignored


def _match_glob(pattern: str, exclude: Path | None) -> tuple[list[SceneSource], list[str]]:
    skip = exclude.resolve() if exclude is not None else None
    paths = [
        Path(p).resolve() for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()
    ]
    if skip is not None:
        paths = [p for p in paths if not p.is_relative_to(skip)]
    scenes = [p for p in paths if is_raster_name(p.name)]
    ignored = [str(p) for p in paths if not is_raster_name(p.name)]
    base = _common_parent(scenes)
    return [SceneSource(p.relative_to(base).as_posix(), str(p)) for p in scenes], ignored


def _zip_members(archive: Path) -> tuple[list[SceneSource], list[str]]:
    root = archive.resolve()
    try:
        with zipfile.ZipFile(root) as handle:
            # damaged member data is found later, when the member is hashed: a per-scene failure
            names = [i.filename for i in handle.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BatchError(f"archive {archive} is not a readable zip file: {_reason(exc)}") from exc
    return _archive_sources(names, f"/vsizip/{root}", str(root))


def _tar_members(archive: Path) -> tuple[list[SceneSource], list[str]]:
    root = archive.resolve()
    try:
        with tarfile.open(root) as handle:
            names = [m.name for m in handle.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BatchError(f"archive {archive} is not a readable tar file: {_reason(exc)}") from exc
    return _archive_sources(names, f"/vsitar/{root}", str(root))


def _archive_sources(
    names: Iterable[str], prefix: str, container: str
) -> tuple[list[SceneSource], list[str]]:
    scenes, ignored = [], []
    for member in sorted(names):
        clean = posixpath.normpath(member).lstrip("/")
        hidden = any(part.startswith(".") or part == "__MACOSX" for part in clean.split("/"))
        if hidden or clean.startswith(".."):
            continue
        if is_raster_name(clean):
            # GDAL wants the normalized name (no "./"); tarfile and zipfile want the stored one
            scenes.append(SceneSource(clean, f"{prefix}/{clean}", container, member))
        else:
            ignored.append(clean)
    return scenes, ignored


def _read_list(listing: Path) -> tuple[list[SceneSource], list[str]]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"cannot read scene list {listing}: {_reason(exc)}") from exc
    base = listing.resolve().parent
    urls: list[str] = []
    files: list[Path] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if urllib.parse.urlsplit(entry).scheme in URL_SCHEMES:
            urls.append(entry)
        else:
            # a missing file is kept: it becomes a per-scene failure that names it
            files.append((base / entry).resolve() if not Path(entry).is_absolute() else Path(entry))
    # a scene listed twice is one scene
    files = list(dict.fromkeys(files))
    urls = list(dict.fromkeys(urls))
    parent = _common_parent(files)
    scenes = [SceneSource(p.relative_to(parent).as_posix(), str(p)) for p in files]
    for url in urls:
        name = PurePosixPath(urllib.parse.urlsplit(url).path).name or "scene.tif"
        scenes.append(SceneSource(name, url))
    return scenes, []


def _common_parent(paths: list[Path]) -> Path:
    if not paths:
        return Path("/")
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _unique_names(scenes: list[SceneSource]) -> Iterator[SceneSource]:
    """Give scenes that share a name (two URLs ending alike) a suffix derived from their path."""
    counts: dict[str, int] = {}
    for scene in scenes:
        key = scene.name.lower()
        counts[key] = counts.get(key, 0) + 1
    for scene in scenes:
        if counts[scene.name.lower()] == 1:
            yield scene
            continue
        tag = hashlib.sha256(scene.path.encode()).hexdigest()[:8]
        stem, dot, suffix = scene.name.rpartition(".")
        name = f"{stem}-{tag}{dot}{suffix}" if dot else f"{scene.name}-{tag}"
        yield SceneSource(name, scene.path, scene.container, scene.member)


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the bytes of a scene cheaply, so their hash can be reused.

    Parameters
    ----------
    path : str
        The scene's dataset name.
    size, mtime_ns : int
        Size and modification time of the file holding it (the archive, for members); ``-1``
        where unknown (URLs, which are always hashed again).
    """

    path: str
    size: int
    mtime_ns: int


def fingerprint(scene: SceneSource) -> Fingerprint:
    """Size and modification time of the file that holds ``scene``.

    Raises
    ------
    BatchError
        If that file does not exist.
    """
    if scene.is_url:
        return Fingerprint(scene.path, -1, -1)
    holder = scene.container or scene.path
    try:
        stat = os.stat(holder)
    except OSError as exc:
        raise BatchError(f"scene {scene.path} cannot be read: {_reason(exc)}") from exc
    return Fingerprint(scene.path, stat.st_size, stat.st_mtime_ns)


def content_sha256(scene: SceneSource, timeout_s: float = 60.0) -> str:
    """SHA-256 of the scene's bytes: the file, the archive member, or the URL's body.

    Raises
    ------
    BatchError
        If the bytes cannot be read (missing file, damaged member, unreachable URL).
    """
    digest = hashlib.sha256()
    try:
        with _open_bytes(scene, timeout_s) as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, KeyError) as exc:
        raise BatchError(f"scene {scene.name} cannot be read: {_reason(exc)}") from exc
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a local file's bytes (a model file, for resume keys).

    Raises
    ------
    BatchError
        If the file cannot be read.
    """
    return content_sha256(SceneSource(Path(path).name, str(path)))


@contextlib.contextmanager
def _open_bytes(scene: SceneSource, timeout_s: float) -> Iterator[IO[bytes]]:
    if scene.container is not None and scene.member is not None:
        if scene.path.startswith("/vsizip/"):
            with zipfile.ZipFile(scene.container) as archive, archive.open(scene.member) as member:
                yield member
            return
        with tarfile.open(scene.container) as tar:
            stream = tar.extractfile(scene.member)
            if stream is None:
                raise KeyError(f"{scene.member} is not a regular file")
            with stream:
                yield stream
        return
    if scene.is_url:
        with urllib.request.urlopen(scene.path, timeout=timeout_s) as response:
            yield response
        return
    with open(scene.path, "rb") as handle:
        yield handle


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
