"""Persistent state of the local Hub: repos, commits and refs in SQLite, file contents as content-addressed blobs.

A commit stores its whole tree (path -> blob entry), so any revision can be served without walking history, and a
commit becomes visible only when its ref moves, inside one SQLite transaction: a push is atomic. LFS objects are
scoped to the repo they were uploaded to, so an oid is no capability to read another repo's file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (repo_id TEXT PRIMARY KEY, private INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    oid TEXT PRIMARY KEY, repo_id TEXT NOT NULL, parent TEXT, title TEXT NOT NULL, message TEXT NOT NULL,
    author TEXT NOT NULL, created_at TEXT NOT NULL, tree TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (
    repo_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, oid TEXT NOT NULL,
    PRIMARY KEY (repo_id, kind, name));
CREATE TABLE IF NOT EXISTS repo_lfs (
    repo_id TEXT NOT NULL, oid TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (repo_id, oid));
"""

LFS_SUFFIXES = {".onnx", ".onnx_data", ".bin", ".safetensors", ".mnn", ".pt", ".h5", ".msgpack", ".png", ".tflite",
                ".parquet", ".arrow"}
LFS_MIN_SIZE = 10 * 1024 * 1024


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def wants_lfs(path: str, size: int) -> bool:
    return Path(path).suffix in LFS_SUFFIXES or size >= LFS_MIN_SIZE


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str

    def as_json(self) -> dict:
        return {"sha256": self.sha256, "size": self.size, "lfs": self.lfs, "git_oid": self.git_oid}


@dataclass(frozen=True)
class Commit:
    oid: str
    repo_id: str
    parent: str | None
    title: str
    message: str
    author: str
    created_at: str
    tree: dict[str, Entry]


class ConflictError(Exception):
    """The branch moved since the client's parent commit."""


class RefusedTarget(Exception):
    """A commit names a ref it cannot move: a tag, a bare commit oid, or a pull request that does not exist."""


def commit_target(revision: str) -> tuple[str, str]:
    """The ref a commit moves: `main` and `refs/heads/main` -> ("branch", "main"), `refs/pr/3` -> ("pr", "3")."""
    if revision.startswith("refs/pr/"):
        number = revision.removeprefix("refs/pr/")
        if not number.isdigit():
            raise RefusedTarget(f"{revision} is not a pull request ref")
        return "pr", number
    if revision.startswith("refs/heads/"):
        return "branch", revision.removeprefix("refs/heads/")
    if revision.startswith("refs/"):
        raise RefusedTarget(f"cannot commit to {revision}: only branches and open pull requests take commits")
    return "branch", revision


class HubStore:
    """Repos, commits, refs and blobs on disk. Safe to share between the server's worker threads."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "hub.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    # blobs
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256[2:]

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha256

    def put_lfs_stream(self, repo_id: str, expected_sha256: str, expected_size: int, *, chunks) -> None:
        """Store an LFS upload for `repo_id` only if its content has the announced oid and size."""
        digest = hashlib.sha256()
        tmp = self.blob_dir / f"upload-{expected_sha256}-{threading.get_ident()}-{time.monotonic_ns()}"
        size = 0
        try:
            with tmp.open("wb") as fh:
                for chunk in chunks:
                    size += len(chunk)
                    if size > expected_size:
                        raise ValueError(f"upload is larger than the announced {expected_size} bytes")
                    digest.update(chunk)
                    fh.write(chunk)
            if size != expected_size or digest.hexdigest() != expected_sha256:
                raise ValueError(f"uploaded content ({size} bytes, sha256 {digest.hexdigest()}) is not "
                                 f"the announced {expected_size} bytes with sha256 {expected_sha256}")
            path = self.blob_path(expected_sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO repo_lfs VALUES (?, ?, ?)", (repo_id, expected_sha256, size))

    def has_lfs(self, repo_id: str, sha256: str, size: int) -> bool:
        """Whether `repo_id` may reference this LFS object: it was uploaded to that repo."""
        row = self._one("SELECT 1 FROM repo_lfs WHERE repo_id=? AND oid=? AND size=?", (repo_id, sha256, size))
        return row is not None

    # repos
    def create_repo(self, repo_id: str, private: bool, author: str) -> bool:
        """Create a repo with an initial commit on main; False if it already exists."""
        with self._lock:
            if self.repo_exists(repo_id):
                return False
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO repos VALUES (?, ?, ?)", (repo_id, int(private), now_iso()))
            gitattributes = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in sorted(LFS_SUFFIXES))
            data = gitattributes.encode()
            entry = Entry(self.put_blob(data), len(data), False, git_blob_oid(data))
            oid = self._insert_commit(repo_id, None, "initial commit", message="", author=author,
                                      tree={".gitattributes": entry})
            self._db.execute("INSERT INTO refs VALUES (?, 'branch', 'main', ?)", (repo_id, oid))
            self._db.execute("COMMIT")
            return True

    def delete_repo(self, repo_id: str) -> bool:
        with self._lock:
            if not self.repo_exists(repo_id):
                return False
            self._db.execute("BEGIN")
            for table in ("repos", "commits", "refs", "repo_lfs"):
                self._db.execute(f"DELETE FROM {table} WHERE repo_id=?", (repo_id,))
            self._db.execute("COMMIT")
            return True

    def repo_exists(self, repo_id: str) -> bool:
        return self._one("SELECT 1 FROM repos WHERE repo_id=?", (repo_id,)) is not None

    def repo_row(self, repo_id: str) -> tuple | None:
        return self._one("SELECT private, created_at FROM repos WHERE repo_id=?", (repo_id,))

    # refs and commits
    def refs(self, repo_id: str) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT kind, name, oid FROM refs WHERE repo_id=? ORDER BY kind, name", (repo_id,)
            ).fetchall()

    def _one(self, sql: str, params: tuple) -> tuple | None:
        """Reads share the writers' lock: one connection serves every thread, and must not read mid-transaction."""
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _ref(self, repo_id: str, kind: str, name: str) -> str | None:
        row = self._one("SELECT oid FROM refs WHERE repo_id=? AND kind=? AND name=?", (repo_id, kind, name))
        return row[0] if row else None

    def resolve(self, repo_id: str, revision: str) -> str | None:
        """Branch, tag, refs/pr/N or full commit oid -> commit oid."""
        if revision.startswith("refs/pr/"):
            kind, name = "pr", revision.removeprefix("refs/pr/")
        elif revision.startswith("refs/heads/"):
            kind, name = "branch", revision.removeprefix("refs/heads/")
        elif revision.startswith("refs/tags/"):
            kind, name = "tag", revision.removeprefix("refs/tags/")
        else:
            kind, name = None, revision
        for k in ([kind] if kind else ["branch", "tag"]):
            oid = self._ref(repo_id, k, name)
            if oid:
                return oid
        if kind is None and len(revision) == 40:
            row = self._one("SELECT oid FROM commits WHERE repo_id=? AND oid=?", (repo_id, revision))
            if row:
                return row[0]
        return None

    def commit(self, oid: str) -> Commit:
        row = self._one(
            "SELECT oid, repo_id, parent, title, message, author, created_at, tree FROM commits WHERE oid=?", (oid,)
        )
        tree = {path: Entry(**value) for path, value in json.loads(row[7]).items()}
        return Commit(*row[:7], tree=tree)

    def history(self, oid: str) -> list[Commit]:
        commits = []
        current: str | None = oid
        while current:
            commit = self.commit(current)
            commits.append(commit)
            current = commit.parent
        return commits

    def _insert_commit(self, repo_id, parent, title, *, message, author, tree: dict[str, Entry]) -> str:
        created = now_iso()
        tree_json = json.dumps({p: e.as_json() for p, e in sorted(tree.items())}, sort_keys=True)
        oid = hashlib.sha1(f"{repo_id}\n{parent}\n{title}\n{message}\n{created}\n{tree_json}".encode()).hexdigest()
        self._db.execute(
            "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (oid, repo_id, parent, title, message, author, created, tree_json),
        )
        return oid

    def apply_commit(
        self,
        repo_id: str,
        revision: str,
        title: str,
        *,
        message: str,
        author: str,
        additions: dict[str, Entry],
        deletions: list[str],
        expected_parent: str | None,
        create_pr: bool,
    ) -> tuple[str, int | None]:
        """Write one commit and move the ref `revision` names in a single transaction.

        Returns (oid, pr number or None). A branch or an existing `refs/pr/N` moves; with `create_pr` a new pull
        request starts from the branch. A tag or a commit oid raises RefusedTarget, an unknown branch KeyError.
        """
        kind, name = commit_target(revision)
        if create_pr and kind != "branch":
            raise RefusedTarget("a pull request starts from a branch")
        with self._lock:
            head = self._branch_head(repo_id, revision, kind, name=name)
            if expected_parent is not None and expected_parent != head:
                raise ConflictError(f"{revision} is at {head}, not at parent commit {expected_parent}")
            tree = _changed_tree(dict(self.commit(head).tree), additions, deletions)
            self._db.execute("BEGIN")
            try:
                oid = self._insert_commit(repo_id, head, title, message=message, author=author, tree=tree)
                pr_num = self._open_pr(repo_id, oid) if create_pr else None
                if not create_pr:
                    self._db.execute(
                        "UPDATE refs SET oid=? WHERE repo_id=? AND kind=? AND name=?", (oid, repo_id, kind, name)
                    )
                self._db.execute("COMMIT")
            except Exception:
                self._db.execute("ROLLBACK")
                raise
            return oid, pr_num

    def _branch_head(self, repo_id: str, revision: str, kind: str, *, name: str) -> str:
        """The commit a branch or pull request points at; a tag, a commit oid or an unknown ref is refused."""
        head = self._ref(repo_id, kind, name)
        if head is None:
            if self.resolve(repo_id, revision) is not None:
                raise RefusedTarget(f"{revision} is a tag or a commit, not a branch: commits move branches only")
            if kind == "pr":
                raise RefusedTarget(f"pull request {name} does not exist")
            raise KeyError(revision)
        return head

    def _open_pr(self, repo_id: str, oid: str) -> int:
        rows = self._db.execute("SELECT name FROM refs WHERE repo_id=? AND kind='pr'", (repo_id,)).fetchall()
        number = max((int(r[0]) for r in rows), default=0) + 1
        self._db.execute("INSERT INTO refs VALUES (?, 'pr', ?, ?)", (repo_id, str(number), oid))
        return number

    def create_ref(self, repo_id: str, kind: str, name: str, *, oid: str) -> bool:
        """Create a tag or branch; False if one of that name exists."""
        with self._lock:
            if self._ref(repo_id, kind, name) is not None:
                return False
            self._db.execute("INSERT INTO refs VALUES (?, ?, ?, ?)", (repo_id, kind, name, oid))
            return True

    def delete_ref(self, repo_id: str, kind: str, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM refs WHERE repo_id=? AND kind=? AND name=?", (repo_id, kind, name))
            return cur.rowcount > 0


def _changed_tree(tree: dict[str, Entry], additions: dict[str, Entry], deletions: list[str]) -> dict[str, Entry]:
    """`tree` with `deletions` (a path, or a folder ending in '/') removed and `additions` written."""
    for path in deletions:
        if path.endswith("/"):
            tree = {p: e for p, e in tree.items() if not p.startswith(path)}
        elif path in tree:
            del tree[path]
        else:
            raise FileNotFoundError(path)
    tree.update(additions)
    return tree
