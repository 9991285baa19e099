//! Regular files, /dev/null, stat.

use super::{iovecs, T};
use sp_model::ModelKernel;
use sp_proto::abi::{misc, mode, oflag, Errno, Stat, Sysnum};
use sp_proto::args;
use sp_server::Kernel;
use std::sync::Arc;

const RW: u32 = oflag::O_RDWR;
const CREAT: u32 = oflag::O_CREAT;

#[test]
fn create_write_read_back() {
    let t = T::new();
    let fd = t.open("/tmp/a", CREAT | RW, 0o644).unwrap();
    assert_eq!(fd, 3, "lowest free descriptor (0, 1, 2: the console)");
    assert_eq!(t.write(fd, b"hello, "), Ok(7));
    assert_eq!(t.write(fd, b"world"), Ok(5));
    // The offset is at the end: nothing more to read.
    assert_eq!(t.read(fd, 100).unwrap(), b"");
    assert_eq!(
        t.ok(Sysnum::LSEEK, &[fd as u64, 0, 0, misc::SEEK_SET.into()]),
        0
    );
    assert_eq!(t.read(fd, 5).unwrap(), b"hello");
    assert_eq!(t.read(fd, 100).unwrap(), b", world");
    assert_eq!(t.content("/tmp/a"), b"hello, world");
    // A zero-length write and read.
    assert_eq!(t.write(fd, b""), Ok(0));
    assert_eq!(t.read(fd, 0).unwrap(), b"");
}

#[test]
fn open_errors_and_flags() {
    let t = T::new();
    assert_eq!(t.open("/tmp/none", oflag::O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(t.open("", oflag::O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(t.open("/tmp/none/x", CREAT | RW, 0o644), Err(Errno::ENOENT));
    assert_eq!(t.open("/tmp/x", 3, 0), Err(Errno::EINVAL));
    t.create("/tmp/f", b"0123456789");
    // O_EXCL on an existing file.
    assert_eq!(
        t.open("/tmp/f", CREAT | oflag::O_EXCL | RW, 0o644),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        t.open("/tmp", CREAT | oflag::O_EXCL | RW, 0o644),
        Err(Errno::EEXIST)
    );
    // O_DIRECTORY on a file; a file as a directory.
    assert_eq!(
        t.open("/tmp/f", oflag::O_RDONLY | oflag::O_DIRECTORY, 0),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(t.open("/tmp/f/", oflag::O_RDONLY, 0), Err(Errno::ENOTDIR));
    assert_eq!(t.open("/tmp/f/x", oflag::O_RDONLY, 0), Err(Errno::ENOTDIR));
    // A name that must be a directory cannot be created as a file.
    assert_eq!(t.open("/tmp/new/", CREAT | RW, 0o644), Err(Errno::ENOENT));
    // A directory for writing, or with O_CREAT.
    assert_eq!(t.open("/tmp", oflag::O_WRONLY, 0), Err(Errno::EISDIR));
    assert_eq!(t.open("/tmp", RW, 0), Err(Errno::EISDIR));
    // O_CREAT on the root of a mounted file system: EEXIST, as namei
    // refuses to create over a mount point; on a plain directory it opens
    // it, unless for writing.
    assert_eq!(t.open("/tmp", CREAT, 0o644), Err(Errno::EEXIST));
    t.mkdir("/tmp/dir");
    assert!(t.open("/tmp/dir", CREAT, 0o644).is_ok());
    assert_eq!(t.open("/tmp/dir", CREAT | RW, 0o644), Err(Errno::EISDIR));
    assert_eq!(t.open("/tmp/dir", oflag::O_TRUNC, 0), Err(Errno::EISDIR));
    // O_CREAT with O_DIRECTORY is EINVAL before any lookup.
    assert_eq!(
        t.open("/tmp/dir", CREAT | oflag::O_DIRECTORY, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        t.open("/tmp/nothing", CREAT | oflag::O_DIRECTORY, 0),
        Err(Errno::EINVAL)
    );
    let d = t.open("/tmp", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(t.read(d, 10), Err(Errno::EISDIR));
    // O_TRUNC empties the file even when it is opened read-only, as
    // NetBSD's vn_open does.
    let r = t
        .open("/tmp/f", oflag::O_RDONLY | oflag::O_TRUNC, 0)
        .unwrap();
    assert_eq!(t.read(r, 100).unwrap(), b"");
    t.create("/tmp/f", b"0123456789");
    let w = t
        .open("/tmp/f", oflag::O_WRONLY | oflag::O_TRUNC, 0)
        .unwrap();
    assert_eq!(t.stat("/tmp/f").unwrap().st_size.get(), 0);
    // Access mode is enforced.
    assert_eq!(t.read(w, 1), Err(Errno::EBADF));
    assert_eq!(t.write(r, b"x"), Err(Errno::EBADF));
    // A file opened for writing exists even before anything is written.
    assert!(t.open("/tmp/g", CREAT | oflag::O_WRONLY, 0o600).is_ok());
    assert_eq!(
        t.stat("/tmp/g").unwrap().st_mode.get(),
        mode::S_IFREG | 0o600
    );
}

#[test]
fn o_append_writes_at_the_end() {
    let t = T::new();
    t.create("/tmp/log", b"one\n");
    let a = t
        .open("/tmp/log", oflag::O_WRONLY | oflag::O_APPEND, 0)
        .unwrap();
    let b = t.open("/tmp/log", oflag::O_WRONLY, 0).unwrap();
    assert_eq!(t.write(b, b"ONE\n"), Ok(4));
    assert_eq!(t.write(a, b"two\n"), Ok(4));
    assert_eq!(t.write(a, b"three\n"), Ok(6));
    assert_eq!(t.content("/tmp/log"), b"ONE\ntwo\nthree\n");
    // The append offset is the end; F_GETFL shows the flag.
    assert_eq!(
        t.ok(Sysnum::LSEEK, &[a as u64, 0, 0, misc::SEEK_CUR.into()]),
        14
    );
    let fl = t.ok(Sysnum::FCNTL, &[a as u64, 3, 0]) as u32;
    assert_eq!(fl, oflag::O_WRONLY | oflag::O_APPEND);
    // pwrite on an O_APPEND description appends too (NetBSD's vn_write
    // sets IO_APPEND whatever the offset), and leaves the offset.
    let buf = t.port.alloc(b"X".to_vec());
    assert_eq!(t.ok(Sysnum::PWRITE, &[a as u64, buf, 1, 0, 0]), 1);
    assert_eq!(t.content("/tmp/log"), b"ONE\ntwo\nthree\nX");
    assert_eq!(
        t.ok(Sysnum::LSEEK, &[a as u64, 0, 0, misc::SEEK_CUR.into()]),
        14
    );
    // An empty append write does not move the offset to the end.
    t.ok(Sysnum::LSEEK, &[a as u64, 0, 2, misc::SEEK_SET.into()]);
    assert_eq!(t.write(a, b""), Ok(0));
    assert_eq!(
        t.ok(Sysnum::LSEEK, &[a as u64, 0, 0, misc::SEEK_CUR.into()]),
        2
    );
}

#[test]
fn lseek_whence_and_errors() {
    let t = T::new();
    t.create("/tmp/f", b"0123456789");
    let fd = t.open("/tmp/f", RW, 0).unwrap() as u64;
    let seek = |off: i64, wh: u32| {
        t.call(Sysnum::LSEEK, &[fd, 0, off as u64, wh.into()])
            .map(|r| r[0])
    };
    assert_eq!(seek(3, misc::SEEK_SET), Ok(3));
    assert_eq!(seek(2, misc::SEEK_CUR), Ok(5));
    assert_eq!(t.read(fd as i32, 2).unwrap(), b"56");
    assert_eq!(seek(-1, misc::SEEK_END), Ok(9));
    assert_eq!(t.read(fd as i32, 5).unwrap(), b"9");
    assert_eq!(seek(-11, misc::SEEK_END), Err(Errno::EINVAL));
    assert_eq!(seek(0, 3), Err(Errno::EINVAL));
    assert_eq!(seek(i64::MAX, misc::SEEK_END), Err(Errno::EINVAL));
    // Past the end: a read gives nothing, a write leaves a hole of zeros.
    assert_eq!(seek(20, misc::SEEK_SET), Ok(20));
    assert_eq!(t.read(fd as i32, 5).unwrap(), b"");
    assert_eq!(t.write(fd as i32, b"!"), Ok(1));
    let mut want = b"0123456789".to_vec();
    want.extend([0; 10]);
    want.push(b'!');
    assert_eq!(t.content("/tmp/f"), want);
    assert_eq!(t.err(Sysnum::LSEEK, &[99, 0, 0, 0]), Errno::EBADF);
}

#[test]
fn pread_pwrite_leave_the_offset() {
    let t = T::new();
    t.create("/tmp/f", b"abcdef");
    let fd = t.open("/tmp/f", RW, 0).unwrap() as u64;
    let buf = t.port.alloc_zeroed(4);
    assert_eq!(t.ok(Sysnum::PREAD, &[fd, buf, 3, 0, 2]), 3);
    assert_eq!(t.port.read(buf, 3), b"cde");
    assert_eq!(t.ok(Sysnum::PREAD, &[fd, buf, 4, 0, 100]), 0);
    let src = t.port.alloc(b"XY".to_vec());
    assert_eq!(t.ok(Sysnum::PWRITE, &[fd, src, 2, 0, 4]), 2);
    assert_eq!(t.ok(Sysnum::PWRITE, &[fd, src, 2, 0, 8]), 2);
    assert_eq!(t.read(fd as i32, 100).unwrap(), b"abcdXY\0\0XY");
    assert_eq!(
        t.err(Sysnum::PREAD, &[fd, buf, 1, 0, (-1i64) as u64]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::PWRITE, &[fd, src, 1, 0, (-1i64) as u64]),
        Errno::EINVAL
    );
    let (r, w) = t.pipe();
    assert_eq!(
        t.err(Sysnum::PREAD, &[r as u64, buf, 1, 0, 0]),
        Errno::ESPIPE
    );
    assert_eq!(
        t.err(Sysnum::PWRITE, &[w as u64, src, 1, 0, 0]),
        Errno::ESPIPE
    );
}

#[test]
fn readv_writev() {
    let t = T::new();
    let fd = t.open("/tmp/v", CREAT | RW, 0o644).unwrap() as u64;
    let a = t.port.alloc(b"Hello".to_vec());
    let b = t.port.alloc(b", ".to_vec());
    let c = t.port.alloc(b"iovec!".to_vec());
    let iov = t.port.alloc(iovecs(&[(a, 5), (b, 2), (c, 0), (c, 6)]));
    assert_eq!(t.ok(Sysnum::WRITEV, &[fd, iov, 4]), 13);
    assert_eq!(t.content("/tmp/v"), b"Hello, iovec!");

    t.ok(Sysnum::LSEEK, &[fd, 0, 0, 0]);
    let x = t.port.alloc_zeroed(4);
    let y = t.port.alloc_zeroed(20);
    let iov = t.port.alloc(iovecs(&[(x, 4), (y, 20)]));
    assert_eq!(t.ok(Sysnum::READV, &[fd, iov, 2]), 13);
    assert_eq!(t.port.read(x, 4), b"Hell");
    assert_eq!(t.port.read(y, 9), b"o, iovec!");

    // No vectors: EINVAL, before the descriptor is even looked at.
    assert_eq!(t.err(Sysnum::READV, &[fd, iov, 0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::WRITEV, &[fd, iov, 0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::READV, &[99, iov, 0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::READV, &[fd, iov, 1025]), Errno::EINVAL);
    assert_eq!(
        t.err(Sysnum::WRITEV, &[fd, iov, (-1i64) as u64]),
        Errno::EINVAL
    );
    // A total beyond SSIZE_MAX.
    let huge = t
        .port
        .alloc(iovecs(&[(x, u64::MAX / 2), (x, u64::MAX / 2)]));
    assert_eq!(t.err(Sysnum::WRITEV, &[fd, huge, 2]), Errno::EINVAL);
    // A bad buffer inside the vector.
    let bad = t.port.alloc(iovecs(&[(x, 4), (0x10, 4)]));
    assert_eq!(t.err(Sysnum::WRITEV, &[fd, bad, 2]), Errno::EFAULT);
    assert_eq!(t.err(Sysnum::READV, &[99, iov, 2]), Errno::EBADF);
    // 1024 iovecs are allowed.
    let iov = t.port.alloc(iovecs(&[(a, 1); 1024]));
    assert_eq!(t.ok(Sysnum::WRITEV, &[fd, iov, 1024]), 1024);
}

#[test]
fn large_transfers_are_split() {
    let t = T::new();
    let n = (1 << 20) * 2 + 123;
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let fd = t.open("/tmp/big", CREAT | RW, 0o644).unwrap();
    assert_eq!(t.write(fd, &data), Ok(n as i64));
    assert_eq!(t.stat("/tmp/big").unwrap().st_size.get(), n as i64);
    t.ok(Sysnum::LSEEK, &[fd as u64, 0, 0, 0]);
    assert_eq!(t.read(fd, n + 10).unwrap(), data);
    assert_eq!(t.k.fs_used(), n as u64);
}

#[test]
fn ftruncate_grows_and_shrinks() {
    let t = T::new();
    t.create("/tmp/f", b"abcdef");
    let fd = t.open("/tmp/f", RW, 0).unwrap() as u64;
    assert_eq!(t.ok(Sysnum::FTRUNCATE, &[fd, 0, 3]), 0);
    assert_eq!(t.content("/tmp/f"), b"abc");
    assert_eq!(t.ok(Sysnum::FTRUNCATE, &[fd, 0, 5]), 0);
    assert_eq!(t.content("/tmp/f"), b"abc\0\0");
    assert_eq!(
        t.err(Sysnum::FTRUNCATE, &[fd, 0, (-1i64) as u64]),
        Errno::EINVAL
    );
    let ro = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.err(Sysnum::FTRUNCATE, &[ro, 0, 0]), Errno::EINVAL);
    let (r, _w) = t.pipe();
    assert_eq!(t.err(Sysnum::FTRUNCATE, &[r as u64, 0, 0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::FTRUNCATE, &[77, 0, 0]), Errno::EBADF);
}

#[test]
fn capacity_gives_enospc() {
    let t = T::on(Arc::new(ModelKernel::with_fs_capacity(100)));
    let fd = t.open("/tmp/f", CREAT | RW, 0o644).unwrap();
    assert_eq!(t.write(fd, &[1; 60]), Ok(60));
    assert_eq!(t.write(fd, &[1; 60]), Err(Errno::ENOSPC));
    assert_eq!(
        t.err(Sysnum::FTRUNCATE, &[fd as u64, 0, 1 << 40]),
        Errno::ENOSPC
    );
    assert_eq!(t.ok(Sysnum::FTRUNCATE, &[fd as u64, 0, 100]), 0);
    // Unlinking and closing frees the space.
    t.ok(Sysnum::UNLINK, &[t.s("/tmp/f")]);
    assert_eq!(t.k.fs_used(), 100);
    t.ok(Sysnum::CLOSE, &[fd as u64]);
    assert_eq!(t.k.fs_used(), 0);
    t.create("/tmp/g", &[2; 100]);
}

#[test]
fn dev_null() {
    let t = T::new();
    let fd = t.open("/dev/null", RW, 0).unwrap();
    assert_eq!(t.write(fd, b"discarded"), Ok(9));
    // /dev/null never looks at the buffer.
    assert_eq!(t.ok(Sysnum::WRITE, &[fd as u64, 0x10, 1000]), 1000);
    assert_eq!(t.read(fd, 100).unwrap(), b"");
    // As a stock rump kernel makes it: a rumpfs node made with mode 0666
    // under the kernel's umask 022, size 512 (DEV_BSIZE), one block.
    let st = t.fstat(fd).unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFCHR | 0o644);
    assert_eq!(st.st_rdev.get(), 0x202);
    assert_eq!(
        (st.st_size.get(), st.st_blocks.get(), st.st_blksize.get()),
        (512, 1, 512)
    );
    assert_eq!(t.stat("/dev/null").unwrap(), st);
    assert_eq!(t.ok(Sysnum::FSYNC, &[fd as u64]), 0);
    assert_eq!(t.ok(Sysnum::FTRUNCATE, &[fd as u64, 0, 0]), 0);
    // A device takes any offset, negative ones too.
    let seek = |off: i64, wh: u32| t.call(Sysnum::LSEEK, &[fd as u64, 0, off as u64, wh.into()]);
    assert_eq!(seek(0, misc::SEEK_END), Ok([512, 0]));
    assert_eq!(seek(-10, misc::SEEK_SET), Ok([-10, 0]));
    assert_eq!(seek(0, misc::SEEK_CUR), Ok([-10, 0]));
    let buf = t.port.alloc(b"x".to_vec());
    assert_eq!(
        t.ok(Sysnum::PWRITE, &[fd as u64, buf, 1, 0, (-5i64) as u64]),
        1
    );
    assert_eq!(
        t.ok(Sysnum::PREAD, &[fd as u64, buf, 1, 0, (-5i64) as u64]),
        0
    );
}

#[test]
fn dev_zero() {
    let t = T::new();
    let fd = t.open("/dev/zero", RW, 0).unwrap();
    let buf = t.port.alloc(vec![7; 10]);
    assert_eq!(t.ok(Sysnum::READ, &[fd as u64, buf, 10]), 10);
    assert_eq!(t.port.read(buf, 10), [0; 10]);
    assert_eq!(t.write(fd, b"gone"), Ok(4));
    let st = t.fstat(fd).unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFCHR | 0o644);
    assert_eq!(st.st_rdev.get(), 0x20c, "makedev(2, 12)");
    // A large read is filled in pieces.
    let n = (1 << 20) * 2 + 5;
    let big = t.port.alloc(vec![9; n]);
    assert_eq!(t.ok(Sysnum::READ, &[fd as u64, big, n as u64]), n as i64);
    assert!(t.port.read(big, n).iter().all(|&b| b == 0));
}

#[test]
fn stat_layout_and_fields() {
    let t = T::new();
    t.ok(Sysnum::UMASK, &[0o022]);
    t.create("/tmp/f", &[7; 1000]);
    let sb = t.port.alloc_zeroed(Stat::SIZE + 8);
    t.ok(Sysnum::STAT, &[t.s("/tmp/f"), sb]);
    let raw = t.port.read(sb, Stat::SIZE + 8);
    // Raw offsets of NetBSD's LP64 struct stat.
    let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(8), mode::S_IFREG | 0o644, "st_mode at 8");
    assert_eq!(u64_at(112), 1000, "st_size at 112");
    assert_eq!(
        u64_at(0),
        0xab01,
        "st_dev at 0: the first tmpfs, makedev(171, 1)"
    );
    assert_eq!(u32_at(24), 1, "st_nlink at 24");
    assert_eq!(u64_at(40), u64::MAX, "st_rdev at 40: NODEV");
    assert_eq!(u64_at(120), 8, "st_blocks at 120: one 4096-byte page");
    assert_eq!(u32_at(128), 4096, "st_blksize at 128");
    assert_eq!(&raw[Stat::SIZE..], &[0; 8], "exactly 152 bytes copied out");
    let st = Stat::from_bytes(&raw).unwrap();
    assert!(st.st_mtim.sec.get() > 1_000_000_000);
    assert!(st.st_mtim.sec.get() >= st.st_birthtim.sec.get());

    // Inode numbers are unique; types are right.
    let dir = t.stat("/tmp").unwrap();
    assert_eq!(dir.st_mode.get(), mode::S_IFDIR | 0o1777);
    assert_eq!(dir.st_nlink.get(), 2);
    // A tmpfs directory's size is 48 bytes per entry.
    assert_eq!((dir.st_size.get(), dir.st_blocks.get()), (48, 8));
    // The root is rumpfs: two links whatever it holds, 512-byte blocks,
    // and its st_dev is its own inode number.
    let root = t.stat("/").unwrap();
    assert_eq!(root.st_mode.get(), mode::S_IFDIR | 0o755);
    assert_eq!(root.st_nlink.get(), 2);
    assert_eq!(
        (
            root.st_size.get(),
            root.st_blocks.get(),
            root.st_blksize.get()
        ),
        (512, 1, 512)
    );
    assert_eq!(root.st_ino.get(), 3);
    assert_eq!(root.st_dev.get(), root.st_ino.get());
    assert_eq!(root.st_rdev.get(), u64::MAX);
    let inos = [
        st.st_ino.get(),
        dir.st_ino.get(),
        root.st_ino.get(),
        t.stat("/dev/null").unwrap().st_ino.get(),
    ];
    for (i, a) in inos.iter().enumerate() {
        assert!(inos[i + 1..].iter().all(|b| b != a), "{inos:?}");
    }
    // lstat is stat for a file; fstat agrees.
    let lsb = t.port.alloc_zeroed(Stat::SIZE);
    t.ok(Sysnum::LSTAT, &[t.s("/tmp/f"), lsb]);
    assert_eq!(Stat::from_bytes(&t.port.read(lsb, Stat::SIZE)).unwrap(), st);
    let fd = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(t.fstat(fd).unwrap(), st);
    assert_eq!(t.stat("/tmp/nope"), Err(Errno::ENOENT));
    assert_eq!(t.fstat(42), Err(Errno::EBADF));
}

#[test]
fn umask_masks_creation_modes() {
    let t = T::new();
    assert_eq!(t.ok(Sysnum::UMASK, &[0o077]), 0o022);
    t.create("/tmp/secret", b"");
    t.mkdir("/tmp/d");
    assert_eq!(
        t.stat("/tmp/secret").unwrap().st_mode.get(),
        mode::S_IFREG | 0o600
    );
    assert_eq!(
        t.stat("/tmp/d").unwrap().st_mode.get(),
        mode::S_IFDIR | 0o700
    );
    assert_eq!(t.ok(Sysnum::UMASK, &[0o7777 + 0o10000]), 0o077);
    assert_eq!(t.ok(Sysnum::UMASK, &[0]), 0o7777);
    assert_eq!(t.k.proc_info(t.p).unwrap().umask, 0);
}

#[test]
fn unlinked_file_stays_open() {
    let t = T::new();
    t.create("/tmp/f", b"still here");
    let nodes = t.k.fs_nodes();
    let fd = t.open("/tmp/f", RW, 0).unwrap();
    t.ok(Sysnum::UNLINK, &[t.s("/tmp/f")]);
    assert_eq!(t.stat("/tmp/f"), Err(Errno::ENOENT));
    assert_eq!(t.fstat(fd).unwrap().st_nlink.get(), 0);
    assert_eq!(t.read(fd, 100).unwrap(), b"still here");
    assert_eq!(t.write(fd, b"!"), Ok(1));
    assert_eq!(t.k.fs_nodes(), nodes);
    t.ok(Sysnum::CLOSE, &[fd as u64]);
    assert_eq!(t.k.fs_nodes(), nodes - 1);
    assert_eq!(t.err(Sysnum::UNLINK, &[t.s("/tmp/f")]), Errno::ENOENT);
    // The roots of the tmpfs and of the root file system are busy.
    assert_eq!(t.err(Sysnum::UNLINK, &[t.s("/tmp")]), Errno::EBUSY);
    assert_eq!(t.err(Sysnum::UNLINK, &[t.s("/")]), Errno::EBUSY);
    t.mkdir("/tmp/d");
    assert_eq!(t.err(Sysnum::UNLINK, &[t.s("/tmp/d")]), Errno::EPERM);
}

#[test]
fn access_modes() {
    let t = T::new();
    t.create("/tmp/f", b"");
    let f = t.s("/tmp/f");
    for m in [misc::F_OK, misc::R_OK, misc::W_OK, misc::R_OK | misc::W_OK] {
        assert_eq!(t.ok(Sysnum::ACCESS, &[f, m.into()]), 0);
    }
    assert_eq!(
        t.err(Sysnum::ACCESS, &[f, misc::X_OK.into()]),
        Errno::EACCES
    );
    assert_eq!(t.ok(Sysnum::ACCESS, &[t.s("/tmp"), misc::X_OK.into()]), 0);
    assert_eq!(t.err(Sysnum::ACCESS, &[f, 8]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::ACCESS, &[t.s("/nope"), 0]), Errno::ENOENT);
}

#[test]
fn fsync_is_a_noop() {
    let t = T::new();
    t.create("/tmp/f", b"x");
    let fd = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.ok(Sysnum::FSYNC, &[fd]), 0);
    assert_eq!(t.err(Sysnum::FSYNC, &[fd + 1]), Errno::EBADF);
    let (r, _) = t.pipe();
    assert_eq!(t.err(Sysnum::FSYNC, &[r as u64]), Errno::EINVAL);
}

#[test]
fn open_file_offsets_are_per_open() {
    let t = T::new();
    t.create("/tmp/f", b"abcdef");
    let a = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap();
    let b = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(t.read(a, 2).unwrap(), b"ab");
    assert_eq!(t.read(b, 3).unwrap(), b"abc");
    assert_eq!(t.read(a, 2).unwrap(), b"cd");
    // Another process opening the file gets its own offset, and sees the
    // same data.
    let u = T::on(t.k.clone());
    let c = u.open("/tmp/f", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(c, 3);
    assert_eq!(u.read(c, 10).unwrap(), b"abcdef");
    let _ =
        t.k.syscall(t.p, Sysnum::CLOSE.0, &args::encode(&[a as u64]), &*t.port);
}

#[test]
fn a_write_past_the_file_size_limit_is_efbig() {
    let t = T::new();
    let fd = t.open("/tmp/f", CREAT | RW, 0o644).unwrap() as u64;
    let buf = t.port.alloc(b"0123456789".to_vec());
    let at = (i64::MAX - 2) as u64;
    // The end would pass RLIMIT_FSIZE (i64::MAX): EFBIG and SIGXFSZ (25),
    // before any byte is asked for.
    assert_eq!(t.err(Sysnum::PWRITE, &[fd, buf, 10, 0, at]), Errno(27));
    assert_eq!(t.err(Sysnum::PWRITE, &[fd, 0x10, 10, 0, at]), Errno(27));
    assert_eq!(t.port.raised(), [25, 25]);
    t.ok(Sysnum::LSEEK, &[fd, 0, at, misc::SEEK_SET.into()]);
    assert_eq!(t.err(Sysnum::WRITE, &[fd, buf, 10]), Errno(27));
    // Nothing to write is fine; a device has no size.
    assert_eq!(t.ok(Sysnum::PWRITE, &[fd, buf, 0, 0, i64::MAX as u64]), 0);
    let null = t.open("/dev/null", RW, 0).unwrap() as u64;
    assert_eq!(t.ok(Sysnum::PWRITE, &[null, buf, 2, 0, i64::MAX as u64]), 2);
    assert_eq!(t.port.raised().len(), 3);
}
