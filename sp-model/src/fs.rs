//! The model's file systems: a rumpfs root and tmpfs mounts, one tree of
//! nodes behind one lock.
//!
//! As in a stock `rump_server -lrumpvfs -lrumpfs_tmpfs`, the root file
//! system is rumpfs holding `/dev` (with `null` and `zero`) and `/tmp`, and
//! `mount("tmpfs", …)` puts a fresh tmpfs on a directory. The two kinds
//! answer `stat` and `getdents` the way their NetBSD counterparts do, and
//! differ where those differ:
//!
//! | | rumpfs (the root) | tmpfs |
//! | --- | --- | --- |
//! | `st_dev` | the node's own inode number (rumpfs sets `va_fsid` to it) | `makedev(171, n)` for the `n`th tmpfs mounted |
//! | directory size, blocks, blksize | 512, 1, 512 | 48 bytes per entry, pages of 4096 in 512-byte blocks, 4096 |
//! | file blocks, blksize | 1, 512 | pages of 4096 in 512-byte blocks, 4096 |
//! | directory links | always 2 | 2 + subdirectories |
//! | `getdents` | no `.` or `..`; newest entry first; offsets count entries | `.`, `..`, then oldest first; offsets are per-entry sequence numbers (0 `.`, 1 `..`, 2 end, 3… entries) |
//! | link, rename | `EOPNOTSUPP` | yes |
//! | read past the end | zeros up to the end of the last page, `EINVAL` beyond | nothing |
//!
//! Path lookup follows NetBSD's `namei`: components over 255 bytes are
//! `ENAMETOOLONG`; symbolic links are followed in every component but the
//! last, in the last when the call follows links or a `/` follows, at most
//! 32 times (`ELOOP`); a link to nothing is `ENOENT`; a link whose text and
//! the rest of the path reach 1024 bytes is `ENAMETOOLONG`; `..` at the root
//! stays there and leaves a mounted file system through the directory it
//! covers; a call that would create, remove or rename the root or a mount
//! point gets `EEXIST` (create) or `EBUSY`.
//!
//! Nodes are kept by inode number. A node lives while a directory links it
//! or something holds a [`VnodeRef`] to it (an open file, a current
//! directory), so an unlinked file stays readable through its descriptors,
//! as in a real kernel.
//!
//! Lock rule: a [`VnodeRef`] takes the fs lock when dropped or cloned, so
//! none is ever dropped while the fs lock is held. Functions here that hand
//! out a reference count it under the lock and build the [`VnodeRef`] only
//! after unlocking.

use parking_lot::Mutex;
use sp_proto::abi::{dt, mode, Dirent, Errno, Stat};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An inode number.
pub(crate) type Ino = u64;

/// Inode number of the root directory (rumpfs numbers its nodes from 3).
pub(crate) const ROOT_INO: Ino = 3;
/// Longest path accepted, NUL excluded (NetBSD's MAXPATHLEN - 1).
pub(crate) const PATH_MAX: usize = 1023;
/// Longest path component (NetBSD's KERNEL_NAME_MAX).
pub(crate) const NAME_MAX: usize = 255;
/// Symbolic links one lookup follows (NetBSD's MAXSYMLINKS).
pub(crate) const MAXSYMLINKS: u32 = 32;
/// NetBSD's `NODEV`: `st_rdev` of anything but a device.
pub(crate) const NODEV: u64 = u64::MAX;
/// `st_rdev` of `/dev/null`: NetBSD's makedev(2, 2).
pub(crate) const NULL_RDEV: u64 = makedev(2, 2);
/// `st_rdev` of `/dev/zero`: NetBSD's makedev(2, 12).
pub(crate) const ZERO_RDEV: u64 = makedev(2, 12);
/// Major number of a tmpfs `st_dev` (NetBSD's makefstype("tmpfs")).
const TMPFS_MAJOR: u64 = 171;
/// `S_IFLNK`.
pub(crate) const S_IFLNK: u32 = 0o120000;
/// `DT_LNK`.
const DT_LNK: u8 = 10;
/// NetBSD's EFTYPE: open(O_NOFOLLOW) of a symbolic link.
pub(crate) const EFTYPE: Errno = Errno(79);
/// rumpfs's block size (DEV_BSIZE), also its directory and device size.
const DEV_BSIZE: i64 = 512;
/// tmpfs's block size and allocation unit.
const PAGE_SIZE: i64 = 4096;
/// `sizeof(struct tmpfs_dirent)` on LP64: what each entry adds to a tmpfs
/// directory's size.
const TMPFS_DIRENT_SIZE: i64 = 48;
/// tmpfs directory offsets.
const SEQ_DOT: u64 = 0;
const SEQ_DOTDOT: u64 = 1;
const SEQ_EOF: u64 = 2;
const SEQ_START: u64 = 3;
/// Most bytes one getdents returns (NetBSD's MAXBSIZE).
const MAXBSIZE: usize = 65536;
/// Seconds of logical time 0: times are a counter, not the host's clock.
const TIME_BASE: i64 = 1_700_000_000;
/// The kernel's boot time (the console's times).
pub(crate) const BOOT_TIME: i64 = TIME_BASE;
/// Default capacity of the file system: total bytes of all regular files.
pub(crate) const DEFAULT_CAPACITY: u64 = 1 << 30;
/// `ALLPERMS`.
const ALLPERMS: u32 = 0o7777;

/// NetBSD's `makedev`.
pub(crate) const fn makedev(major: u64, minor: u64) -> u64 {
    ((major << 8) & 0x000f_ff00) | ((minor << 12) & 0xfff0_0000) | (minor & 0xff)
}

/// The two file system types.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FsType {
    /// The root file system.
    Rumpfs,
    /// A mounted tmpfs.
    Tmpfs,
}

/// A mounted file system.
struct Mount {
    fstype: FsType,
    /// Its `st_dev` (tmpfs only; rumpfs reports each node's number).
    dev: u64,
    root: Ino,
    /// The directory it is mounted on (`None` for the root file system).
    covered: Option<Ino>,
    /// Bytes its regular files may hold (`ta_size_max`), and hold.
    limit: u64,
    used: u64,
}

/// A device node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Device {
    /// `/dev/null`: reads nothing, takes every write.
    Null,
    /// `/dev/zero`: reads zeros, takes every write.
    Zero,
}

/// A time, as `struct timespec`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Ts {
    pub(crate) sec: i64,
    pub(crate) nsec: i64,
}

/// A directory entry.
struct Ent {
    name: Vec<u8>,
    ino: Ino,
}

/// A directory: its entries by sequence number (creation order), an index
/// by name, and its parent (itself for a file system's root).
struct Dir {
    entries: BTreeMap<u64, Ent>,
    names: HashMap<Vec<u8>, u64>,
    parent: Ino,
    next_seq: u64,
    /// The file system mounted on this directory.
    mounted: Option<usize>,
}

impl Dir {
    fn new(parent: Ino) -> Dir {
        Dir {
            entries: BTreeMap::new(),
            names: HashMap::new(),
            parent,
            next_seq: SEQ_START,
            mounted: None,
        }
    }

    fn get(&self, name: &[u8]) -> Option<Ino> {
        self.names
            .get(name)
            .and_then(|s| self.entries.get(s))
            .map(|e| e.ino)
    }

    fn insert(&mut self, name: Vec<u8>, ino: Ino) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.names.insert(name.clone(), seq);
        self.entries.insert(seq, Ent { name, ino });
    }

    fn remove(&mut self, name: &[u8]) -> Option<Ino> {
        let seq = self.names.remove(name)?;
        self.entries.remove(&seq).map(|e| e.ino)
    }

    fn rename_in_place(&mut self, from: &[u8], to: Vec<u8>) {
        if let Some(seq) = self.names.remove(from) {
            if let Some(e) = self.entries.get_mut(&seq) {
                e.name = to.clone();
            }
            self.names.insert(to, seq);
        }
    }
}

/// What a node is.
enum NodeKind {
    Dir(Dir),
    File(Vec<u8>),
    Link(Vec<u8>),
    Dev(Device),
}

/// One node of the tree.
struct Node {
    kind: NodeKind,
    /// The mount it belongs to.
    mnt: usize,
    /// Permission bits (07777).
    perm: u32,
    uid: u32,
    gid: u32,
    /// Links from directories (plus `.` for directories).
    nlink: u32,
    /// Live [`VnodeRef`]s.
    refs: usize,
    atime: Ts,
    mtime: Ts,
    ctime: Ts,
    btime: Ts,
}

impl Node {
    fn kind(&self) -> Kind {
        match &self.kind {
            NodeKind::Dir(_) => Kind::Dir,
            NodeKind::File(_) => Kind::File,
            NodeKind::Link(_) => Kind::Link,
            NodeKind::Dev(d) => Kind::Dev(*d),
        }
    }

    fn d_type(&self) -> u8 {
        match self.kind {
            NodeKind::Dir(_) => dt::DT_DIR,
            NodeKind::File(_) => dt::DT_REG,
            NodeKind::Link(_) => DT_LNK,
            NodeKind::Dev(_) => dt::DT_CHR,
        }
    }

    fn dir(&self) -> Option<&Dir> {
        match &self.kind {
            NodeKind::Dir(d) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self) -> Option<&mut Dir> {
        match &mut self.kind {
            NodeKind::Dir(d) => Some(d),
            _ => None,
        }
    }
}

/// The kind of a node, for callers outside the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Dir,
    File,
    Link,
    Dev(Device),
}

/// What a lookup is for (NetBSD's `nameiop`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Lookup,
    Create,
    Delete,
    Rename,
}

/// How to look a path up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Nd {
    op: Op,
    /// Follow a symbolic link in the last component.
    follow: bool,
    /// Creating a directory (a trailing `/` is then fine).
    createdir: bool,
}

impl Nd {
    /// A lookup that follows the last component.
    pub(crate) const FOLLOW: Nd = Nd {
        op: Op::Lookup,
        follow: true,
        createdir: false,
    };
    /// A lookup that does not follow the last component.
    pub(crate) const NOFOLLOW: Nd = Nd {
        op: Op::Lookup,
        follow: false,
        createdir: false,
    };
}

/// What a lookup found: the directory searched last (`None` for `/` or
/// after crossing into a mounted file system), the last component, and the
/// node it names (`None` if it may be created).
struct Found {
    dir: Option<Ino>,
    name: Vec<u8>,
    node: Option<Ino>,
}

/// What `VOP_LOOKUP` found.
enum Look {
    Found(Ino),
    /// Not there, and may be created (`EJUSTRETURN`).
    Missing,
}

/// What `open` should do, decoded from its flags.
pub(crate) struct OpenHow {
    pub(crate) create: bool,
    pub(crate) excl: bool,
    pub(crate) trunc: bool,
    pub(crate) directory: bool,
    pub(crate) nofollow: bool,
    /// Opened for writing.
    pub(crate) write: bool,
    /// Permission bits for a created file, umask already applied.
    pub(crate) perm: u32,
}

/// What `read` found at a node.
pub(crate) enum ReadOut {
    /// Bytes of a regular file (or nothing, for `/dev/null`).
    Data(Vec<u8>),
    /// `/dev/zero`: this many zeros.
    Zeros(usize),
    /// The node is a directory.
    IsDir,
}

/// An attribute change (`VOP_SETATTR`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum SetAttr {
    /// chmod: the permission bits (masked to 07777).
    Mode(u32),
    /// truncate: the size (not negative: the calls check).
    Size(u64),
    /// utimes: access and modification times; `None` leaves one as it
    /// is; both `None` means "now".
    Times(Option<Ts>, Option<Ts>),
}

/// The arguments of a tmpfs mount (`struct tmpfs_args`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TmpfsArgs {
    pub(crate) size_max: i64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
}

/// The file system: the tree behind a lock, and the inode counter.
pub(crate) struct Fs {
    inner: Mutex<FsInner>,
    next_ino: AtomicU64,
}

pub(crate) struct FsInner {
    nodes: HashMap<Ino, Node>,
    mounts: Vec<Mount>,
    tmpfs_mounts: u64,
    /// Bytes held by regular files, and the most they may hold.
    used: u64,
    capacity: u64,
    tick: i64,
}

/// A counted reference to a node: keeps it alive after an unlink.
pub(crate) struct VnodeRef {
    fs: Arc<Fs>,
    ino: Ino,
}

impl VnodeRef {
    /// Adopts a reference already counted under the fs lock.
    fn adopt(fs: &Arc<Fs>, ino: Ino) -> VnodeRef {
        VnodeRef {
            fs: fs.clone(),
            ino,
        }
    }

    /// The node's inode number.
    pub(crate) fn ino(&self) -> Ino {
        self.ino
    }

    /// The file system the node belongs to.
    pub(crate) fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }
}

impl Clone for VnodeRef {
    fn clone(&self) -> VnodeRef {
        let mut g = self.fs.inner.lock();
        if let Some(n) = g.nodes.get_mut(&self.ino) {
            n.refs += 1;
        }
        drop(g);
        VnodeRef::adopt(&self.fs, self.ino)
    }
}

impl Drop for VnodeRef {
    fn drop(&mut self) {
        let mut g = self.fs.inner.lock();
        if let Some(n) = g.nodes.get_mut(&self.ino) {
            n.refs = n.refs.saturating_sub(1);
        }
        g.collect(self.ino);
    }
}

fn round_page(n: i64) -> i64 {
    (n + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE
}

impl FsInner {
    fn now(&mut self) -> Ts {
        self.tick += 1;
        Ts {
            sec: TIME_BASE + self.tick,
            nsec: 0,
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn fstype(&self, ino: Ino) -> Result<FsType, Errno> {
        let m = self.node(ino)?.mnt;
        Ok(self.mounts[m].fstype)
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.nodes.get(&ino).is_some_and(|n| n.dir().is_some())
    }

    /// The root of a file system (the root directory or a mount's root).
    fn is_fs_root(&self, ino: Ino) -> bool {
        self.nodes
            .get(&ino)
            .is_some_and(|n| self.mounts[n.mnt].root == ino)
    }

    /// The directory a mount root covers.
    fn covered_of(&self, ino: Ino) -> Option<Ino> {
        let n = self.nodes.get(&ino)?;
        let m = &self.mounts[n.mnt];
        (m.root == ino).then_some(m.covered).flatten()
    }

    /// The root of what is mounted on `ino`.
    fn mounted_root(&self, ino: Ino) -> Option<Ino> {
        let m = self.nodes.get(&ino)?.dir()?.mounted?;
        Some(self.mounts[m].root)
    }

    /// Frees a node nothing links or references.
    fn collect(&mut self, ino: Ino) {
        let dead = self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.nlink == 0 && n.refs == 0);
        if dead {
            if let Some(Node {
                kind: NodeKind::File(data),
                mnt,
                ..
            }) = self.nodes.remove(&ino)
            {
                self.used -= data.len() as u64;
                self.mounts[mnt].used -= data.len() as u64;
            }
        }
    }

    /// NetBSD's `VOP_LOOKUP` of one component in directory `dir`.
    fn vop_lookup(&self, dir: Ino, name: &[u8], op: Op, last: bool) -> Result<Look, Errno> {
        let n = self.node(dir)?;
        let d = n.dir().ok_or(Errno::ENOTDIR)?;
        let rename_last = last && op == Op::Rename;
        match self.mounts[n.mnt].fstype {
            FsType::Tmpfs => {
                if n.nlink == 0 {
                    // A removed directory is empty, without even . and ..
                    return Err(Errno::ENOENT);
                }
                match name {
                    b".." if rename_last => Err(Errno::EINVAL),
                    b".." => Ok(Look::Found(d.parent)),
                    b"." if rename_last => Err(Errno::EISDIR),
                    b"." => Ok(Look::Found(dir)),
                    _ => match d.get(name) {
                        None if last && matches!(op, Op::Create | Op::Rename) => Ok(Look::Missing),
                        None => Err(Errno::ENOENT),
                        Some(i) => {
                            let k = self.node(i)?.kind();
                            if !last && !matches!(k, Kind::Dir | Kind::Link) {
                                return Err(Errno::ENOTDIR);
                            }
                            Ok(Look::Found(i))
                        }
                    },
                }
            }
            FsType::Rumpfs => {
                if name == b"." {
                    return Ok(Look::Found(dir));
                }
                if rename_last {
                    // rumpfs does not rename.
                    return Err(Errno::EOPNOTSUPP);
                }
                if name == b".." {
                    return if n.nlink == 0 {
                        Err(Errno::ENOENT)
                    } else {
                        Ok(Look::Found(d.parent))
                    };
                }
                match d.get(name) {
                    None if last && op == Op::Create => Ok(Look::Missing),
                    None => Err(Errno::ENOENT),
                    Some(i) => Ok(Look::Found(i)),
                }
            }
        }
    }

    /// NetBSD's `namei`: resolves `path` from `cwd`.
    fn namei(&self, cwd: Ino, path: &[u8], nd: Nd) -> Result<Found, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() > PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut buf = path.to_vec();
        let mut pos = 0;
        let mut dir = if buf[0] == b'/' { ROOT_INO } else { cwd };
        let mut loops = 0;
        loop {
            while buf.get(pos) == Some(&b'/') {
                pos += 1;
            }
            if pos == buf.len() {
                // "/" (or a link to it with nothing after): the directory
                // itself, with no parent to change.
                return self.finish(
                    nd,
                    Found {
                        dir: None,
                        name: Vec::new(),
                        node: Some(dir),
                    },
                );
            }
            let end = buf[pos..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(buf.len(), |i| pos + i);
            let name = buf[pos..end].to_vec();
            if name.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let next = buf[end..]
                .iter()
                .position(|&b| b != b'/')
                .map_or(buf.len(), |i| end + i);
            let requiredir = next > end;
            let last = next == buf.len();
            let op = if last { nd.op } else { Op::Lookup };

            let mut search = Some(dir);
            let look = if name == b".." && dir == ROOT_INO {
                Look::Found(dir)
            } else if name == b".." {
                // Leave mounted file systems through the directories they
                // cover.
                let mut d = dir;
                while let Some(c) = self.covered_of(d) {
                    d = c;
                }
                search = Some(d);
                self.vop_lookup(d, &name, op, last)?
            } else {
                self.vop_lookup(dir, &name, op, last)?
            };
            let Look::Found(mut found) = look else {
                if requiredir && !nd.createdir {
                    return Err(Errno::ENOENT);
                }
                return Ok(Found {
                    dir: search,
                    name,
                    node: None,
                });
            };
            while let Some(r) = self.mounted_root(found) {
                found = r;
                search = None;
            }
            if let NodeKind::Link(target) = &self.node(found)?.kind {
                if requiredir || nd.follow {
                    if loops >= MAXSYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    loops += 1;
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    let rest = &buf[end..];
                    if target.len() + rest.len() + 1 > PATH_MAX {
                        return Err(Errno::ENAMETOOLONG);
                    }
                    let mut nb = target.clone();
                    nb.extend_from_slice(rest);
                    buf = nb;
                    pos = 0;
                    dir = if buf[0] == b'/' {
                        ROOT_INO
                    } else {
                        search.ok_or(Errno::ENOTDIR)?
                    };
                    continue;
                }
            }
            if requiredir && !self.is_dir(found) {
                return Err(Errno::ENOTDIR);
            }
            if last {
                return self.finish(
                    nd,
                    Found {
                        dir: search,
                        name,
                        node: Some(found),
                    },
                );
            }
            dir = found;
            pos = next;
        }
    }

    /// A call that changes a directory cannot change the root or a mount
    /// point: `EEXIST` to create it, `EBUSY` to remove or rename it.
    fn finish(&self, nd: Nd, f: Found) -> Result<Found, Errno> {
        if let (Some(node), true) = (f.node, nd.op != Op::Lookup) {
            let same = f
                .dir
                .and_then(|d| self.nodes.get(&d))
                .zip(self.nodes.get(&node))
                .is_some_and(|(d, n)| d.mnt == n.mnt);
            if !same {
                return Err(if nd.op == Op::Create {
                    Errno::EEXIST
                } else {
                    Errno::EBUSY
                });
            }
        }
        Ok(f)
    }

    /// The node `path` names.
    fn lookup(&self, cwd: Ino, path: &[u8], nd: Nd) -> Result<Ino, Errno> {
        self.namei(cwd, path, nd)?.node.ok_or(Errno::ENOENT)
    }

    fn touch_dir(&mut self, dir: Ino) {
        let now = self.now();
        if let Some(d) = self.nodes.get_mut(&dir) {
            d.mtime = now;
            d.ctime = now;
        }
    }

    /// Links `ino` into `dir` as `name` (a new entry, at the end).
    fn attach(&mut self, dir: Ino, name: Vec<u8>, ino: Ino) -> Result<(), Errno> {
        let is_dir = self.is_dir(ino);
        let tmpfs = self.fstype(dir)? == FsType::Tmpfs;
        self.node_mut(dir)?
            .dir_mut()
            .ok_or(Errno::ENOTDIR)?
            .insert(name, ino);
        if is_dir {
            if let Some(NodeKind::Dir(d)) = self.nodes.get_mut(&ino).map(|n| &mut n.kind) {
                d.parent = dir;
            }
            if tmpfs {
                self.node_mut(dir)?.nlink += 1;
            }
        }
        self.touch_dir(dir);
        Ok(())
    }

    /// Unlinks entry `name` of `dir` (naming `ino`).
    fn detach(&mut self, dir: Ino, name: &[u8], ino: Ino) -> Result<(), Errno> {
        self.node_mut(dir)?
            .dir_mut()
            .ok_or(Errno::ENOTDIR)?
            .remove(name)
            .ok_or(Errno::ENOENT)?;
        if self.is_dir(ino) && self.fstype(dir)? == FsType::Tmpfs {
            let d = self.node_mut(dir)?;
            d.nlink = d.nlink.saturating_sub(1);
        }
        self.touch_dir(dir);
        Ok(())
    }

    /// Drops a link to `ino` (all of a directory's).
    fn unlinked(&mut self, ino: Ino) {
        let now = self.now();
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = if n.dir().is_some() {
                0
            } else {
                n.nlink.saturating_sub(1)
            };
            n.ctime = now;
        }
        self.collect(ino);
    }

    /// A new node in `dir` named `name`.
    fn create(
        &mut self,
        fs: &Fs,
        dir: Ino,
        name: Vec<u8>,
        kind: NodeKind,
        perm: u32,
    ) -> Result<Ino, Errno> {
        let d = self.node(dir)?;
        let (mnt, gid) = (d.mnt, d.gid);
        let gid = if self.mounts[mnt].fstype == FsType::Tmpfs {
            gid
        } else {
            0
        };
        let ino = fs.new_ino();
        self.add_node(ino, mnt, kind, perm, 0, gid);
        self.attach(dir, name, ino)?;
        Ok(ino)
    }

    fn add_node(&mut self, ino: Ino, mnt: usize, kind: NodeKind, perm: u32, uid: u32, gid: u32) {
        let now = self.now();
        let nlink = if matches!(kind, NodeKind::Dir(_)) {
            2
        } else {
            1
        };
        self.nodes.insert(
            ino,
            Node {
                kind,
                mnt,
                perm: perm & ALLPERMS,
                uid,
                gid,
                nlink,
                refs: 0,
                atime: now,
                mtime: now,
                ctime: now,
                btime: now,
            },
        );
    }

    /// Whether directory `ino` is `anc` or lies below it.
    fn is_under(&self, mut ino: Ino, anc: Ino) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.nodes.get(&ino).and_then(Node::dir) {
                Some(d) if d.parent != ino => ino = d.parent,
                _ => return false,
            }
        }
    }

    /// Resizes a regular file, within the capacity of the file system and
    /// of its mount.
    fn resize(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let (used, cap) = (self.used, self.capacity);
        let now = self.now();
        let n = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let NodeKind::File(data) = &mut n.kind else {
            return Ok(());
        };
        let m = &mut self.mounts[n.mnt];
        let old = data.len() as u64;
        if len > old {
            let more = len - old;
            if used + more > cap || m.used + more > m.limit {
                return Err(Errno::ENOSPC);
            }
        }
        let len_usize = usize::try_from(len).map_err(|_| Errno::ENOSPC)?;
        data.resize(len_usize, 0);
        n.mtime = now;
        n.ctime = now;
        self.used = used - old + len;
        m.used = m.used - old + len;
        Ok(())
    }

    fn setattr(&mut self, ino: Ino, attr: SetAttr) -> Result<(), Errno> {
        let tmpfs = self.fstype(ino)? == FsType::Tmpfs;
        match attr {
            SetAttr::Mode(m) => {
                let now = self.now();
                let n = self.node_mut(ino)?;
                n.perm = m & ALLPERMS;
                n.ctime = now;
                Ok(())
            }
            SetAttr::Size(len) => match self.node(ino)?.kind() {
                Kind::File => {
                    let cur = match &self.node(ino)?.kind {
                        NodeKind::File(d) => d.len() as u64,
                        _ => 0,
                    };
                    if cur == len {
                        return Ok(());
                    }
                    self.resize(ino, len)
                }
                Kind::Dir if tmpfs => Err(Errno::EISDIR),
                Kind::Link if tmpfs => Err(Errno::EOPNOTSUPP),
                _ => Ok(()),
            },
            SetAttr::Times(a, m) => {
                let now = self.now();
                let n = self.node_mut(ino)?;
                if a.is_none() && m.is_none() {
                    n.atime = now;
                    n.mtime = now;
                } else {
                    // A time of -1 seconds (VNOVAL) is left as it is.
                    if let Some(a) = a.filter(|t| t.sec != -1) {
                        n.atime = a;
                    }
                    if let Some(m) = m.filter(|t| t.sec != -1) {
                        n.mtime = m;
                    }
                }
                n.ctime = now;
                Ok(())
            }
        }
    }

    fn stat_node(&self, ino: Ino) -> Result<Stat, Errno> {
        let n = self.node(ino)?;
        let m = &self.mounts[n.mnt];
        let tmpfs = m.fstype == FsType::Tmpfs;
        let (ty, size, rdev) = match &n.kind {
            NodeKind::Dir(d) if tmpfs => (
                mode::S_IFDIR,
                d.entries.len() as i64 * TMPFS_DIRENT_SIZE,
                NODEV,
            ),
            NodeKind::Dir(_) => (mode::S_IFDIR, DEV_BSIZE, NODEV),
            NodeKind::File(data) => (mode::S_IFREG, data.len() as i64, NODEV),
            NodeKind::Link(t) => (S_IFLNK, t.len() as i64, NODEV),
            NodeKind::Dev(Device::Null) => (mode::S_IFCHR, DEV_BSIZE, NULL_RDEV),
            NodeKind::Dev(Device::Zero) => (mode::S_IFCHR, DEV_BSIZE, ZERO_RDEV),
        };
        let (dev, nlink, blocks, blksize) = if tmpfs {
            (m.dev, n.nlink, round_page(size) / 512, PAGE_SIZE as u32)
        } else {
            let nlink = if n.dir().is_some() { 2 } else { 1 };
            (ino, nlink, 1, DEV_BSIZE as u32)
        };
        let mut st = Stat::default();
        st.st_dev.set(dev);
        st.st_mode.set(ty | n.perm);
        st.st_ino.set(ino);
        st.st_nlink.set(nlink);
        st.st_uid.set(n.uid);
        st.st_gid.set(n.gid);
        st.st_rdev.set(rdev);
        for (slot, t) in [
            (&mut st.st_atim, n.atime),
            (&mut st.st_mtim, n.mtime),
            (&mut st.st_ctim, n.ctime),
            (&mut st.st_birthtim, n.btime),
        ] {
            slot.sec.set(t.sec);
            slot.nsec.set(t.nsec);
        }
        st.st_size.set(size);
        st.st_blocks.set(blocks);
        st.st_blksize.set(blksize);
        Ok(st)
    }

    /// Mounts a fresh tmpfs on directory `on`.
    fn mount_tmpfs(&mut self, fs: &Fs, on: Ino, args: TmpfsArgs) -> Result<(), Errno> {
        if !self.is_dir(on) {
            return Err(Errno::ENOTDIR);
        }
        // VNOVAL owner.
        if args.uid == u32::MAX || args.gid == u32::MAX {
            return Err(Errno::EINVAL);
        }
        let limit = if args.size_max < PAGE_SIZE {
            u64::MAX
        } else {
            args.size_max as u64
        };
        self.tmpfs_mounts += 1;
        let root = fs.new_ino();
        let mnt = self.mounts.len();
        self.mounts.push(Mount {
            fstype: FsType::Tmpfs,
            dev: makedev(TMPFS_MAJOR, self.tmpfs_mounts),
            root,
            covered: Some(on),
            limit,
            used: 0,
        });
        self.add_node(
            root,
            mnt,
            NodeKind::Dir(Dir::new(root)),
            args.mode,
            args.uid,
            args.gid,
        );
        if let Some(d) = self.node_mut(on)?.dir_mut() {
            d.mounted = Some(mnt);
        }
        Ok(())
    }
}

impl Fs {
    /// A rumpfs root holding `/dev` (`null`, `zero`) and `/tmp`, whose
    /// regular files may hold `capacity` bytes in all; with a tmpfs
    /// mounted on `/tmp` if `tmpfs_on_tmp`.
    pub(crate) fn new(capacity: u64, tmpfs_on_tmp: bool) -> Arc<Fs> {
        let fs = Arc::new(Fs {
            inner: Mutex::new(FsInner {
                nodes: HashMap::new(),
                mounts: vec![Mount {
                    fstype: FsType::Rumpfs,
                    dev: 0,
                    root: ROOT_INO,
                    covered: None,
                    limit: u64::MAX,
                    used: 0,
                }],
                tmpfs_mounts: 0,
                used: 0,
                capacity,
                tick: 0,
            }),
            next_ino: AtomicU64::new(ROOT_INO + 1),
        });
        {
            let mut g = fs.inner.lock();
            g.add_node(ROOT_INO, 0, NodeKind::Dir(Dir::new(ROOT_INO)), 0o755, 0, 0);
            // In the order (and so with the inode numbers) of a stock
            // rump kernel; mknod applied the kernel's umask 022 to 0666.
            // Fresh nodes under a fresh root: these cannot fail.
            let mk = |g: &mut FsInner, dir, name: &str, kind, perm| {
                g.create(&fs, dir, name.as_bytes().to_vec(), kind, perm)
                    .unwrap_or(dir)
            };
            let dev = mk(&mut g, ROOT_INO, "dev", NodeKind::Dir(Dir::new(0)), 0o755);
            let tmp = mk(&mut g, ROOT_INO, "tmp", NodeKind::Dir(Dir::new(0)), 0o1777);
            mk(&mut g, dev, "null", NodeKind::Dev(Device::Null), 0o644);
            mk(&mut g, dev, "zero", NodeKind::Dev(Device::Zero), 0o644);
            if tmpfs_on_tmp {
                let args = TmpfsArgs {
                    size_max: 0,
                    uid: 0,
                    gid: 0,
                    mode: 0o1777,
                };
                let _ = g.mount_tmpfs(&fs, tmp, args);
            }
        }
        fs
    }

    /// A fresh inode number.
    pub(crate) fn new_ino(&self) -> Ino {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// A reference to the root directory.
    pub(crate) fn root(self: &Arc<Fs>) -> VnodeRef {
        let mut g = self.inner.lock();
        if let Some(n) = g.nodes.get_mut(&ROOT_INO) {
            n.refs += 1;
        }
        drop(g);
        VnodeRef::adopt(self, ROOT_INO)
    }

    /// Resolves `path` from `cwd`, counting a reference to what it names.
    pub(crate) fn lookup_ref(
        self: &Arc<Fs>,
        cwd: Ino,
        path: &[u8],
        nd: Nd,
    ) -> Result<(VnodeRef, Kind), Errno> {
        let (ino, kind) = {
            let mut g = self.inner.lock();
            let ino = g.lookup(cwd, path, nd)?;
            let n = g.node_mut(ino)?;
            n.refs += 1;
            (ino, n.kind())
        };
        Ok((VnodeRef::adopt(self, ino), kind))
    }

    /// The open(2) lookup (NetBSD's `vn_open`): finds or creates the node
    /// `path` names and counts a reference to it.
    pub(crate) fn open(
        self: &Arc<Fs>,
        cwd: Ino,
        path: &[u8],
        how: &OpenHow,
    ) -> Result<VnodeRef, Errno> {
        let ino = {
            let mut g = self.inner.lock();
            let nd = Nd {
                op: if how.create { Op::Create } else { Op::Lookup },
                follow: !(how.nofollow || (how.create && how.excl)),
                createdir: false,
            };
            let f = g.namei(cwd, path, nd)?;
            let (ino, created) = match f.node {
                None => {
                    let dir = f.dir.ok_or(Errno::ENOENT)?;
                    let kind = NodeKind::File(Vec::new());
                    (g.create(self, dir, f.name, kind, how.perm)?, true)
                }
                Some(_) if how.create && how.excl => return Err(Errno::EEXIST),
                Some(n) => (n, false),
            };
            let kind = g.node(ino)?.kind();
            if kind == Kind::Link {
                return Err(EFTYPE);
            }
            if !created {
                if how.directory && kind != Kind::Dir {
                    return Err(Errno::ENOTDIR);
                }
                if (how.write || how.trunc) && kind == Kind::Dir {
                    return Err(Errno::EISDIR);
                }
                if how.trunc {
                    g.setattr(ino, SetAttr::Size(0))?;
                }
            }
            g.node_mut(ino)?.refs += 1;
            ino
        };
        Ok(VnodeRef::adopt(self, ino))
    }

    /// mkdir(2); `perm` has the umask applied.
    pub(crate) fn mkdir(&self, cwd: Ino, path: &[u8], perm: u32) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let nd = Nd {
            op: Op::Create,
            follow: false,
            createdir: true,
        };
        let f = g.namei(cwd, path, nd)?;
        if f.node.is_some() {
            return Err(Errno::EEXIST);
        }
        let dir = f.dir.ok_or(Errno::ENOENT)?;
        g.create(self, dir, f.name, NodeKind::Dir(Dir::new(dir)), perm)?;
        Ok(())
    }

    /// unlink(2) (`rmdir` false) and rmdir(2) (`rmdir` true), as NetBSD's
    /// `do_sys_unlinkat`.
    pub(crate) fn remove(&self, cwd: Ino, path: &[u8], rmdir: bool) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let nd = Nd {
            op: Op::Delete,
            follow: false,
            createdir: false,
        };
        let f = g.namei(cwd, path, nd)?;
        let ino = f.node.ok_or(Errno::ENOENT)?;
        let dir = f.dir.ok_or(Errno::EBUSY)?;
        if g.is_fs_root(ino) {
            return Err(Errno::EBUSY);
        }
        if dir == ino {
            return Err(Errno::EINVAL);
        }
        match g.node(ino)?.dir() {
            Some(_) if !rmdir => return Err(Errno::EPERM),
            Some(d) if !d.entries.is_empty() || f.name == b".." => return Err(Errno::ENOTEMPTY),
            Some(_) => {}
            None if rmdir => return Err(Errno::ENOTDIR),
            None => {}
        }
        g.detach(dir, &f.name, ino)?;
        g.unlinked(ino);
        Ok(())
    }

    /// rename(2), as NetBSD's `do_sys_renameat` and `genfs_rename`.
    pub(crate) fn rename(&self, cwd: Ino, from: &[u8], to: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let del = Nd {
            op: Op::Delete,
            follow: false,
            createdir: false,
        };
        let ff = g.namei(cwd, from, del)?;
        let src = ff.node.ok_or(Errno::ENOENT)?;
        let fdir = ff.dir.ok_or(Errno::EBUSY)?;
        if ff.name == b"." || ff.name == b".." {
            return Err(Errno::EINVAL);
        }
        let src_dir = g.is_dir(src);
        let ren = Nd {
            op: Op::Rename,
            follow: false,
            createdir: src_dir,
        };
        let tf = g.namei(cwd, to, ren)?;
        if tf.name == b"." {
            return Err(Errno::EISDIR);
        }
        if tf.name == b".." {
            return Err(Errno::EINVAL);
        }
        let tdir = tf.dir.ok_or(Errno::EBUSY)?;
        if g.node(fdir)?.mnt != g.node(tdir)?.mnt {
            return Err(Errno::EXDEV);
        }
        if let Some(t) = tf.node {
            match (src_dir, g.is_dir(t)) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        if src == tdir {
            return Err(Errno::EINVAL);
        }
        if tf.node == Some(src) {
            if fdir == tdir && ff.name == tf.name {
                return Ok(());
            }
            // Two links to one file: the source name goes.
            g.detach(fdir, &ff.name, src)?;
            g.unlinked(src);
            return Ok(());
        }
        if src_dir && g.is_under(tdir, src) {
            return Err(Errno::EINVAL);
        }
        if let Some(t) = tf.node {
            if g.node(t)?.dir().is_some_and(|d| !d.entries.is_empty()) {
                return Err(Errno::ENOTEMPTY);
            }
            g.detach(tdir, &tf.name, t)?;
            g.unlinked(t);
        }
        if fdir == tdir {
            if let Some(d) = g.node_mut(fdir)?.dir_mut() {
                d.rename_in_place(&ff.name, tf.name);
            }
            g.touch_dir(fdir);
        } else {
            g.detach(fdir, &ff.name, src)?;
            g.attach(tdir, tf.name, src)?;
        }
        let now = g.now();
        g.node_mut(src)?.ctime = now;
        Ok(())
    }

    /// link(2): `to` becomes another name of what `from` names.
    pub(crate) fn link(&self, cwd: Ino, from: &[u8], to: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let src = g.lookup(cwd, from, Nd::FOLLOW)?;
        let nd = Nd {
            op: Op::Create,
            follow: false,
            createdir: false,
        };
        let tf = g.namei(cwd, to, nd)?;
        if tf.node.is_some() {
            return Err(Errno::EEXIST);
        }
        if g.is_dir(src) {
            return Err(Errno::EPERM);
        }
        let tdir = tf.dir.ok_or(Errno::ENOENT)?;
        if g.node(tdir)?.mnt != g.node(src)?.mnt {
            return Err(Errno::EXDEV);
        }
        if g.fstype(tdir)? == FsType::Rumpfs {
            return Err(Errno::EOPNOTSUPP);
        }
        g.attach(tdir, tf.name, src)?;
        let now = g.now();
        let n = g.node_mut(src)?;
        n.nlink += 1;
        n.ctime = now;
        Ok(())
    }

    /// symlink(2): `path` becomes a link holding `target`.
    pub(crate) fn symlink(
        &self,
        cwd: Ino,
        target: &[u8],
        path: &[u8],
        perm: u32,
    ) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let nd = Nd {
            op: Op::Create,
            follow: false,
            createdir: false,
        };
        let f = g.namei(cwd, path, nd)?;
        if f.node.is_some() {
            return Err(Errno::EEXIST);
        }
        let dir = f.dir.ok_or(Errno::ENOENT)?;
        g.create(self, dir, f.name, NodeKind::Link(target.to_vec()), perm)?;
        Ok(())
    }

    /// readlink(2): the text of the link `path` names.
    pub(crate) fn readlink(&self, cwd: Ino, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let g = self.inner.lock();
        let ino = g.lookup(cwd, path, Nd::NOFOLLOW)?;
        match &g.node(ino)?.kind {
            NodeKind::Link(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// chmod, truncate and utimes of a path (links followed).
    pub(crate) fn setattr_path(&self, cwd: Ino, path: &[u8], attr: SetAttr) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let ino = g.lookup(cwd, path, Nd::FOLLOW)?;
        if matches!(attr, SetAttr::Size(_)) && g.is_dir(ino) {
            return Err(Errno::EISDIR);
        }
        g.setattr(ino, attr)
    }

    /// fchmod, ftruncate: an attribute change of a node.
    pub(crate) fn setattr(&self, ino: Ino, attr: SetAttr) -> Result<(), Errno> {
        self.inner.lock().setattr(ino, attr)
    }

    /// Mounts a fresh tmpfs on directory `on`.
    pub(crate) fn mount_tmpfs(&self, on: Ino, args: TmpfsArgs) -> Result<(), Errno> {
        self.inner.lock().mount_tmpfs(self, on, args)
    }

    /// The kind and permission bits of `path`, for access(2).
    pub(crate) fn access(&self, cwd: Ino, path: &[u8]) -> Result<(Kind, u32), Errno> {
        let g = self.inner.lock();
        let ino = g.lookup(cwd, path, Nd::FOLLOW)?;
        let n = g.node(ino)?;
        Ok((n.kind(), n.perm))
    }

    /// stat(2) (`nd` following links) and lstat(2) of a path.
    pub(crate) fn stat_path(&self, cwd: Ino, path: &[u8], nd: Nd) -> Result<Stat, Errno> {
        let g = self.inner.lock();
        let ino = g.lookup(cwd, path, nd)?;
        g.stat_node(ino)
    }

    /// fstat(2) of a node.
    pub(crate) fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        self.inner.lock().stat_node(ino)
    }

    /// What kind of node `ino` is.
    pub(crate) fn kind(&self, ino: Ino) -> Result<Kind, Errno> {
        Ok(self.inner.lock().node(ino)?.kind())
    }

    /// The type of the file system `ino` is on.
    pub(crate) fn fstype(&self, ino: Ino) -> Result<FsType, Errno> {
        self.inner.lock().fstype(ino)
    }

    /// Up to `n` bytes at `off` (not negative: the calls check).
    pub(crate) fn read(&self, ino: Ino, off: u64, n: usize) -> Result<ReadOut, Errno> {
        let mut g = self.inner.lock();
        let tmpfs = g.fstype(ino)? == FsType::Tmpfs;
        let out = match &g.node(ino)?.kind {
            NodeKind::Dir(_) => return Ok(ReadOut::IsDir),
            NodeKind::Dev(Device::Null) | NodeKind::Link(_) => {
                return Ok(ReadOut::Data(Vec::new()))
            }
            NodeKind::Dev(Device::Zero) => return Ok(ReadOut::Zeros(n)),
            NodeKind::File(_) if n == 0 => return Ok(ReadOut::Data(Vec::new())),
            NodeKind::File(data) => {
                let len = data.len() as u64;
                if off < len {
                    let start = off as usize;
                    let end = start + n.min(data.len() - start);
                    ReadOut::Data(data[start..end].to_vec())
                } else if tmpfs || off == len {
                    ReadOut::Data(Vec::new())
                } else {
                    // rumpfs reads past its end through the page cache:
                    // zeros to the end of the last page, EINVAL beyond.
                    let page_end = round_page(len as i64) as u64;
                    if off.checked_add(n as u64).is_some_and(|e| e <= page_end) {
                        ReadOut::Zeros(n)
                    } else {
                        return Err(Errno::EINVAL);
                    }
                }
            }
        };
        if tmpfs {
            let now = g.now();
            g.node_mut(ino)?.atime = now;
        }
        Ok(out)
    }

    /// Writes `buf` at `off` (or at the end, for `append`); returns the
    /// offset just past the bytes written (`off` itself for no bytes).
    pub(crate) fn write(&self, ino: Ino, off: u64, append: bool, buf: &[u8]) -> Result<u64, Errno> {
        let mut g = self.inner.lock();
        let size = match &g.node(ino)?.kind {
            NodeKind::File(data) => data.len() as u64,
            NodeKind::Dev(_) => return Ok(off + buf.len() as u64),
            NodeKind::Dir(_) => return Err(Errno::EISDIR),
            NodeKind::Link(_) => return Err(Errno::EINVAL),
        };
        if buf.is_empty() {
            return Ok(off);
        }
        let start = if append { size } else { off };
        let end = start.checked_add(buf.len() as u64).ok_or(Errno::EINVAL)?;
        if end > size {
            g.resize(ino, end)?;
        }
        let now = g.now();
        let n = g.node_mut(ino)?;
        n.mtime = now;
        n.ctime = now;
        if let NodeKind::File(data) = &mut n.kind {
            data[start as usize..end as usize].copy_from_slice(buf);
        }
        Ok(end)
    }

    /// The size lseek's `SEEK_END` counts from (`va_size`).
    pub(crate) fn size(&self, ino: Ino) -> Result<u64, Errno> {
        Ok(self.inner.lock().stat_node(ino)?.st_size.get() as u64)
    }

    /// getdents(2) at directory offset `offset`: the records that fit in
    /// `max` bytes and the offset after them (see the module docs for what
    /// offsets are on each file system). Nothing when the next record
    /// does not fit; `EINVAL` for a tmpfs offset that names no entry.
    pub(crate) fn getdents(
        &self,
        ino: Ino,
        offset: u64,
        max: usize,
    ) -> Result<(Vec<u8>, u64), Errno> {
        let mut g = self.inner.lock();
        let max = max.min(MAXBSIZE);
        let n = g.node(ino)?;
        let d = n.dir().ok_or(Errno::EINVAL)?;
        let tmpfs = g.mounts[n.mnt].fstype == FsType::Tmpfs;
        let d_type = |i: &Ino| g.nodes.get(i).map_or(dt::DT_UNKNOWN, Node::d_type);
        let mut out = Vec::new();
        let push = |out: &mut Vec<u8>, name: &[u8], fileno: Ino, kind: u8| {
            if out.len() + Dirent::reclen(name.len()) > max {
                return false;
            }
            Dirent {
                fileno,
                kind,
                name: name.to_vec(),
            }
            .encode(out);
            true
        };
        if !tmpfs {
            // Newest first, no dots; the offset counts entries.
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            let mut off = offset.min(d.entries.len() as u64);
            for e in d.entries.values().rev().skip(skip) {
                if !push(&mut out, &e.name, e.ino, d_type(&e.ino)) {
                    break;
                }
                off += 1;
            }
            return Ok((out, off));
        }
        if n.nlink == 0 {
            // A removed directory reads as empty.
            return Ok((out, offset));
        }
        let first = d.entries.keys().next().copied().unwrap_or(SEQ_EOF);
        let mut off = offset;
        if off == SEQ_DOT {
            if !push(&mut out, b".", ino, dt::DT_DIR) {
                return Ok((out, off));
            }
            off = SEQ_DOTDOT;
        }
        if off == SEQ_DOTDOT {
            if !push(&mut out, b"..", d.parent, dt::DT_DIR) {
                return Ok((out, off));
            }
            off = first;
        }
        if off == SEQ_EOF {
            return Ok((out, off));
        }
        if !d.entries.contains_key(&off) {
            return Err(Errno::EINVAL);
        }
        let mut next = SEQ_EOF;
        for (&seq, e) in d.entries.range(off..) {
            if !push(&mut out, &e.name, e.ino, d_type(&e.ino)) {
                next = seq;
                break;
            }
        }
        if tmpfs {
            let now = g.now();
            g.node_mut(ino)?.atime = now;
        }
        Ok((out, next))
    }

    /// The absolute path of directory `ino`; `ENOENT` once it is removed.
    pub(crate) fn path_of(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        let g = self.inner.lock();
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            if let Some(c) = g.covered_of(cur) {
                cur = c;
                continue;
            }
            let n = g.node(cur)?;
            let d = n.dir().ok_or(Errno::ENOTDIR)?;
            if n.nlink == 0 {
                return Err(Errno::ENOENT);
            }
            let parent = g.node(d.parent)?.dir().ok_or(Errno::ENOENT)?;
            let name = parent
                .entries
                .values()
                .find(|e| e.ino == cur)
                .map(|e| e.name.as_slice())
                .ok_or(Errno::ENOENT)?;
            names.push(name);
            cur = d.parent;
        }
        let mut out = Vec::new();
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }

    /// Bytes held by regular files.
    pub(crate) fn used(&self) -> u64 {
        self.inner.lock().used
    }

    /// Number of nodes alive (linked or referenced).
    pub(crate) fn node_count(&self) -> usize {
        self.inner.lock().nodes.len()
    }
}
