//! Directories, path resolution, rename, cwd, getdents.

use super::T;
use sp_model::{num, Boot, ModelKernel};
use sp_proto::abi::{dt, mode, oflag, Dirent, Errno, Sysnum};
use std::sync::Arc;

#[test]
fn initial_tree() {
    let t = T::new();
    // The root is rumpfs: no . or .., the newest entry first.
    assert_eq!(t.names("/"), ["tmp", "dev"]);
    assert_eq!(t.names("/dev"), ["zero", "null"]);
    // /tmp is a tmpfs: . and .., then the entries oldest first.
    assert_eq!(t.names("/tmp"), [".", ".."]);
    let (root, _) = t.list("/", 4096);
    assert!(root.iter().all(|d| d.kind == dt::DT_DIR));
    // Inode numbers as a stock rump kernel hands them out.
    let ino = |p: &str| t.stat(p).unwrap().st_ino.get();
    assert_eq!(
        [ino("/"), ino("/dev"), ino("/dev/null"), ino("/dev/zero")],
        [3, 4, 6, 7]
    );
    let (dev, _) = t.list("/dev", 4096);
    assert_eq!(dev[1].kind, dt::DT_CHR);
    assert_eq!(dev[1].fileno, ino("/dev/null"));
    // The tmpfs root on /tmp: its own device, its .. is its own root in
    // the listing, and /tmp/.. leads back to /.
    let (tmp, _) = t.list("/tmp", 4096);
    assert_eq!(tmp[0].fileno, ino("/tmp"));
    assert_eq!(tmp[1].fileno, ino("/tmp"));
    assert_eq!(ino("/tmp/.."), ino("/"));
    assert_ne!(
        t.stat("/tmp").unwrap().st_dev.get(),
        t.stat("/").unwrap().st_dev.get()
    );
}

#[test]
fn without_the_tmpfs_tmp_is_rumpfs() {
    let k = Arc::new(ModelKernel::boot(Boot {
        tmpfs_on_tmp: false,
        ..Boot::default()
    }));
    let t = T::on(k);
    let st = t.stat("/tmp").unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFDIR | 0o1777);
    assert_eq!(st.st_ino.get(), 5);
    assert_eq!((st.st_size.get(), st.st_blksize.get()), (512, 512));
    assert!(t.names("/tmp").is_empty());
    // rumpfs can be emptied: /tmp is removable there.
    t.ok(Sysnum::RMDIR, &[t.s("/tmp")]);
    assert_eq!(t.names("/"), ["dev"]);
}

#[test]
fn path_resolution() {
    let t = T::new();
    t.mkdir("/tmp/a");
    t.mkdir("/tmp/a/b");
    t.create("/tmp/a/b/f", b"x");
    for p in [
        "/tmp/a/b/f",
        "//tmp///a/b//f",
        "/tmp/./a/./b/f",
        "/tmp/a/../a/b/f",
        "/../../tmp/a/b/f",
        "/tmp/a/b/../../a/b/./f",
    ] {
        assert_eq!(t.content(p), b"x", "{p}");
    }
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/a")]);
    assert_eq!(t.content("b/f"), b"x");
    assert_eq!(t.content("./b/f"), b"x");
    assert_eq!(t.content("../a/b/f"), b"x");
    assert_eq!(
        t.stat("b/").unwrap().st_ino.get(),
        t.stat("/tmp/a/b").unwrap().st_ino.get()
    );
    assert_eq!(t.stat("b/f/"), Err(Errno::ENOTDIR));
    assert_eq!(t.stat("b/f/g"), Err(Errno::ENOTDIR));
    assert_eq!(t.stat("b/nope/g"), Err(Errno::ENOENT));
    assert_eq!(t.stat(""), Err(Errno::ENOENT));

    // ENAMETOOLONG: a path of 1024 bytes or more, a component over 255
    // (NetBSD's KERNEL_NAME_MAX), on any file system.
    let long = format!("/{}", "a/".repeat(600));
    assert_eq!(t.stat(&long), Err(Errno::ENAMETOOLONG));
    let name = format!("/tmp/{}", "n".repeat(256));
    assert_eq!(t.stat(&name), Err(Errno::ENAMETOOLONG));
    assert_eq!(
        t.open(&name, oflag::O_CREAT | oflag::O_RDWR, 0o644),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        t.err(
            Sysnum::MKDIR,
            &[t.s(&format!("/{}", "r".repeat(256))), 0o755]
        ),
        Errno::ENAMETOOLONG
    );
    let ok_name = format!("/tmp/{}", "n".repeat(255));
    assert_eq!(t.stat(&ok_name), Err(Errno::ENOENT));
    t.create(&ok_name, b"longest");
    assert_eq!(t.content(&ok_name), b"longest");
    let deep = format!("/tmp{}", "/.".repeat(509));
    assert_eq!(deep.len(), 1022);
    assert!(t.stat(&deep).is_ok());
}

#[test]
fn mkdir_rmdir() {
    let t = T::new();
    t.mkdir("/tmp/d");
    assert_eq!(t.stat("/tmp").unwrap().st_nlink.get(), 3);
    assert_eq!(t.err(Sysnum::MKDIR, &[t.s("/tmp/d"), 0o755]), Errno::EEXIST);
    assert_eq!(t.err(Sysnum::MKDIR, &[t.s("/"), 0o755]), Errno::EEXIST);
    // The mount point /tmp: creating it is EEXIST, removing it EBUSY.
    assert_eq!(t.err(Sysnum::MKDIR, &[t.s("/tmp"), 0o755]), Errno::EEXIST);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp")]), Errno::EBUSY);
    assert_eq!(
        t.err(Sysnum::MKDIR, &[t.s("/tmp/x/y"), 0o755]),
        Errno::ENOENT
    );
    t.mkdir("/tmp/d/e/");
    t.create("/tmp/d/f", b"");
    assert_eq!(
        t.err(Sysnum::MKDIR, &[t.s("/tmp/d/f/g"), 0o755]),
        Errno::ENOTDIR
    );
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/d")]), Errno::ENOTEMPTY);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/d/f")]), Errno::ENOTDIR);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/d/.")]), Errno::EINVAL);
    assert_eq!(
        t.err(Sysnum::RMDIR, &[t.s("/tmp/d/e/..")]),
        Errno::ENOTEMPTY
    );
    // d/.. is the root of the tmpfs.
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/d/..")]), Errno::EBUSY);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/..")]), Errno::EBUSY);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/")]), Errno::EBUSY);
    assert_eq!(t.err(Sysnum::RMDIR, &[t.s("/tmp/zz")]), Errno::ENOENT);
    t.ok(Sysnum::RMDIR, &[t.s("/tmp/d/e")]);
    t.ok(Sysnum::UNLINK, &[t.s("/tmp/d/f")]);
    t.ok(Sysnum::RMDIR, &[t.s("/tmp/d/")]);
    assert_eq!(t.stat("/tmp/d"), Err(Errno::ENOENT));
    assert_eq!(t.stat("/tmp").unwrap().st_nlink.get(), 2);
}

#[test]
fn chdir_fchdir_getcwd() {
    let t = T::new();
    assert_eq!(t.getcwd().unwrap(), b"/");
    t.mkdir("/tmp/a");
    t.mkdir("/tmp/a/b");
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/a/b")]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/a/b");
    t.ok(Sysnum::CHDIR, &[t.s("..")]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/a");
    t.create("file", b"");
    assert_eq!(t.err(Sysnum::CHDIR, &[t.s("file")]), Errno::ENOTDIR);
    assert_eq!(t.err(Sysnum::CHDIR, &[t.s("nope")]), Errno::ENOENT);

    let root = t.open("/", oflag::O_RDONLY, 0).unwrap() as u64;
    let file = t.open("file", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.err(Sysnum::FCHDIR, &[file]), Errno::ENOTDIR);
    assert_eq!(t.err(Sysnum::FCHDIR, &[99]), Errno::EBADF);
    // Not a vnode: EINVAL (NetBSD's fd_getvnode).
    let (r, _) = t.pipe();
    assert_eq!(t.err(Sysnum::FCHDIR, &[r as u64]), Errno::EINVAL);
    t.ok(Sysnum::FCHDIR, &[root]);
    assert_eq!(t.getcwd().unwrap(), b"/");

    // __getcwd returns the length with the NUL; ERANGE if it does not fit.
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/a")]);
    let buf = t.port.alloc_zeroed(7);
    assert_eq!(t.ok(Sysnum::GETCWD, &[buf, 7]), 7);
    assert_eq!(t.port.read(buf, 7), b"/tmp/a\0");
    assert_eq!(t.err(Sysnum::GETCWD, &[buf, 6]), Errno::ERANGE);
    assert_eq!(t.err(Sysnum::GETCWD, &[buf, 0]), Errno::ERANGE);

    // The cwd removed under us: lookups and getcwd fail with ENOENT.
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/a/b")]);
    t.ok(Sysnum::RMDIR, &[t.s("/tmp/a/b")]);
    assert_eq!(t.getcwd(), Err(Errno::ENOENT));
    assert_eq!(t.stat("."), Err(Errno::ENOENT));
    assert_eq!(t.err(Sysnum::MKDIR, &[t.s("x"), 0o755]), Errno::ENOENT);
    assert_eq!(
        t.open("x", oflag::O_CREAT | oflag::O_RDWR, 0o644),
        Err(Errno::ENOENT)
    );
    assert_eq!(t.content("/tmp/a/file"), b"");
    // Each process has its own cwd.
    let u = T::on(t.k.clone());
    assert_eq!(u.getcwd().unwrap(), b"/");
}

#[test]
fn rename_cases() {
    let t = T::new();
    t.create("/tmp/a", b"A");
    t.create("/tmp/b", b"B");
    // Over an existing file.
    let ino_a = t.stat("/tmp/a").unwrap().st_ino.get();
    t.ok(Sysnum::RENAME, &[t.s("/tmp/a"), t.s("/tmp/b")]);
    assert_eq!(t.stat("/tmp/a"), Err(Errno::ENOENT));
    assert_eq!(t.content("/tmp/b"), b"A");
    assert_eq!(t.stat("/tmp/b").unwrap().st_ino.get(), ino_a);
    // Onto itself: nothing happens.
    t.ok(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/tmp/./b")]);
    assert_eq!(t.content("/tmp/b"), b"A");
    // Errors.
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/none"), t.s("/tmp/c")]),
        Errno::ENOENT
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/none/c")]),
        Errno::ENOENT
    );
    t.mkdir("/tmp/d");
    t.mkdir("/tmp/d/sub");
    t.mkdir("/tmp/empty");
    t.mkdir("/tmp/full");
    t.create("/tmp/full/x", b"");
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/tmp/d")]),
        Errno::EISDIR
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/d"), t.s("/tmp/b")]),
        Errno::ENOTDIR
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/d"), t.s("/tmp/full")]),
        Errno::ENOTEMPTY
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/d"), t.s("/tmp/d/sub/in")]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/d"), t.s("/tmp/d/in")]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/d/."), t.s("/tmp/e")]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/tmp/d/..")]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/"), t.s("/tmp/r")]),
        Errno::EBUSY
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b/"), t.s("/tmp/c")]),
        Errno::ENOTDIR
    );
    // A name that must be a directory and does not exist: a file cannot
    // go there.
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/tmp/c/")]),
        Errno::ENOENT
    );
    // rename to "." and "..".
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/tmp/d/.")]),
        Errno::EISDIR
    );
    // Across file systems: EXDEV; into the root (rumpfs): it does not
    // rename.
    t.mkdir("/tmp/xd");
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/dev/null"), t.s("/tmp/null")]),
        Errno::EXDEV
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("/b")]),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        t.err(Sysnum::RENAME, &[t.s("/tmp"), t.s("/tmp2")]),
        Errno::EBUSY
    );
    t.ok(Sysnum::RMDIR, &[t.s("/tmp/xd")]);
    // A directory over an empty one, and into another directory: link
    // counts and `..` follow.
    // A rename in place keeps the entry's place in the directory.
    t.ok(Sysnum::RENAME, &[t.s("/tmp/d"), t.s("/tmp/empty")]);
    assert_eq!(t.names("/tmp"), [".", "..", "b", "empty", "full"]);
    assert_eq!(t.names("/tmp/empty"), [".", "..", "sub"]);
    t.ok(
        Sysnum::RENAME,
        &[t.s("/tmp/empty/sub"), t.s("/tmp/full/sub")],
    );
    assert_eq!(t.stat("/tmp/empty").unwrap().st_nlink.get(), 2);
    assert_eq!(t.stat("/tmp/full").unwrap().st_nlink.get(), 3);
    assert_eq!(
        t.stat("/tmp/full/sub/..").unwrap().st_ino.get(),
        t.stat("/tmp/full").unwrap().st_ino.get()
    );
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/full/sub")]);
    t.ok(Sysnum::RENAME, &[t.s("/tmp/full"), t.s("/tmp/moved")]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/moved/sub");
    // A file over a file in another directory, relative paths.
    t.ok(Sysnum::RENAME, &[t.s("/tmp/b"), t.s("../x")]);
    assert_eq!(t.content("/tmp/moved/x"), b"A");
    assert_eq!(t.names("/tmp/moved"), [".", "..", "sub", "x"]);
    // Two names of one file: renaming one onto the other drops the
    // source name.
    t.ok(num::LINK, &[t.s("/tmp/moved/x"), t.s("/tmp/moved/y")]);
    t.ok(Sysnum::RENAME, &[t.s("/tmp/moved/x"), t.s("/tmp/moved/y")]);
    assert_eq!(t.names("/tmp/moved"), [".", "..", "sub", "y"]);
    assert_eq!(t.stat("/tmp/moved/y").unwrap().st_nlink.get(), 1);
}

#[test]
fn getdents_many_entries_across_calls() {
    let t = T::new();
    t.mkdir("/tmp/many");
    let mut want = vec![".".to_string(), "..".to_string()];
    for i in (0..200).rev() {
        let name = format!("file-{i:03}-{}", "x".repeat(i % 17));
        t.create(&format!("/tmp/many/{name}"), b"");
        want.push(name);
    }
    // tmpfs lists in creation order.
    // A small buffer: many calls, every entry exactly once, in order.
    let (ents, calls) = t.list("/tmp/many", 256);
    let names: Vec<String> = ents
        .iter()
        .map(|d| String::from_utf8(d.name.clone()).unwrap())
        .collect();
    assert_eq!(names, want);
    assert!(calls > 10, "{calls} calls");
    assert!(ents[2..].iter().all(|d| d.kind == dt::DT_REG));
    // A big buffer: one call.
    let (ents2, calls2) = t.list("/tmp/many", 1 << 16);
    assert_eq!(ents2, ents);
    assert_eq!(calls2, 1);
}

#[test]
fn getdents_records_and_errors() {
    let t = T::new();
    t.create("/tmp/abc", b"");
    let fd = t.open("/tmp", oflag::O_RDONLY, 0).unwrap() as u64;
    // A buffer too small for even one record: nothing, and the offset
    // stays.
    let buf = t.port.alloc_zeroed(4096);
    assert_eq!(t.ok(Sysnum::GETDENTS, &[fd, buf, 8]), 0);
    assert_eq!(t.ok(Sysnum::LSEEK, &[fd, 0, 0, 1]), 0);
    // Exactly one record's worth: "." (13 + 1 + 1 = 15, padded to 16).
    assert_eq!(Dirent::reclen(1), 16);
    assert_eq!(t.ok(Sysnum::GETDENTS, &[fd, buf, 16]), 16);
    let raw = t.port.read(buf, 16);
    assert_eq!(u16::from_le_bytes([raw[8], raw[9]]), 16, "d_reclen");
    assert_eq!(u16::from_le_bytes([raw[10], raw[11]]), 1, "d_namlen");
    assert_eq!(raw[12], dt::DT_DIR, "d_type");
    assert_eq!(&raw[13..15], b".\0");
    // The rest, then 0 at the end, and again 0.
    let n = t.ok(Sysnum::GETDENTS, &[fd, buf, 4096]) as usize;
    let rest = Dirent::decode_all(&t.port.read(buf, n)).unwrap();
    assert_eq!(
        rest.iter().map(|d| d.name.as_slice()).collect::<Vec<_>>(),
        [b"..".as_slice(), b"abc"]
    );
    assert_eq!(n % 8, 0, "records are 8-byte aligned");
    assert_eq!(t.ok(Sysnum::GETDENTS, &[fd, buf, 4096]), 0);
    assert_eq!(t.ok(Sysnum::GETDENTS, &[fd, buf, 4096]), 0);
    // tmpfs offsets: 0 is ".", 1 "..", 2 the end, entries from 3.
    assert_eq!(t.ok(Sysnum::LSEEK, &[fd, 0, 0, 1]), 2);
    t.ok(Sysnum::LSEEK, &[fd, 0, 1, 0]);
    let n = t.ok(Sysnum::GETDENTS, &[fd, buf, 40]) as usize;
    let two = Dirent::decode_all(&t.port.read(buf, n)).unwrap();
    assert_eq!(two.len(), 2, "..  and abc");
    // An offset that names no entry is EINVAL.
    t.ok(Sysnum::LSEEK, &[fd, 0, 999, 0]);
    assert_eq!(t.err(Sysnum::GETDENTS, &[fd, buf, 4096]), Errno::EINVAL);
    // lseek back to 0 restarts the listing.
    t.ok(Sysnum::LSEEK, &[fd, 0, 0, 0]);
    assert!(t.ok(Sysnum::GETDENTS, &[fd, buf, 4096]) > 0);
    // A failed copyout does not consume entries.
    t.ok(Sysnum::LSEEK, &[fd, 0, 0, 0]);
    assert_eq!(t.err(Sysnum::GETDENTS, &[fd, 0x10, 4096]), Errno::EFAULT);
    assert_eq!(t.ok(Sysnum::GETDENTS, &[fd, buf, 16]), 16);
    // Not a directory; not a vnode; not a descriptor.
    let f = t.open("/tmp/abc", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.err(Sysnum::GETDENTS, &[f, buf, 4096]), Errno::EINVAL);
    let (r, _) = t.pipe();
    assert_eq!(
        t.err(Sysnum::GETDENTS, &[r as u64, buf, 4096]),
        Errno::EINVAL
    );
    assert_eq!(t.err(Sysnum::GETDENTS, &[99, buf, 4096]), Errno::EBADF);
}
