//! Hard and symbolic links, chmod, truncate, utimes and mount: the calls a
//! stock rump kernel has that the model used to answer with ENOSYS.

use super::T;
use sp_model::{num, Boot, ModelKernel};
use sp_proto::abi::{mode, oflag, Errno, Stat, Sysnum};
use std::sync::Arc;

const RW: u32 = oflag::O_RDWR;
const CREAT: u32 = oflag::O_CREAT;
const S_IFLNK: u32 = 0o120000;
const EFTYPE: Errno = Errno(79);

impl T {
    fn lstat(&self, path: &str) -> Result<Stat, Errno> {
        let sb = self.port.alloc_zeroed(Stat::SIZE);
        self.call(Sysnum::LSTAT, &[self.s(path), sb])?;
        Ok(Stat::from_bytes(&self.port.read(sb, Stat::SIZE)).unwrap())
    }

    fn symlink(&self, target: &str, path: &str) -> Result<i64, Errno> {
        self.call(num::SYMLINK, &[self.s(target), self.s(path)])
            .map(|r| r[0])
    }

    fn link(&self, from: &str, to: &str) -> Result<i64, Errno> {
        self.call(num::LINK, &[self.s(from), self.s(to)])
            .map(|r| r[0])
    }

    fn readlink(&self, path: &str, n: usize) -> Result<Vec<u8>, Errno> {
        let buf = self.port.alloc_zeroed(n.max(1));
        let [got, _] = self.call(num::READLINK, &[self.s(path), buf, n as u64])?;
        Ok(self.port.read(buf, got as usize))
    }

    fn mount_tmpfs(&self, path: &str, argv: &[u8]) -> Result<i64, Errno> {
        let data = self.port.alloc(argv.to_vec());
        let slots = [self.s("tmpfs"), self.s(path), 0, data, argv.len() as u64];
        self.call(num::MOUNT, &slots).map(|r| r[0])
    }
}

/// A `struct tmpfs_args` of version `version`, root mode `mode`.
fn tmpfs_args(version: i32, mode: u32) -> Vec<u8> {
    let mut a = vec![0u8; 40];
    a[..4].copy_from_slice(&version.to_le_bytes());
    a[32..36].copy_from_slice(&mode.to_le_bytes());
    a
}

#[test]
fn hard_links() {
    let t = T::new();
    t.create("/tmp/a", b"shared");
    assert_eq!(t.link("/tmp/a", "/tmp/b"), Ok(0));
    let (a, b) = (t.stat("/tmp/a").unwrap(), t.stat("/tmp/b").unwrap());
    assert_eq!(a.st_ino.get(), b.st_ino.get());
    assert_eq!(a.st_nlink.get(), 2);
    assert_eq!(t.content("/tmp/b"), b"shared");
    // A directory grows by one entry.
    assert_eq!(t.stat("/tmp").unwrap().st_size.get(), 2 * 48);
    // Errors, in NetBSD's order: the source first, then the target.
    assert_eq!(t.link("/tmp/none", "/tmp/x"), Err(Errno::ENOENT));
    assert_eq!(t.link("/tmp/a", "/tmp/b"), Err(Errno::EEXIST));
    t.mkdir("/tmp/d");
    assert_eq!(t.link("/tmp/d", "/tmp/e"), Err(Errno::EPERM));
    assert_eq!(t.link("/tmp/d", "/tmp/a"), Err(Errno::EEXIST));
    assert_eq!(t.link("/tmp/a", "/a"), Err(Errno::EXDEV));
    // rumpfs (the root) has no hard links.
    t.create("/rootfile", b"");
    assert_eq!(t.link("/rootfile", "/rootlink"), Err(Errno::EOPNOTSUPP));
    // link(2) follows a symbolic link source.
    t.symlink("a", "/tmp/sl").unwrap();
    assert_eq!(t.link("/tmp/sl", "/tmp/c"), Ok(0));
    assert_eq!(t.stat("/tmp/a").unwrap().st_nlink.get(), 3);
    // Unlinking one name leaves the others.
    t.ok(Sysnum::UNLINK, &[t.s("/tmp/a")]);
    assert_eq!(t.stat("/tmp/b").unwrap().st_nlink.get(), 2);
    assert_eq!(t.content("/tmp/c"), b"shared");
}

#[test]
fn symbolic_links() {
    let t = T::new();
    t.create("/tmp/f", b"target");
    t.mkdir("/tmp/d");
    assert_eq!(t.symlink("f", "/tmp/l"), Ok(0));
    assert_eq!(t.symlink("f", "/tmp/l"), Err(Errno::EEXIST));
    // lstat sees the link: mode 0777 less the umask, size the text's.
    let l = t.lstat("/tmp/l").unwrap();
    assert_eq!(l.st_mode.get(), S_IFLNK | 0o755);
    assert_eq!((l.st_size.get(), l.st_blocks.get()), (1, 8));
    assert_eq!(l.st_rdev.get(), u64::MAX);
    // stat and open follow it.
    assert_eq!(t.stat("/tmp/l").unwrap(), t.stat("/tmp/f").unwrap());
    assert_eq!(t.content("/tmp/l"), b"target");
    // readlink: the text, cut to the buffer; EINVAL for anything else.
    assert_eq!(t.readlink("/tmp/l", 100).unwrap(), b"f");
    assert_eq!(t.readlink("/tmp/l", 0).unwrap(), b"");
    assert_eq!(t.readlink("/tmp/f", 100), Err(Errno::EINVAL));
    assert_eq!(t.readlink("/tmp/none", 100), Err(Errno::ENOENT));
    // A trailing slash follows the link: a file is then not a directory.
    assert_eq!(t.readlink("/tmp/l/", 100), Err(Errno::ENOTDIR));
    // A link to a directory: a trailing slash makes even lstat follow.
    t.symlink("d", "/tmp/ld").unwrap();
    assert_eq!(
        t.lstat("/tmp/ld").unwrap().st_mode.get() & mode::S_IFMT,
        S_IFLNK
    );
    assert_eq!(
        t.lstat("/tmp/ld/").unwrap().st_mode.get() & mode::S_IFMT,
        mode::S_IFDIR
    );
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/ld")]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/d");
    t.ok(Sysnum::CHDIR, &[t.s("/")]);
    t.mkdir("/tmp/ld/in");
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/ld")]), Errno::ENOTDIR);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/ld/")]), Errno::ENOTEMPTY);
    assert_eq!(t.err(Sysnum::UNLINK, &[t.s("/tmp/ld/")]), Errno::EPERM);
    // unlink and rename act on the link itself.
    t.ok(Sysnum::RENAME, &[t.s("/tmp/ld"), t.s("/tmp/ld2")]);
    t.ok(Sysnum::UNLINK, &[t.s("/tmp/ld2")]);
    assert_eq!(t.stat("/tmp/d/in").unwrap().st_nlink.get(), 2);
    // readdir reports DT_LNK (10).
    let (ents, _) = t.list("/tmp", 4096);
    assert!(ents.iter().any(|d| d.name == b"l" && d.kind == 10));
}

#[test]
fn symbolic_link_resolution() {
    let t = T::new();
    t.create("/tmp/f", b"x");
    // A dangling link: stat ENOENT; O_CREAT creates its target; O_EXCL
    // and mkdir see the link itself.
    t.symlink("/tmp/made", "/tmp/dl").unwrap();
    assert_eq!(t.stat("/tmp/dl"), Err(Errno::ENOENT));
    assert_eq!(
        t.open("/tmp/dl", CREAT | oflag::O_EXCL | RW, 0o644),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        t.err(Sysnum::MKDIR, &[t.s("/tmp/dl"), 0o755]),
        Errno::EEXIST
    );
    assert!(t.open("/tmp/dl", CREAT | RW, 0o600).is_ok());
    assert_eq!(
        t.stat("/tmp/made").unwrap().st_mode.get(),
        mode::S_IFREG | 0o600
    );
    // O_NOFOLLOW on a link: EFTYPE, as NetBSD.
    t.symlink("f", "/tmp/l").unwrap();
    assert_eq!(t.open("/tmp/l", 0x100, 0), Err(EFTYPE));
    assert_eq!(t.open("/tmp/l", 0x100 | CREAT, 0), Err(EFTYPE));
    assert!(t.open("/tmp/f", 0x100, 0).is_ok());
    // Chains are followed up to 32 links; the 33rd is ELOOP.
    let mut prev = "f".to_string();
    for i in 0..34 {
        t.symlink(&prev, &format!("/tmp/c{i}")).unwrap();
        prev = format!("c{i}");
    }
    assert!(t.stat("/tmp/c31").is_ok(), "32 links");
    assert_eq!(t.stat("/tmp/c32"), Err(Errno::ELOOP));
    t.symlink("loop", "/tmp/loop").unwrap();
    assert_eq!(t.stat("/tmp/loop"), Err(Errno::ELOOP));
    assert_eq!(t.open("/tmp/loop", 0, 0), Err(Errno::ELOOP));
    assert_eq!(t.lstat("/tmp/loop").unwrap().st_size.get(), 4);
    // An empty link names nothing.
    t.symlink("", "/tmp/empty").unwrap();
    assert_eq!(t.stat("/tmp/empty"), Err(Errno::ENOENT));
    // An absolute link to the root; through it, into the tmpfs again.
    t.symlink("/", "/tmp/root").unwrap();
    assert_eq!(
        t.stat("/tmp/root").unwrap().st_ino.get(),
        t.stat("/").unwrap().st_ino.get()
    );
    assert_eq!(t.content("/tmp/root/tmp/f"), b"x");
    // The link's text and the rest of the path must fit in MAXPATHLEN.
    let t1000 = format!("/{}", "/".repeat(1000));
    t.symlink(&t1000, "/tmp/long").unwrap();
    assert!(t.stat("/tmp/long").is_ok());
    assert_eq!(
        t.stat(&format!("/tmp/long/{}", "x".repeat(30))),
        Err(Errno::ENAMETOOLONG)
    );
    // A target of 1024 bytes does not fit in the path buffer.
    assert_eq!(
        t.symlink(&"t".repeat(1024), "/tmp/toolong"),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(t.symlink(&"t".repeat(1023), "/tmp/longest"), Ok(0));
}

#[test]
fn chmod_and_fchmod() {
    let t = T::new();
    t.create("/tmp/f", b"");
    t.symlink("f", "/tmp/l").unwrap();
    let chmod = |p: &str, m: u32| t.call(num::CHMOD, &[t.s(p), m.into()]);
    assert_eq!(chmod("/tmp/f", 0o4751), Ok([0, 0]));
    assert_eq!(
        t.stat("/tmp/f").unwrap().st_mode.get(),
        mode::S_IFREG | 0o4751
    );
    // Type bits in the argument are ignored.
    assert_eq!(chmod("/tmp/f", 0o170644), Ok([0, 0]));
    assert_eq!(
        t.stat("/tmp/f").unwrap().st_mode.get(),
        mode::S_IFREG | 0o644
    );
    // chmod follows links; the link keeps its mode.
    assert_eq!(chmod("/tmp/l", 0o600), Ok([0, 0]));
    assert_eq!(
        t.stat("/tmp/f").unwrap().st_mode.get(),
        mode::S_IFREG | 0o600
    );
    assert_eq!(t.lstat("/tmp/l").unwrap().st_mode.get(), S_IFLNK | 0o755);
    assert_eq!(chmod("/tmp/none", 0o600), Err(Errno::ENOENT));
    // X_OK now answers to the new bits.
    assert_eq!(
        t.call(Sysnum::ACCESS, &[t.s("/tmp/f"), 1]),
        Err(Errno::EACCES)
    );
    chmod("/tmp/f", 0o700).unwrap();
    assert_eq!(t.call(Sysnum::ACCESS, &[t.s("/tmp/f"), 1]), Ok([0, 0]));
    // fchmod: a vnode descriptor, opened any way.
    let fd = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.ok(num::FCHMOD, &[fd, 0o640]), 0);
    assert_eq!(
        t.stat("/tmp/f").unwrap().st_mode.get(),
        mode::S_IFREG | 0o640
    );
    let (r, _) = t.pipe();
    assert_eq!(t.err(num::FCHMOD, &[r as u64, 0o640]), Errno::EINVAL);
    assert_eq!(t.err(num::FCHMOD, &[99, 0o640]), Errno::EBADF);
}

#[test]
fn truncate_a_path() {
    let t = T::new();
    t.create("/tmp/f", b"abcdef");
    t.symlink("f", "/tmp/l").unwrap();
    let trunc = |p: &str, len: i64| t.call(num::TRUNCATE, &[t.s(p), 0, len as u64]);
    assert_eq!(trunc("/tmp/f", 3), Ok([0, 0]));
    assert_eq!(t.content("/tmp/f"), b"abc");
    assert_eq!(trunc("/tmp/l", 5), Ok([0, 0]));
    assert_eq!(t.content("/tmp/f"), b"abc\0\0");
    // Sizes count in 4096-byte pages of 512-byte blocks.
    trunc("/tmp/f", 8193).unwrap();
    let st = t.stat("/tmp/f").unwrap();
    assert_eq!((st.st_size.get(), st.st_blocks.get()), (8193, 24));
    // A negative length is EINVAL before the path is looked at.
    assert_eq!(trunc("/tmp/none", -1), Err(Errno::EINVAL));
    assert_eq!(trunc("/tmp/none", 0), Err(Errno::ENOENT));
    assert_eq!(trunc("/tmp", 0), Err(Errno::EISDIR));
    // A device does not mind.
    assert_eq!(trunc("/dev/null", 0), Ok([0, 0]));
}

#[test]
fn utimes_sets_or_stamps_times() {
    let t = T::new();
    t.create("/tmp/f", b"");
    // Two struct timeval: i64 seconds, then microseconds in an int.
    let tv = |a: (i64, i32), m: (i64, i32)| {
        let mut b = Vec::new();
        for (sec, usec) in [a, m] {
            b.extend_from_slice(&sec.to_le_bytes());
            b.extend_from_slice(&usec.to_le_bytes());
            b.extend_from_slice(&[0; 4]);
        }
        t.port.alloc(b)
    };
    let times = |st: Stat| {
        (
            st.st_atim.sec.get(),
            st.st_atim.nsec.get(),
            st.st_mtim.sec.get(),
            st.st_mtim.nsec.get(),
        )
    };
    let f = t.s("/tmp/f");
    let before = t.stat("/tmp/f").unwrap().st_ctim.sec.get();
    assert_eq!(
        t.ok(
            num::UTIMES,
            &[f, tv((1_000_000_000, 5), (1_000_000_100, 7))]
        ),
        0
    );
    let st = t.stat("/tmp/f").unwrap();
    assert_eq!(times(st), (1_000_000_000, 5000, 1_000_000_100, 7000));
    assert!(st.st_ctim.sec.get() > before, "ctime moves");
    // Microseconds are not checked; -1 seconds leaves a time alone.
    assert_eq!(t.ok(num::UTIMES, &[f, tv((-1, 0), (700, 3))]), 0);
    assert_eq!(
        times(t.stat("/tmp/f").unwrap()),
        (1_000_000_000, 5000, 700, 3000)
    );
    // NULL: now.
    assert_eq!(t.ok(num::UTIMES, &[f, 0]), 0);
    let st = t.stat("/tmp/f").unwrap();
    assert!(st.st_mtim.sec.get() > 1_000_000_100);
    assert_eq!(st.st_atim, st.st_mtim);
    assert_eq!(t.err(num::UTIMES, &[t.s("/tmp/none"), 0]), Errno::ENOENT);
}

#[test]
fn mount_a_fresh_tmpfs() {
    let t = T::new();
    t.mkdir("/tmp/m");
    t.create("/tmp/m/hidden", b"under");
    let dev_tmp = t.stat("/tmp").unwrap().st_dev.get();
    // Argument checks, in NetBSD's order.
    assert_eq!(
        t.mount_tmpfs("/tmp/none", &tmpfs_args(1, 0o755)),
        Err(Errno::ENOENT)
    );
    let slots = |ty: &str| {
        [
            t.s(ty),
            t.s("/tmp/m"),
            0,
            t.port.alloc(tmpfs_args(1, 0o755)),
            40,
        ]
    };
    assert_eq!(t.err(num::MOUNT, &slots("nosuchfs")), Errno(19), "ENODEV");
    assert_eq!(
        t.mount_tmpfs("/tmp/m/hidden", &tmpfs_args(1, 0o755)),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        t.mount_tmpfs("/tmp/m", &tmpfs_args(2, 0o755)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        t.mount_tmpfs("/tmp/m", &tmpfs_args(1, 0o755)[..39]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        t.err(num::MOUNT, &[t.s("tmpfs"), t.s("/tmp/m"), 0, 0, 40]),
        Errno::EINVAL,
        "no arguments"
    );
    assert_eq!(
        t.mount_tmpfs("/tmp/m", &vec![0u8; 8193]),
        Err(Errno::EINVAL),
        "over VFS_MAX_MOUNT_DATA"
    );
    // The mount: an empty tmpfs with the root mode asked for, on its own
    // device; what was there is hidden, not gone.
    assert_eq!(t.mount_tmpfs("/tmp/m", &tmpfs_args(1, 0o700)), Ok(0));
    let st = t.stat("/tmp/m").unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFDIR | 0o700);
    assert_eq!((st.st_nlink.get(), st.st_size.get()), (2, 0));
    assert_ne!(st.st_dev.get(), dev_tmp);
    assert_eq!(st.st_dev.get(), 0xab02, "the second tmpfs: makedev(171, 2)");
    assert_eq!(t.names("/tmp/m"), [".", ".."]);
    assert_eq!(t.stat("/tmp/m/hidden"), Err(Errno::ENOENT));
    // Its root is busy; .. leads out of it; getcwd knows the way.
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/m")]), Errno::EBUSY);
    assert_eq!(t.err(Sysnum::MKDIR, &[t.s("/tmp/m"), 0o755]), Errno::EEXIST);
    assert_eq!(
        t.stat("/tmp/m/..").unwrap().st_ino.get(),
        t.stat("/tmp").unwrap().st_ino.get()
    );
    t.mkdir("/tmp/m/sub");
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/m/sub")]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/m/sub");
    t.ok(Sysnum::CHDIR, &[t.s("/")]);
    // Files cannot move or link across it.
    t.create("/tmp/m/x", b"");
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/m/x"), t.s("/tmp/x")]),
        Errno::EXDEV
    );
    assert_eq!(t.link("/tmp/m/x", "/tmp/x"), Err(Errno::EXDEV));
    // Mounting again stacks another fresh tmpfs.
    assert_eq!(t.mount_tmpfs("/tmp/m", &tmpfs_args(1, 0o755)), Ok(0));
    assert_eq!(t.names("/tmp/m"), [".", ".."]);
    // The size limit, ta_size_max, holds for the mount's files.
    let mut a = tmpfs_args(1, 0o755);
    a[16..24].copy_from_slice(&8192i64.to_le_bytes());
    t.mkdir("/tmp/small");
    assert_eq!(t.mount_tmpfs("/tmp/small", &a), Ok(0));
    let fd = t.open("/tmp/small/f", CREAT | RW, 0o644).unwrap();
    assert_eq!(t.write(fd, &[1; 8192]), Ok(8192));
    assert_eq!(t.write(fd, b"!"), Err(Errno::ENOSPC));
    // Changing or reading a mount (MNT_UPDATE, MNT_GETARGS) is not
    // modelled.
    let update = [t.s("tmpfs"), t.s("/tmp/m"), 0x1_0000, 0, 0];
    assert_eq!(t.err(num::MOUNT, &update), Errno::EOPNOTSUPP);
}

#[test]
fn mount_on_a_stock_tmp() {
    // As a test set-up on a stock rump kernel: /tmp is rumpfs until a
    // tmpfs is mounted there.
    let k = Arc::new(ModelKernel::boot(Boot {
        tmpfs_on_tmp: false,
        ..Boot::default()
    }));
    let t = T::on(k);
    assert_eq!(t.stat("/tmp").unwrap().st_blksize.get(), 512);
    assert_eq!(t.mount_tmpfs("/tmp", &tmpfs_args(1, 0o1777)), Ok(0));
    let st = t.stat("/tmp").unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFDIR | 0o1777);
    assert_eq!(st.st_blksize.get(), 4096);
    assert_eq!(st.st_dev.get(), 0xab01);
}
