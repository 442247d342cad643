"""get_file: download with progress, checksums, atomic writes, interruptions, and safe extraction.

Every download comes from a LocalServer on 127.0.0.1 started by the test; nothing leaves the machine.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest
from child_python import child_env
from dataset_fixtures import make_tar_gz, md5, read_bytes, sha256, tree

from bnpy.utils import data_utils
from bnpy.utils.data_utils import (
    ChecksumError,
    DataFileError,
    DownloadError,
    UnsafeArchiveError,
    extract_archive,
    get_file,
    hash_file,
    validate_file,
)

PAYLOAD = bytes(range(256)) * 700  # 179,200 bytes: several 64 KiB reads, so progress has steps


# --------------------------------------------------------------------------------------------------
# hashes


def test_hash_file_and_validate_file_agree_with_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)
    assert hash_file(str(path), "md5") == hashlib.md5(PAYLOAD).hexdigest()
    assert hash_file(str(path), "sha256", chunk_size=1000) == hashlib.sha256(PAYLOAD).hexdigest()
    assert validate_file(str(path), md5(PAYLOAD))  # 32 digits: auto picks md5
    assert validate_file(str(path), sha256(PAYLOAD).upper())  # 64 digits: sha256, any case
    assert not validate_file(str(path), sha256(PAYLOAD[:-1]))
    with pytest.raises(ValueError, match="validate_file: file_hash must be 32 .* or 64"):
        validate_file(str(path), "abc")
    with pytest.raises(ValueError, match="hash_algorithm must be"):
        get_file(
            "x",
            "http://127.0.0.1:9/x",
            file_hash=md5(PAYLOAD),
            hash_algorithm="sha1",
            cache_dir=str(tmp_path),
        )


@pytest.mark.parametrize(
    "fname, origin, exc",
    [
        (None, "http://127.0.0.1/x", TypeError),
        ("", "http://127.0.0.1/x", TypeError),
        ("x", 3, TypeError),
    ],
)
def test_get_file_rejects_bad_arguments(tmp_path, fname, origin, exc):
    with pytest.raises(exc, match="get_file"):
        get_file(fname, origin, cache_dir=str(tmp_path))


# --------------------------------------------------------------------------------------------------
# downloads


def test_download_shows_progress_verifies_and_lands_in_the_cache(tmp_path, local_server, capsys):
    local_server.files["/blob.bin"] = PAYLOAD
    path = get_file(
        "blob.bin", local_server.url("blob.bin"), file_hash=sha256(PAYLOAD), cache_dir=str(tmp_path)
    )
    assert path == str(tmp_path / "datasets" / "blob.bin")  # Keras's layout: <cache_dir>/datasets
    assert read_bytes(path) == PAYLOAD
    assert tree(str(tmp_path / "datasets")) == ["blob.bin"]  # no temporary left beside it
    out = capsys.readouterr().out
    assert "Downloading data from " + local_server.url("blob.bin") in out
    total = len(PAYLOAD)
    assert "{}/{} [{}]".format(total, total, "=" * 30) in out  # the finished bar, in bytes
    assert "65536/{}".format(total) in out  # and an intermediate step
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as open() would create it


def test_cached_file_is_used_when_its_hash_matches_and_redownloaded_when_not(
    tmp_path, local_server, capsys
):
    local_server.files["/blob.bin"] = PAYLOAD
    cached = tmp_path / "datasets" / "blob.bin"
    cached.parent.mkdir()
    cached.write_bytes(PAYLOAD)
    get_file(
        "blob.bin", local_server.url("blob.bin"), md5_hash=md5(PAYLOAD), cache_dir=str(tmp_path)
    )
    assert local_server.requests == []
    cached.write_bytes(b"stale")
    get_file(
        "blob.bin", local_server.url("blob.bin"), file_hash=md5(PAYLOAD), cache_dir=str(tmp_path)
    )
    assert local_server.requests == ["/blob.bin"]
    assert read_bytes(str(cached)) == PAYLOAD
    assert (
        "the md5 file hash does not match the original value of " + md5(PAYLOAD)
        in capsys.readouterr().out
    )


def test_corrupt_download_fails_checksum_and_leaves_no_file(tmp_path, local_server):
    local_server.files["/blob.bin"] = PAYLOAD[:-1] + b"\x00"
    with pytest.raises(
        ChecksumError, match="has sha256 .* but {} was expected".format(sha256(PAYLOAD))
    ):
        get_file(
            "blob.bin",
            local_server.url("blob.bin"),
            file_hash=sha256(PAYLOAD),
            cache_dir=str(tmp_path),
            progress=False,
        )
    assert tree(str(tmp_path / "datasets")) == []


def test_interrupted_download_leaves_no_file_and_a_retry_succeeds(tmp_path, local_server):
    local_server.files["/blob.bin"] = PAYLOAD
    local_server.cut_once.add("/blob.bin")
    with pytest.raises(DownloadError, match="URL fetch failure on .*blob.bin"):
        get_file("blob.bin", local_server.url("blob.bin"), cache_dir=str(tmp_path), progress=False)
    # No hash was given, so only the byte count against Content-Length can catch this: it must.
    assert tree(str(tmp_path / "datasets")) == []
    path = get_file(
        "blob.bin", local_server.url("blob.bin"), cache_dir=str(tmp_path), progress=False
    )
    assert read_bytes(path) == PAYLOAD
    assert local_server.requests == ["/blob.bin", "/blob.bin"]


def test_keyboard_interrupt_mid_download_leaves_no_file(tmp_path, local_server, monkeypatch):
    local_server.files["/blob.bin"] = PAYLOAD

    def interrupt(self, done):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_utils._ByteProgress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        get_file("blob.bin", local_server.url("blob.bin"), cache_dir=str(tmp_path))
    assert tree(str(tmp_path / "datasets")) == []


def test_download_killed_mid_way_leaves_no_file_that_looks_complete(tmp_path, local_server):
    """SIGKILL gives no chance to clean up: only a hidden '.blob.bin.*.part' may remain, never blob.bin."""
    local_server.files["/blob.bin"] = PAYLOAD
    local_server.stall_once.add("/blob.bin")
    datadir = tmp_path / "datasets"
    code = (
        "import sys; from bnpy.utils.data_utils import get_file; "
        "get_file('blob.bin', sys.argv[1], cache_dir=sys.argv[2], progress=False)"
    )
    env = child_env()
    writer = subprocess.Popen(
        [sys.executable, "-c", code, local_server.url("blob.bin"), str(tmp_path)],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and writer.poll() is None:
            parts = [
                p for p in (os.listdir(datadir) if datadir.exists() else []) if p.endswith(".part")
            ]
            if parts and os.path.getsize(datadir / parts[0]) > 0:  # bytes arrived, the rest hangs
                break
            time.sleep(0.02)
        assert writer.poll() is None, writer.stderr.read().decode()
        assert parts, "the writer never started its download"
    finally:
        writer.kill()
        writer.wait(10)
        writer.stderr.close()
    assert not (datadir / "blob.bin").exists()
    assert all(
        name.startswith(".blob.bin.") and name.endswith(".part") for name in os.listdir(datadir)
    )
    path = get_file(
        "blob.bin", local_server.url("blob.bin"), cache_dir=str(tmp_path), progress=False
    )
    assert read_bytes(path) == PAYLOAD


def test_stale_temp_files_of_killed_downloads_are_removed_by_the_next_download(
    tmp_path, local_server
):
    """What a SIGKILLed download leaves (the test above) is removed by the next download of the same
    file once nobody has written it for an hour; a recent one may be another process's live
    download, and other files' temp files are not this download's business."""
    local_server.files["/blob.bin"] = PAYLOAD
    datadir = tmp_path / "datasets"
    datadir.mkdir()
    old = time.time() - 2 * 3600
    stale = datadir / ".blob.bin.bnpy-tmp-4242-0badf00d.part"
    live = datadir / ".blob.bin.bnpy-tmp-4243-1ee7c0de.part"
    other = datadir / ".other.bin.bnpy-tmp-4244-c0ffee00.part"
    users = (
        datadir / ".blob.bin.draft.part"
    )  # the right prefix and suffix, but not a name bnpy makes
    for path in (stale, live, other, users):
        path.write_bytes(b"partial")
    for path in (stale, other, users):
        os.utime(path, (old, old))
    path = get_file(
        "blob.bin", local_server.url("blob.bin"), cache_dir=str(tmp_path), progress=False
    )
    assert read_bytes(path) == PAYLOAD
    assert sorted(os.listdir(datadir)) == sorted(["blob.bin", live.name, other.name, users.name])


def test_http_error_names_the_url_and_code(tmp_path, local_server):
    with pytest.raises(DownloadError, match=r"URL fetch failure on .*/missing\.bin: 404"):
        get_file(
            "missing.bin", local_server.url("missing.bin"), cache_dir=str(tmp_path), progress=False
        )
    assert tree(str(tmp_path / "datasets")) == []


# --------------------------------------------------------------------------------------------------
# extraction


def _folder_archive(tmp_path):
    source = tmp_path / "src" / "payload-dir"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(PAYLOAD)
    return make_tar_gz(str(source), str(tmp_path / "payload.tar.gz"))


def test_untar_downloads_keeps_the_archive_and_returns_the_folder(tmp_path, local_server):
    archive = read_bytes(_folder_archive(tmp_path))
    local_server.files["/payload.tar.gz"] = archive
    cache = tmp_path / "cache"
    path = get_file(
        "payload-dir",
        local_server.url("payload.tar.gz"),
        untar=True,
        file_hash=sha256(archive),
        cache_dir=str(cache),
        progress=False,
    )
    assert path == str(cache / "datasets" / "payload-dir")
    assert read_bytes(os.path.join(path, "sub", "b.bin")) == PAYLOAD
    assert tree(str(cache / "datasets")) == [
        "payload-dir",
        "payload-dir.tar.gz",
        "payload-dir/a.txt",
        "payload-dir/sub",
        "payload-dir/sub/b.bin",
    ]
    get_file("payload-dir", local_server.url("payload.tar.gz"), untar=True, cache_dir=str(cache))
    assert len(local_server.requests) == 1  # cached archive and folder: no second download


def test_truncated_archive_gives_clear_error_and_leaves_nothing(tmp_path, local_server):
    archive = read_bytes(_folder_archive(tmp_path))
    # Served complete as far as HTTP knows (Content-Length = the truncated size), with no hash to
    # catch it: extraction is what finds out, and must leave neither folder nor archive.
    local_server.files["/payload.tar.gz"] = archive[: len(archive) * 2 // 3]
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="payload-dir.tar.gz is truncated or corrupt"):
        get_file(
            "payload-dir",
            local_server.url("payload.tar.gz"),
            untar=True,
            cache_dir=str(cache),
            progress=False,
        )
    assert tree(str(cache / "datasets")) == []


def test_truncated_cached_archive_is_kept_but_named(tmp_path):
    archive = read_bytes(_folder_archive(tmp_path))
    datadir = tmp_path / "cache" / "datasets"
    datadir.mkdir(parents=True)
    (datadir / "payload-dir.tar.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(DataFileError, match="delete it to download it again"):
        get_file(
            "payload-dir",
            "http://127.0.0.1:9/never-fetched",
            untar=True,
            cache_dir=str(tmp_path / "cache"),
            progress=False,
        )
    assert tree(str(datadir)) == ["payload-dir.tar.gz"]  # the user's file is theirs to delete


def test_extract_zip_next_to_the_file(tmp_path, local_server):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner/one.txt", b"one")
    local_server.files["/z.zip"] = buffer.getvalue()
    path = get_file(
        "z.zip", local_server.url("z.zip"), extract=True, cache_dir=str(tmp_path), progress=False
    )
    assert read_bytes(str(tmp_path / "datasets" / "inner" / "one.txt")) == b"one"
    assert path == str(tmp_path / "datasets" / "z.zip")


def _crafted_tar(path, members):
    """Write a tar whose members are (name, kind, link_target_or_data) exactly as given."""
    with tarfile.open(path, "w") as archive:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                archive.addfile(info, io.BytesIO(extra))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            if kind in ("sym", "hard"):
                info.linkname = extra
            archive.addfile(info)
    return path


UNSAFE_TARS = {
    "absolute path": ([("/tmp/bnpy-evil-abs", "file", b"x")], "absolute path"),
    "dot-dot": ([("../evil", "file", b"x")], "'..' component"),
    "dot-dot inside": ([("ok/../../evil", "file", b"x")], "'..' component"),
    "symlink to absolute": ([("link", "sym", "/etc/passwd")], "absolute path '/etc/passwd'"),
    "symlink outside": ([("d/link", "sym", "../../outside")], "pointing outside"),
    "hard link outside": (
        [("ok.txt", "file", b"x"), ("hard", "hard", "../ok.txt")],
        "pointing outside",
    ),
    "link through a link": ([("a", "sym", "."), ("a/b", "sym", "..")], "below the link 'a'"),
    "link chain": ([("a", "sym", "."), ("b", "sym", "a/..")], "goes through another link"),
    "file below a link": (
        [("sub", "dir", None), ("l", "sym", "sub"), ("l/f", "file", b"x")],
        "below the link 'l'",
    ),
    "fifo": ([("pipe", "fifo", None)], "special file"),
    "device": ([("dev", "chr", None)], "special file"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path, case):
    members, message = UNSAFE_TARS[case]
    archive = _crafted_tar(str(tmp_path / "evil.tar"), [("first.txt", "file", b"safe")] + members)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, str(target))
    assert tree(str(target)) == []  # not even the harmless first member
    assert sorted(os.listdir(tmp_path)) == ["evil.tar", "target"]
    assert not os.path.exists("/tmp/bnpy-evil-abs")


def test_unsafe_tar_through_get_file_is_refused_and_removed(tmp_path, local_server):
    local_server.files["/evil.tar.gz"] = read_bytes(
        _crafted_tar(
            str(tmp_path / "evil.tar"), [("payload-dir/x", "file", b"x"), ("../up", "file", b"u")]
        )
    )
    with pytest.raises(UnsafeArchiveError, match="'..' component"):
        get_file(
            "payload-dir",
            local_server.url("evil.tar.gz"),
            untar=True,
            cache_dir=str(tmp_path / "cache"),
            progress=False,
        )
    assert tree(str(tmp_path / "cache")) == ["datasets"]
    assert not (tmp_path / "cache" / "up").exists()


def test_links_that_stay_inside_are_extracted(tmp_path):
    archive = _crafted_tar(
        str(tmp_path / "ok.tar"),
        [
            ("top/data.bin", "file", b"data"),
            ("top/alias", "sym", "data.bin"),
            ("top/hard", "hard", "top/data.bin"),
        ],
    )
    target = tmp_path / "target"
    assert extract_archive(archive, str(target)) is True
    assert os.readlink(str(target / "top" / "alias")) == "data.bin"
    assert read_bytes(str(target / "top" / "alias")) == b"data"
    assert read_bytes(str(target / "top" / "hard")) == b"data"
    assert tree(str(target)) == ["top", "top/alias", "top/data.bin", "top/hard"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("../evil.txt", "'..' component"),
        ("/abs/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
    ],
)
def test_unsafe_zip_members_are_refused(tmp_path, name, message):
    path = str(tmp_path / "evil.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fine.txt", b"fine")
        archive.writestr(name, b"evil")
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(path, str(target))
    assert not target.exists() or tree(str(target)) == []


def test_extract_archive_returns_false_for_non_archives_and_checks_format(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_bytes(b"not an archive")
    assert extract_archive(str(path), str(tmp_path / "t")) is False
    with pytest.raises(ValueError, match="archive_format must be"):
        extract_archive(str(path), str(tmp_path / "t"), archive_format="rar")


# --------------------------------------------------------------------------------------------------
# extraction merges into what is there and removes nothing of the user's


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_extraction_merges_into_existing_folders(tmp_path, kind):
    """Keras merges: a folder the archive also holds keeps every entry the archive does not name."""
    target = tmp_path / "target"
    (target / "docs" / "chapters").mkdir(parents=True)
    (target / "docs" / "thesis.tex").write_bytes(b"three years of work")
    (target / "docs" / "chapters" / "one.tex").write_bytes(b"one")
    (target / "docs" / "readme.txt").write_bytes(b"old readme")
    members = [("docs/readme.txt", b"new readme"), ("docs/chapters/two.tex", b"two")]
    if kind == "tar":
        archive = _crafted_tar(str(tmp_path / "a.tar"), [(n, "file", d) for n, d in members])
    else:
        archive = _zip(str(tmp_path / "a.zip"), members)
    assert extract_archive(archive, str(target)) is True
    assert tree(str(target)) == [
        "docs",
        "docs/chapters",
        "docs/chapters/one.tex",
        "docs/chapters/two.tex",
        "docs/readme.txt",
        "docs/thesis.tex",
    ]
    assert read_bytes(str(target / "docs" / "thesis.tex")) == b"three years of work"
    assert read_bytes(str(target / "docs" / "readme.txt")) == b"new readme"  # same name: replaced


def test_get_file_extract_keeps_the_cached_dataset_folder(tmp_path, local_server):
    """A zip holding fashion-mnist/README unpacked into the cache leaves the cached files there."""
    datadir = tmp_path / "datasets"
    (datadir / "fashion-mnist").mkdir(parents=True)
    cached = {
        name: bytes([i]) * 100
        for i, name in enumerate(("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"))
    }
    for name, data in cached.items():
        (datadir / "fashion-mnist" / name).write_bytes(data)
    local_server.files["/readme.zip"] = read_bytes(
        _zip(str(tmp_path / "readme.zip"), [("fashion-mnist/README", b"read me")])
    )
    for _ in range(2):  # get_file(extract=True) unpacks again on every call: still nothing lost
        get_file(
            "readme.zip",
            local_server.url("readme.zip"),
            extract=True,
            cache_dir=str(tmp_path),
            progress=False,
        )
    assert tree(str(datadir / "fashion-mnist")) == ["README"] + sorted(cached)
    for name, data in cached.items():
        assert read_bytes(str(datadir / "fashion-mnist" / name)) == data


def test_extracting_an_archive_with_links_twice_replaces_only_its_own_entries(tmp_path):
    archive = _crafted_tar(
        str(tmp_path / "ok.tar"),
        [("top/data.bin", "file", b"data"), ("top/alias", "sym", "data.bin")],
    )
    target = tmp_path / "target"
    (target / "top").mkdir(parents=True)
    (target / "top" / "mine.txt").write_bytes(b"mine")
    extract_archive(archive, str(target))
    extract_archive(archive, str(target))
    assert tree(str(target)) == ["top", "top/alias", "top/data.bin", "top/mine.txt"]
    assert os.readlink(str(target / "top" / "alias")) == "data.bin"


@pytest.mark.parametrize("case", ["file over folder", "folder over file", "folder over link"])
def test_file_folder_clash_is_refused_and_removes_nothing(tmp_path, case):
    """Where the archive has a file and the target a folder (or the other way round, or a link
    to a folder, which merging would write through), nothing is moved and nothing removed."""
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "file over folder":
        (target / "docs").mkdir()
        (target / "docs" / "thesis.tex").write_bytes(b"thesis")
        members = [("first.txt", "file", b"1"), ("docs", "file", b"a file now")]
    elif case == "folder over file":
        (target / "docs").write_bytes(b"thesis")
        members = [("first.txt", "file", b"1"), ("docs/readme.txt", "file", b"readme")]
    else:
        os.symlink(str(outside), str(target / "docs"))
        members = [("first.txt", "file", b"1"), ("docs/readme.txt", "file", b"readme")]
    before = tree(str(target))
    archive = _crafted_tar(str(tmp_path / "clash.tar"), members)
    with pytest.raises(DataFileError, match="nothing was extracted and nothing removed"):
        extract_archive(archive, str(target))
    assert tree(str(target)) == before
    if case == "file over folder":
        assert read_bytes(str(target / "docs" / "thesis.tex")) == b"thesis"
    assert os.listdir(str(outside)) == []
