//! The model's in-memory file system: one tree of nodes behind one lock.
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

/// Inode number of the root directory (as on FFS).
pub(crate) const ROOT_INO: Ino = 2;
/// Longest path accepted, NUL excluded (NetBSD's MAXPATHLEN - 1).
pub(crate) const PATH_MAX: usize = 1023;
/// Longest path component (NetBSD's NAME_MAX).
pub(crate) const NAME_MAX: usize = 511;
/// `st_dev` of every node and pipe of the model.
pub(crate) const MODEL_DEV: u64 = 0x5350;
/// `st_rdev` of `/dev/null`: NetBSD's makedev(2, 2).
pub(crate) const NULL_RDEV: u64 = 0x0202;
/// `st_blksize` the model reports.
pub(crate) const BLKSIZE: u32 = 4096;
/// `st_size` the model reports for a directory.
const DIR_SIZE: i64 = 512;
/// Seconds of logical time 0: times are a counter, not the host's clock.
const TIME_BASE: i64 = 1_700_000_000;
/// Default capacity of the file system: total bytes of all regular files.
pub(crate) const DEFAULT_CAPACITY: u64 = 1 << 30;

/// What a node is.
pub(crate) enum NodeKind {
    /// A directory: its entries by name and its parent (itself for the root).
    Dir {
        entries: BTreeMap<Vec<u8>, Ino>,
        parent: Ino,
    },
    /// A regular file.
    File { data: Vec<u8> },
    /// A character device (only `/dev/null`).
    Null,
}

/// One node of the tree.
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    /// Permission bits (07777).
    perm: u32,
    nlink: u32,
    /// Live [`VnodeRef`]s.
    refs: usize,
    /// Logical times: birth, last data change, last status change.
    btime: i64,
    mtime: i64,
    ctime: i64,
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir { .. })
    }

    fn d_type(&self) -> u8 {
        match self.kind {
            NodeKind::Dir { .. } => dt::DT_DIR,
            NodeKind::File { .. } => dt::DT_REG,
            NodeKind::Null => dt::DT_CHR,
        }
    }
}

/// The parent directory and last component of a path.
pub(crate) struct Parent {
    pub(crate) dir: Ino,
    /// The last component; empty when the path names the root (`"/"`).
    pub(crate) name: Vec<u8>,
    /// Whether the path ended in `/` (the node must then be a directory).
    pub(crate) slash: bool,
}

/// What `open` should do, decoded from its flags.
pub(crate) struct OpenHow {
    pub(crate) create: bool,
    pub(crate) excl: bool,
    pub(crate) trunc: bool,
    pub(crate) directory: bool,
    pub(crate) writable: bool,
    /// Permission bits for a created file, umask already applied.
    pub(crate) perm: u32,
}

/// The kind of a node, for callers outside the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Dir,
    File,
    Null,
}

/// What `read` found at a node.
pub(crate) enum ReadOut {
    /// Bytes of a regular file (or nothing, for `/dev/null`).
    Data(Vec<u8>),
    /// The node is a directory.
    IsDir,
}

/// The file system: the tree behind a lock, and the inode counter shared
/// with pipes.
pub(crate) struct Fs {
    inner: Mutex<FsInner>,
    next_ino: AtomicU64,
}

pub(crate) struct FsInner {
    nodes: HashMap<Ino, Node>,
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

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl FsInner {
    fn now(&mut self) -> i64 {
        self.tick += 1;
        self.tick
    }

    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    /// Frees a node nothing links or references.
    fn collect(&mut self, ino: Ino) {
        let dead = self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.nlink == 0 && n.refs == 0);
        if dead {
            if let Some(Node {
                kind: NodeKind::File { data },
                ..
            }) = self.nodes.remove(&ino)
            {
                self.used -= data.len() as u64;
            }
        }
    }

    /// The entries of a directory that is still linked: `ENOTDIR` for
    /// anything else, `ENOENT` for a removed directory.
    fn entries(&self, dir: Ino) -> Result<(&BTreeMap<Vec<u8>, Ino>, Ino), Errno> {
        let n = self.node(dir)?;
        match &n.kind {
            NodeKind::Dir { .. } if n.nlink == 0 => Err(Errno::ENOENT),
            NodeKind::Dir { entries, parent } => Ok((entries, *parent)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Looks `name` up in `dir`: `""` and `"."` name `dir`, `".."` its parent.
    fn child(&self, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
        let (entries, parent) = self.entries(dir)?;
        match name {
            b"" | b"." => Ok(dir),
            b".." => Ok(parent),
            _ => entries.get(name).copied().ok_or(Errno::ENOENT),
        }
    }

    /// Splits `path` into its parent directory (resolved from `cwd`) and
    /// last component.
    pub(crate) fn parent(&self, cwd: Ino, path: &[u8]) -> Result<Parent, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() > PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut dir = if path[0] == b'/' { ROOT_INO } else { cwd };
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        if comps.iter().any(|c| c.len() > NAME_MAX) {
            return Err(Errno::ENAMETOOLONG);
        }
        let slash = path.ends_with(b"/");
        let Some((last, walk)) = comps.split_last() else {
            // Only slashes: the root itself.
            self.entries(ROOT_INO)?;
            return Ok(Parent {
                dir: ROOT_INO,
                name: Vec::new(),
                slash,
            });
        };
        for c in walk {
            dir = self.child(dir, c)?;
        }
        // The parent must be a live directory even if the last component is
        // never looked up.
        self.entries(dir)?;
        Ok(Parent {
            dir,
            name: last.to_vec(),
            slash,
        })
    }

    /// Resolves a whole path from `cwd`.
    pub(crate) fn lookup(&self, cwd: Ino, path: &[u8]) -> Result<Ino, Errno> {
        let p = self.parent(cwd, path)?;
        let ino = self.child(p.dir, &p.name)?;
        if p.slash && !self.node(ino)?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(ino)
    }

    fn link(&mut self, dir: Ino, name: Vec<u8>, ino: Ino) -> Result<(), Errno> {
        let now = self.now();
        let d = self.node_mut(dir)?;
        d.mtime = now;
        d.ctime = now;
        match &mut d.kind {
            NodeKind::Dir { entries, .. } => {
                entries.insert(name, ino);
                Ok(())
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn unlink_entry(&mut self, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
        let now = self.now();
        let d = self.node_mut(dir)?;
        d.mtime = now;
        d.ctime = now;
        match &mut d.kind {
            NodeKind::Dir { entries, .. } => entries.remove(name).ok_or(Errno::ENOENT),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn add_node(&mut self, ino: Ino, kind: NodeKind, perm: u32) {
        let now = self.now();
        let nlink = if matches!(kind, NodeKind::Dir { .. }) {
            2
        } else {
            1
        };
        self.nodes.insert(
            ino,
            Node {
                kind,
                perm: perm & 0o7777,
                nlink,
                refs: 0,
                btime: now,
                mtime: now,
                ctime: now,
            },
        );
    }

    fn set_nlink(&mut self, ino: Ino, f: impl FnOnce(u32) -> u32) {
        let now = self.now();
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = f(n.nlink);
            n.ctime = now;
        }
    }

    /// Whether `ino` is `anc` or lies below it.
    fn is_under(&self, mut ino: Ino, anc: Ino) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.kind) {
                Some(NodeKind::Dir { parent, .. }) if *parent != ino => ino = *parent,
                _ => return false,
            }
        }
    }

    fn resize(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let used = self.used;
        let cap = self.capacity;
        let now = self.now();
        let n = self.node_mut(ino)?;
        match &mut n.kind {
            NodeKind::File { data } => {
                let old = data.len() as u64;
                if len > old && used + (len - old) > cap {
                    return Err(Errno::ENOSPC);
                }
                data.resize(len as usize, 0);
                n.mtime = now;
                n.ctime = now;
                self.used = used - old + len;
                Ok(())
            }
            NodeKind::Dir { .. } => Err(Errno::EISDIR),
            NodeKind::Null => Ok(()),
        }
    }

    fn stat_node(&self, ino: Ino) -> Result<Stat, Errno> {
        let n = self.node(ino)?;
        let (ty, size, rdev) = match &n.kind {
            NodeKind::Dir { .. } => (mode::S_IFDIR, DIR_SIZE, 0),
            NodeKind::File { data } => (mode::S_IFREG, data.len() as i64, 0),
            NodeKind::Null => (mode::S_IFCHR, 0, NULL_RDEV),
        };
        let mut st = Stat::default();
        st.st_dev.set(MODEL_DEV);
        st.st_mode.set(ty | n.perm);
        st.st_ino.set(ino);
        st.st_nlink.set(n.nlink);
        st.st_rdev.set(rdev);
        st.st_atim.sec.set(TIME_BASE + n.mtime);
        st.st_mtim.sec.set(TIME_BASE + n.mtime);
        st.st_ctim.sec.set(TIME_BASE + n.ctime);
        st.st_birthtim.sec.set(TIME_BASE + n.btime);
        st.st_size.set(size);
        st.st_blocks.set((size + 511) / 512);
        st.st_blksize.set(BLKSIZE);
        Ok(st)
    }
}

impl Fs {
    /// A file system holding `/`, `/dev`, `/dev/null` and `/tmp`, whose
    /// regular files may hold `capacity` bytes in all.
    pub(crate) fn new(capacity: u64) -> Arc<Fs> {
        let fs = Arc::new(Fs {
            inner: Mutex::new(FsInner {
                nodes: HashMap::new(),
                used: 0,
                capacity,
                tick: 0,
            }),
            next_ino: AtomicU64::new(ROOT_INO + 1),
        });
        {
            let mut g = fs.inner.lock();
            g.add_node(
                ROOT_INO,
                NodeKind::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT_INO,
                },
                0o755,
            );
            let dev = fs.new_ino();
            g.add_node(
                dev,
                NodeKind::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT_INO,
                },
                0o755,
            );
            let null = fs.new_ino();
            g.add_node(null, NodeKind::Null, 0o666);
            let tmp = fs.new_ino();
            g.add_node(
                tmp,
                NodeKind::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT_INO,
                },
                0o1777,
            );
            // Fresh nodes under a fresh root: these cannot fail.
            for (dir, name, ino) in [
                (ROOT_INO, "dev", dev),
                (dev, "null", null),
                (ROOT_INO, "tmp", tmp),
            ] {
                let _ = g.link(dir, name.as_bytes().to_vec(), ino);
            }
            g.set_nlink(ROOT_INO, |n| n + 2);
        }
        fs
    }

    /// A fresh inode number (also used for pipes).
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
    ) -> Result<(VnodeRef, bool), Errno> {
        let (ino, is_dir) = {
            let mut g = self.inner.lock();
            let ino = g.lookup(cwd, path)?;
            let n = g.node_mut(ino)?;
            n.refs += 1;
            (ino, n.is_dir())
        };
        Ok((VnodeRef::adopt(self, ino), is_dir))
    }

    /// The open(2) lookup: finds or creates the node `path` names and
    /// counts a reference to it.
    pub(crate) fn open(
        self: &Arc<Fs>,
        cwd: Ino,
        path: &[u8],
        how: &OpenHow,
    ) -> Result<VnodeRef, Errno> {
        let ino = {
            let mut g = self.inner.lock();
            let p = g.parent(cwd, path)?;
            let ino = match g.child(p.dir, &p.name) {
                Ok(ino) => {
                    if how.create && how.excl {
                        return Err(Errno::EEXIST);
                    }
                    let n = g.node(ino)?;
                    if n.is_dir() {
                        if how.writable || (how.create && !how.directory) {
                            return Err(Errno::EISDIR);
                        }
                    } else if how.directory || p.slash {
                        return Err(Errno::ENOTDIR);
                    }
                    if how.trunc && how.writable && matches!(n.kind, NodeKind::File { .. }) {
                        g.resize(ino, 0)?;
                    }
                    ino
                }
                Err(Errno::ENOENT) if how.create => {
                    if p.slash {
                        return Err(Errno::EISDIR);
                    }
                    let ino = self.new_ino();
                    g.add_node(ino, NodeKind::File { data: Vec::new() }, how.perm);
                    g.link(p.dir, p.name, ino)?;
                    ino
                }
                Err(e) => return Err(e),
            };
            g.node_mut(ino)?.refs += 1;
            ino
        };
        Ok(VnodeRef::adopt(self, ino))
    }

    /// mkdir(2).
    pub(crate) fn mkdir(&self, cwd: Ino, path: &[u8], perm: u32) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let p = g.parent(cwd, path)?;
        match g.child(p.dir, &p.name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let ino = self.new_ino();
        g.add_node(
            ino,
            NodeKind::Dir {
                entries: BTreeMap::new(),
                parent: p.dir,
            },
            perm,
        );
        g.link(p.dir, p.name, ino)?;
        g.set_nlink(p.dir, |n| n + 1);
        Ok(())
    }

    /// rmdir(2).
    pub(crate) fn rmdir(&self, cwd: Ino, path: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let p = g.parent(cwd, path)?;
        match p.name.as_slice() {
            b"" => return Err(Errno::EBUSY),
            b"." => return Err(Errno::EINVAL),
            b".." => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let ino = g.child(p.dir, &p.name)?;
        match &g.node(ino)?.kind {
            NodeKind::Dir { entries, .. } if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            NodeKind::Dir { .. } => {}
            _ => return Err(Errno::ENOTDIR),
        }
        g.unlink_entry(p.dir, &p.name)?;
        g.set_nlink(ino, |_| 0);
        g.set_nlink(p.dir, |n| n - 1);
        g.collect(ino);
        Ok(())
    }

    /// unlink(2): `EPERM` for a directory, as NetBSD.
    pub(crate) fn unlink(&self, cwd: Ino, path: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let p = g.parent(cwd, path)?;
        let ino = g.child(p.dir, &p.name)?;
        if g.node(ino)?.is_dir() {
            return Err(Errno::EPERM);
        }
        if p.slash {
            return Err(Errno::ENOTDIR);
        }
        g.unlink_entry(p.dir, &p.name)?;
        g.set_nlink(ino, |n| n.saturating_sub(1));
        g.collect(ino);
        Ok(())
    }

    /// rename(2).
    pub(crate) fn rename(&self, cwd: Ino, from: &[u8], to: &[u8]) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let fp = g.parent(cwd, from)?;
        let tp = g.parent(cwd, to)?;
        if fp.name.is_empty() || tp.name.is_empty() {
            return Err(Errno::EBUSY);
        }
        if is_dot(&fp.name) || is_dot(&tp.name) {
            return Err(Errno::EINVAL);
        }
        let src = g.child(fp.dir, &fp.name)?;
        let src_dir = g.node(src)?.is_dir();
        if (fp.slash || tp.slash) && !src_dir {
            return Err(Errno::ENOTDIR);
        }
        let dst = match g.child(tp.dir, &tp.name) {
            Ok(d) => Some(d),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if dst == Some(src) {
            return Ok(());
        }
        if src_dir {
            // A directory may not move into its own subtree.
            if g.is_under(tp.dir, src) {
                return Err(Errno::EINVAL);
            }
            if let Some(d) = dst {
                match &g.node(d)?.kind {
                    NodeKind::Dir { entries, .. } if !entries.is_empty() => {
                        return Err(Errno::ENOTEMPTY)
                    }
                    NodeKind::Dir { .. } => {}
                    _ => return Err(Errno::ENOTDIR),
                }
            }
        } else if let Some(d) = dst {
            if g.node(d)?.is_dir() {
                return Err(Errno::EISDIR);
            }
        }
        if let Some(d) = dst {
            g.unlink_entry(tp.dir, &tp.name)?;
            if src_dir {
                g.set_nlink(d, |_| 0);
                g.set_nlink(tp.dir, |n| n - 1);
            } else {
                g.set_nlink(d, |n| n.saturating_sub(1));
            }
            g.collect(d);
        }
        g.unlink_entry(fp.dir, &fp.name)?;
        g.link(tp.dir, tp.name, src)?;
        if src_dir {
            if let Ok(Node {
                kind: NodeKind::Dir { parent, .. },
                ..
            }) = g.node_mut(src)
            {
                *parent = tp.dir;
            }
            g.set_nlink(fp.dir, |n| n - 1);
            g.set_nlink(tp.dir, |n| n + 1);
        }
        g.set_nlink(src, |n| n);
        Ok(())
    }

    /// The kind and permission bits of `path`, for access(2).
    pub(crate) fn access(&self, cwd: Ino, path: &[u8]) -> Result<(bool, u32), Errno> {
        let g = self.inner.lock();
        let ino = g.lookup(cwd, path)?;
        let n = g.node(ino)?;
        Ok((n.is_dir(), n.perm))
    }

    /// stat(2) of a path.
    pub(crate) fn stat_path(&self, cwd: Ino, path: &[u8]) -> Result<Stat, Errno> {
        let g = self.inner.lock();
        let ino = g.lookup(cwd, path)?;
        g.stat_node(ino)
    }

    /// fstat(2) of a node.
    pub(crate) fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        self.inner.lock().stat_node(ino)
    }

    /// What kind of node `ino` is.
    pub(crate) fn kind(&self, ino: Ino) -> Result<Kind, Errno> {
        Ok(match self.inner.lock().node(ino)?.kind {
            NodeKind::Dir { .. } => Kind::Dir,
            NodeKind::File { .. } => Kind::File,
            NodeKind::Null => Kind::Null,
        })
    }

    /// Up to `n` bytes at `off`.
    pub(crate) fn read(&self, ino: Ino, off: u64, n: usize) -> Result<ReadOut, Errno> {
        let g = self.inner.lock();
        match &g.node(ino)?.kind {
            NodeKind::Dir { .. } => Ok(ReadOut::IsDir),
            NodeKind::Null => Ok(ReadOut::Data(Vec::new())),
            NodeKind::File { data } => {
                let start = (off.min(data.len() as u64)) as usize;
                let end = start + n.min(data.len() - start);
                Ok(ReadOut::Data(data[start..end].to_vec()))
            }
        }
    }

    /// Writes `buf` at `off` (or at the end, for `append`); returns the
    /// offset just past the bytes written.
    pub(crate) fn write(&self, ino: Ino, off: u64, append: bool, buf: &[u8]) -> Result<u64, Errno> {
        let mut g = self.inner.lock();
        let size = match &g.node(ino)?.kind {
            NodeKind::File { data } => data.len() as u64,
            NodeKind::Null => return Ok(off + buf.len() as u64),
            NodeKind::Dir { .. } => return Err(Errno::EISDIR),
        };
        let start = if append { size } else { off };
        let end = start.checked_add(buf.len() as u64).ok_or(Errno::EINVAL)?;
        if end > size {
            g.resize(ino, end)?;
        }
        let now = g.now();
        let n = g.node_mut(ino)?;
        n.mtime = now;
        n.ctime = now;
        if let NodeKind::File { data } = &mut n.kind {
            data[start as usize..end as usize].copy_from_slice(buf);
        }
        Ok(end)
    }

    /// ftruncate(2).
    pub(crate) fn truncate(&self, ino: Ino, len: u64) -> Result<(), Errno> {
        self.inner.lock().resize(ino, len)
    }

    /// The size lseek's `SEEK_END` counts from.
    pub(crate) fn size(&self, ino: Ino) -> Result<u64, Errno> {
        let g = self.inner.lock();
        Ok(match &g.node(ino)?.kind {
            NodeKind::File { data } => data.len() as u64,
            NodeKind::Dir { .. } => DIR_SIZE as u64,
            NodeKind::Null => 0,
        })
    }

    /// getdents(2): the records of entries `index..` that fit in `max`
    /// bytes, and how many entries they are. Entry 0 is `.`, 1 is `..`,
    /// then the names in byte order. `EINVAL` if the next record does not
    /// fit at all; an empty buffer at the end.
    pub(crate) fn getdents(
        &self,
        ino: Ino,
        index: u64,
        max: usize,
    ) -> Result<(Vec<u8>, u64), Errno> {
        let g = self.inner.lock();
        let n = g.node(ino)?;
        let NodeKind::Dir { entries, parent } = &n.kind else {
            return Err(Errno::ENOTDIR);
        };
        if n.nlink == 0 {
            // A removed directory reads as empty.
            return Ok((Vec::new(), 0));
        }
        let dots = [(b".".as_slice(), ino), (b"..".as_slice(), *parent)];
        let all = dots
            .into_iter()
            .chain(entries.iter().map(|(k, v)| (k.as_slice(), *v)))
            .skip(usize::try_from(index).unwrap_or(usize::MAX));
        let mut out = Vec::new();
        let mut count = 0;
        for (name, child) in all {
            if out.len() + Dirent::reclen(name.len()) > max {
                if count == 0 {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let kind = g.nodes.get(&child).map_or(dt::DT_UNKNOWN, Node::d_type);
            Dirent {
                fileno: child,
                kind,
                name: name.to_vec(),
            }
            .encode(&mut out);
            count += 1;
        }
        Ok((out, count))
    }

    /// The absolute path of directory `ino`; `ENOENT` once it is removed.
    pub(crate) fn path_of(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        let g = self.inner.lock();
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            let (_, parent) = g.entries(cur)?;
            let (pentries, _) = g.entries(parent)?;
            let name = pentries
                .iter()
                .find(|(_, &v)| v == cur)
                .map(|(k, _)| k.as_slice())
                .ok_or(Errno::ENOENT)?;
            names.push(name);
            cur = parent;
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
