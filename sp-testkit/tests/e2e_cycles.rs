//! End to end, one thread: our client against our server with the model
//! kernel, over unix and tcp. Handshake and getpid, file I/O through
//! COPYIN/COPYOUT/COPYINSTR, NetBSD errno values, a large round trip,
//! signals (RAISE), anonymous memory (ANONMMAP) and refused copies.

use crossbeam_channel::Receiver;
use sp_client::{Buf, Client, DisconnectReason, Errno, Options};
use sp_proto::abi::{dt, misc, mode, oflag, Signal, Sysnum};
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, pattern, WAIT};

/// Options naming the process, taking the signals the server raises into a
/// channel (so none reaches this test process), and telling the client that
/// our server accepts ERROR answers to its copies.
fn opts(name: &str) -> (Options, Receiver<u32>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let o = Options::new()
        .name(name)
        .server_accepts_copy_errors(true)
        .on_signal(move |s| {
            let _ = tx.send(s);
        });
    (o, rx)
}

fn connect(s: &TestServer, name: &str) -> (Client, Receiver<u32>) {
    let (o, rx) = opts(name);
    (Client::connect_with(&s.url(), o).expect("connects"), rx)
}

#[test]
fn errno_values_are_netbsds() {
    let want = [
        (Errno::ENOENT, 2),
        (Errno::EBADF, 9),
        (Errno::EFAULT, 14),
        (Errno::EEXIST, 17),
        (Errno::ENOTDIR, 20),
        (Errno::EISDIR, 21),
        (Errno::EPIPE, 32),
        (Errno::ENOTCONN, 57),
        (Errno::ENOTEMPTY, 66),
    ];
    for (e, n) in want {
        assert_eq!(e, Errno(n), "{e}");
    }
    assert_eq!((Signal::SIGPIPE.0, Signal::SIGUSR1.0), (13, 30));
}

#[test]
fn handshake_getpid_and_process_name() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-hello");
        let banner = c.banner().expect("a guest connection reads the banner");
        assert_eq!((banner.major, banner.minor), (0, 4), "{t:?}");
        assert!(c.is_connected());
        assert_eq!(c.getpid(), Ok((2, 1)), "{t:?}: first client is pid 2");
        assert_eq!(c.getppid(), Ok(1));
        assert_eq!(k.comm(2).as_deref(), Some(&b"e2e-hello"[..]));
        let info = k.proc_info(k.proc_by_pid(2).unwrap()).unwrap();
        assert!(info.attached && !info.exiting, "{info:?}");
        assert_eq!((info.pid, info.ppid), (2, 1));
        assert_eq!(
            info.fds,
            [0, 1, 2],
            "a guest starts with the console on 0, 1 and 2"
        );

        // A second client is a second process, named by its own options.
        let (c2, _sig2) = connect(&s, "e2e-second");
        assert_eq!(c2.getpid(), Ok((3, 1)));
        assert_eq!(k.comm(3).as_deref(), Some(&b"e2e-second"[..]));
        assert_eq!(k.process_count(), 2);
        assert_eq!(s.server.stats().connections, 2);

        // Dropping a client ends its process.
        drop(c2);
        eventually("the second process is released", || k.process_count() == 1);
        assert_eq!(k.pids(), [2]);
        assert_eq!(c.getpid(), Ok((2, 1)), "the first client is unaffected");
        drop(c);
        eventually("every process is released", || k.process_count() == 0);
        eventually("no connection left", || s.server.stats().connections == 0);
    }
}

#[test]
fn file_io_and_errors() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-files");
        let rw_new = oflag::O_CREAT | oflag::O_EXCL | oflag::O_RDWR;

        // open, write, lseek, read.
        let fd = c.open("/tmp/e2e.txt", rw_new, 0o640).unwrap();
        assert_eq!(fd, 3, "lowest free descriptor, after the console's");
        assert_eq!(c.write(fd, b"hello, world"), Ok(12));
        assert_eq!(c.lseek(fd, 0, misc::SEEK_CUR), Ok(12));
        assert_eq!(c.lseek(fd, 7, misc::SEEK_SET), Ok(7));
        let mut buf = [0u8; 32];
        assert_eq!(c.read(fd, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"world");
        assert_eq!(c.read(fd, &mut buf), Ok(0), "end of file");
        assert_eq!(c.lseek(fd, -5, misc::SEEK_END), Ok(7));

        // pwrite/pread leave the offset alone.
        assert_eq!(c.pwrite(fd, b"HELLO", 0), Ok(5));
        let mut five = [0u8; 5];
        assert_eq!(c.pread(fd, &mut five, 0), Ok(5));
        assert_eq!(&five, b"HELLO");
        assert_eq!(c.pread(fd, &mut five, 100), Ok(0));
        assert_eq!(c.lseek(fd, 0, misc::SEEK_CUR), Ok(7));
        assert_eq!(c.lseek(fd, 0, misc::SEEK_SET), Ok(0));
        assert_eq!(c.read(fd, &mut buf), Ok(12));
        assert_eq!(&buf[..12], b"HELLO, world");

        // fstat and stat: sizes and modes (umask 022 leaves 0640 alone).
        let st = c.fstat(fd).unwrap();
        assert_eq!(st.size(), 12);
        assert_eq!(st.mode(), mode::S_IFREG | 0o640);
        assert_eq!(st.nlink(), 1);
        let by_path = c.stat("/tmp/e2e.txt").unwrap();
        assert_eq!(by_path.ino(), st.ino());
        assert_eq!(by_path.size(), 12);
        assert_eq!(c.stat("/tmp").unwrap().mode() & mode::S_IFMT, mode::S_IFDIR);

        // ftruncate down and up.
        c.ftruncate(fd, 5).unwrap();
        assert_eq!(c.fstat(fd).unwrap().size(), 5);
        c.ftruncate(fd, 100).unwrap();
        assert_eq!(c.stat("/tmp/e2e.txt").unwrap().size(), 100);
        let mut tail = [0xffu8; 10];
        assert_eq!(c.pread(fd, &mut tail, 50), Ok(10));
        assert_eq!(tail, [0; 10], "the extension reads as zeros");
        assert_eq!(c.pread(fd, &mut five, 0), Ok(5));
        assert_eq!(&five, b"HELLO");

        // rename, then the old name is gone.
        c.rename("/tmp/e2e.txt", "/tmp/renamed.txt").unwrap();
        assert_eq!(c.stat("/tmp/e2e.txt").err(), Some(Errno(2)));
        assert_eq!(c.stat("/tmp/renamed.txt").unwrap().size(), 100);
        assert_eq!(
            c.open("/tmp/renamed.txt", rw_new, 0o600),
            Err(Errno(17)),
            "O_EXCL on an existing file: EEXIST"
        );

        // unlink: the name goes, the open file stays readable.
        c.unlink("/tmp/renamed.txt").unwrap();
        assert_eq!(c.stat("/tmp/renamed.txt").err(), Some(Errno::ENOENT));
        assert_eq!(c.unlink("/tmp/renamed.txt"), Err(Errno::ENOENT));
        assert_eq!(c.fstat(fd).unwrap().nlink(), 0);
        assert_eq!(c.pread(fd, &mut five, 0), Ok(5));
        c.close(fd).unwrap();

        // EBADF on a closed descriptor.
        assert_eq!(c.close(fd), Err(Errno(9)));
        assert_eq!(c.read(fd, &mut buf), Err(Errno::EBADF));
        assert_eq!(c.write(fd, b"x"), Err(Errno::EBADF));
        assert_eq!(c.fstat(42).err(), Some(Errno::EBADF));

        // ENOENT.
        assert_eq!(c.open("/nonexistent", oflag::O_RDONLY, 0), Err(Errno(2)));
        assert_eq!(c.open("/no/such/dir/f", rw_new, 0o644), Err(Errno(2)));

        // mkdir, EEXIST, EISDIR, ENOTDIR, ENOTEMPTY, rmdir.
        c.mkdir("/tmp/d", 0o755).unwrap();
        assert_eq!(c.mkdir("/tmp/d", 0o755), Err(Errno(17)));
        assert_eq!(c.stat("/tmp/d").unwrap().mode(), mode::S_IFDIR | 0o755);
        assert_eq!(
            c.open("/tmp/d", oflag::O_RDWR, 0),
            Err(Errno(21)),
            "a directory opened for writing: EISDIR"
        );
        let dfd = c
            .open("/tmp/d", oflag::O_RDONLY | oflag::O_DIRECTORY, 0)
            .unwrap();
        assert_eq!(c.read(dfd, &mut buf), Err(Errno::EISDIR));
        c.close(dfd).unwrap();
        let f = c.open("/tmp/d/f", rw_new, 0o644).unwrap();
        assert_eq!(c.write(f, b"inside"), Ok(6));
        c.close(f).unwrap();
        assert_eq!(
            c.open("/tmp/d/f/x", oflag::O_RDONLY, 0),
            Err(Errno(20)),
            "a file used as a directory: ENOTDIR"
        );
        assert_eq!(
            c.open("/tmp/d/f", oflag::O_RDONLY | oflag::O_DIRECTORY, 0),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(c.chdir("/tmp/d/f"), Err(Errno::ENOTDIR));
        assert_eq!(c.rmdir("/tmp/d"), Err(Errno(66)), "ENOTEMPTY");

        // getcwd/chdir, relative paths.
        assert_eq!(c.getcwd().unwrap(), b"/");
        c.chdir("/tmp/d").unwrap();
        assert_eq!(c.getcwd().unwrap(), b"/tmp/d");
        let f = c.open("f", oflag::O_RDONLY, 0).unwrap();
        assert_eq!(c.read(f, &mut buf), Ok(6));
        assert_eq!(&buf[..6], b"inside");
        c.close(f).unwrap();
        c.chdir("..").unwrap();
        assert_eq!(c.getcwd().unwrap(), b"/tmp");
        c.unlink("d/f").unwrap();
        c.rmdir("d").unwrap();
        assert_eq!(c.stat("/tmp/d").err(), Some(Errno::ENOENT));
        assert_eq!(c.rmdir("/tmp/d"), Err(Errno::ENOENT));

        assert!(k.wait_idle(WAIT));
        let info = k.proc_info(k.proc_by_pid(2).unwrap()).unwrap();
        assert_eq!(
            info.fds,
            [0, 1, 2],
            "every descriptor but the console's closed"
        );
    }
}

#[test]
fn directory_listing_of_many_entries() {
    const N: usize = 300;
    for t in Transport::ALL {
        let (s, _k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-readdir");
        c.mkdir("/tmp/many", 0o755).unwrap();
        let mut names: Vec<Vec<u8>> = (0..N)
            .map(|i| format!("file-number-{i:04}").into_bytes())
            .collect();
        for n in &names {
            let mut p = b"/tmp/many/".to_vec();
            p.extend_from_slice(n);
            let fd = c.open(&p, oflag::O_CREAT | oflag::O_WRONLY, 0o644).unwrap();
            c.close(fd).unwrap();
        }
        c.mkdir("/tmp/many/subdir", 0o700).unwrap();

        // read_dir: getdents until the end, several buffers' worth.
        let ents = c.read_dir("/tmp/many").unwrap();
        assert_eq!(ents.len(), N + 3, "{t:?}: files, subdir, . and ..");
        let dots: Vec<_> = ents
            .iter()
            .filter(|e| e.name() == b"." || e.name() == b"..")
            .collect();
        assert_eq!(dots.len(), 2);
        assert!(dots.iter().all(|e| e.raw_type() == dt::DT_DIR));
        let sub = ents.iter().find(|e| e.name() == b"subdir").unwrap();
        assert_eq!(sub.raw_type(), dt::DT_DIR);
        let mut files: Vec<Vec<u8>> = ents
            .iter()
            .filter(|e| e.raw_type() == dt::DT_REG)
            .map(|e| e.name().to_vec())
            .collect();
        files.sort();
        names.sort();
        assert_eq!(files, names);
        let st = c.stat("/tmp/many/file-number-0123").unwrap();
        let e123 = ents
            .iter()
            .find(|e| e.name() == b"file-number-0123")
            .unwrap();
        assert_eq!(e123.ino(), st.ino(), "d_fileno is the inode");

        // Raw getdents with a small buffer: many calls, the same entries.
        let fd = c
            .open("/tmp/many", oflag::O_RDONLY | oflag::O_DIRECTORY, 0)
            .unwrap();
        let mut small = vec![0u8; 200];
        let mut again = Vec::new();
        let mut calls = 0;
        loop {
            let n = c.getdents(fd, &mut small).unwrap();
            if n == 0 {
                break;
            }
            calls += 1;
            again.extend(
                sp_proto::abi::Dirent::decode_all(&small[..n])
                    .unwrap()
                    .into_iter()
                    .map(sp_client::DirEntry::from_raw),
            );
        }
        assert!(calls > 40, "{calls} getdents calls");
        assert_eq!(again, ents);
        assert_eq!(c.getdents(fd, &mut [0u8; 8]), Ok(0), "still at the end");
        c.lseek(fd, 0, misc::SEEK_SET).unwrap();
        assert_eq!(
            c.getdents(fd, &mut [0u8; 8]),
            Ok(0),
            "a buffer too small for one record: nothing, as tmpfs"
        );
        c.close(fd).unwrap();
        assert_eq!(
            c.read_dir("/tmp/many/file-number-0000"),
            Err(Errno::ENOTDIR)
        );
    }
}

#[test]
fn large_writes_and_reads_round_trip() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-big");
        // Exactly 1 MiB (one COPYIN), and more (split into several).
        for (i, len) in [(1u64, 1usize << 20), (2, (1 << 20) + 4097)] {
            let data = pattern(i, len);
            let path = format!("/tmp/big{i}");
            let fd = c
                .open(
                    &path,
                    oflag::O_CREAT | oflag::O_RDWR | oflag::O_TRUNC,
                    0o644,
                )
                .unwrap();
            assert_eq!(c.write(fd, &data), Ok(len), "{t:?}");
            assert_eq!(c.fstat(fd).unwrap().size(), len as u64);
            assert_eq!(c.lseek(fd, 0, misc::SEEK_SET), Ok(0));
            let mut back = vec![0u8; len + 100];
            let mut got = 0;
            while got < len {
                let n = c.read(fd, &mut back[got..]).unwrap();
                assert!(n > 0, "short file");
                got += n;
            }
            assert_eq!(got, len);
            assert!(back[..len] == data[..], "{t:?}: data differs");
            let mut p = vec![0u8; len];
            assert_eq!(c.pread(fd, &mut p, 0), Ok(len));
            assert!(p == data, "{t:?}: pread data differs");
            c.close(fd).unwrap();
        }
        assert!(k.wait_idle(WAIT));
    }
}

#[test]
fn sigpipe_and_kill_reach_the_signal_callback() {
    for t in Transport::ALL {
        let (s, _k) = TestServer::model(t);
        let (c, sigs) = connect(&s, "e2e-signals");
        let (pid, _) = c.getpid().unwrap();

        // A pipe that works.
        let (r, w) = c.pipe().unwrap();
        assert_eq!(c.write(w, b"abc"), Ok(3));
        let mut buf = [0u8; 8];
        assert_eq!(c.read(r, &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"abc");
        assert!(sigs.try_recv().is_err(), "no signal yet");

        // No reader: EPIPE and SIGPIPE.
        c.close(r).unwrap();
        assert_eq!(c.write(w, b"lost"), Err(Errno(32)), "{t:?}");
        assert_eq!(sigs.recv_timeout(WAIT), Ok(13), "SIGPIPE");
        assert_eq!(c.write(w, b"again"), Err(Errno::EPIPE));
        assert_eq!(sigs.recv_timeout(WAIT), Ok(Signal::SIGPIPE.0));

        // kill(own pid, SIGUSR1), kill(0, SIGUSR2).
        c.kill(pid, Signal::SIGUSR1).unwrap();
        assert_eq!(sigs.recv_timeout(WAIT), Ok(30));
        c.kill(0, Signal::SIGUSR2).unwrap();
        assert_eq!(sigs.recv_timeout(WAIT), Ok(Signal::SIGUSR2.0));
        c.kill(pid, 0).unwrap();
        assert_eq!(c.kill(999, Signal::SIGUSR1), Err(Errno::ESRCH));
        assert_eq!(c.refused_copies().signals, 4);
        assert!(sigs.try_recv().is_err(), "nothing else was raised");

        // A signal for another client: it sees it at its next call.
        let (other, other_sigs) = connect(&s, "e2e-target");
        let (other_pid, _) = other.getpid().unwrap();
        c.kill(other_pid, Signal::SIGUSR1).unwrap();
        assert_eq!(other.getpid(), Ok((other_pid, 1)));
        assert_eq!(other_sigs.recv_timeout(WAIT), Ok(Signal::SIGUSR1.0));
        assert!(sigs.try_recv().is_err(), "the sender got nothing");
    }
}

#[test]
fn anonymous_memory_from_the_server() {
    const LEN: u64 = 64 << 10;
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-mmap");
        let addr = c.mmap_anon(LEN).unwrap();
        assert_ne!(addr, 0);
        let m = c.mapping(addr).expect("the mapping is reachable");
        assert_eq!((m.addr(), m.len()), (addr, LEN as usize));
        assert_eq!(c.mappings().len(), 1);
        assert!(m.to_vec().iter().all(|&b| b == 0), "fresh anonymous memory");

        // Write into the mapping, then write(2) from it into a file: the
        // server's COPYIN is served from the mapping.
        let msg = b"written from the mapping";
        assert!(m.write_at(100, msg));
        let fd = c
            .open("/tmp/mapped", oflag::O_CREAT | oflag::O_RDWR, 0o644)
            .unwrap();
        let n = msg.len() as u64;
        assert_eq!(
            c.syscall(Sysnum::WRITE, &[fd as u64, addr + 100, n], &mut []),
            Ok([n as i64, 0]),
            "{t:?}"
        );
        let mut back = vec![0u8; msg.len()];
        assert_eq!(c.pread(fd, &mut back, 0), Ok(msg.len()));
        assert_eq!(back, msg);

        // read(2) into the mapping: the COPYOUT lands there.
        c.pwrite(fd, b"into memory", 0).unwrap();
        c.lseek(fd, 0, misc::SEEK_SET).unwrap();
        assert_eq!(
            c.syscall(Sysnum::READ, &[fd as u64, addr + 4000, 11], &mut []),
            Ok([11, 0])
        );
        let mut got = [0u8; 11];
        assert!(m.read_at(4000, &mut got));
        assert_eq!(&got, b"into memory");
        assert_eq!(
            c.with_mapping(addr, |mem| mem[4000..4011].to_vec()),
            Some(b"into memory".to_vec())
        );

        // A copy running past the end of the mapping is refused.
        let before = c.refused_copies().refused_copyin;
        assert_eq!(
            c.syscall(Sysnum::WRITE, &[fd as u64, addr + LEN - 4, 16], &mut []),
            Err(Errno::EFAULT)
        );
        assert_eq!(c.refused_copies().refused_copyin, before + 1);

        // A second mapping; a refused size; a zero size.
        let second = c.mmap_anon(4096).unwrap();
        assert_ne!(second, addr);
        assert_eq!(c.mapping(second).unwrap().len(), 4096);
        assert_eq!(c.mappings().len(), 2);
        assert_eq!(
            c.mmap_anon(c.options().max_anonmmap + 1),
            Err(Errno::ENOMEM),
            "the client answers 0, the server reports ENOMEM"
        );
        assert_eq!(c.mmap_anon(0), Err(Errno::EINVAL));
        assert!(c.unmap(second));
        assert!(c.mapping(second).is_none());
        assert!(c.is_connected());
        assert!(k.wait_idle(WAIT));
    }
}

#[test]
fn refused_copies_fail_with_efault_and_keep_the_connection() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let (c, _sig) = connect(&s, "e2e-refuse");
        let fd = c
            .open("/tmp/r", oflag::O_CREAT | oflag::O_RDWR, 0o644)
            .unwrap();
        assert_eq!(c.refused_copies().refused_copyin, 0);

        // A bogus pointer for write(2): the COPYIN is refused.
        assert_eq!(
            c.syscall(Sysnum::WRITE, &[fd as u64, 0x10, 5], &mut []),
            Err(Errno(14)),
            "{t:?}"
        );
        assert_eq!(c.refused_copies().refused_copyin, 1);
        assert!(c.is_connected());
        assert_eq!(c.getpid(), Ok((2, 1)));

        // An exposed buffer, but a length past its end.
        let four = [7u8; 4];
        let detailed = c.syscall_detailed(
            Sysnum::WRITE,
            &[fd as u64, four.as_ptr() as u64, 16],
            &mut [Buf::In(&four)],
        );
        assert_eq!(detailed.map_err(|e| e.errno()), Err(Errno::EFAULT));
        assert_eq!(c.refused_copies().refused_copyin, 2);
        // Within the buffer it works.
        assert_eq!(
            c.syscall(
                Sysnum::WRITE,
                &[fd as u64, four.as_ptr() as u64, 4],
                &mut [Buf::In(&four)]
            ),
            Ok([4, 0])
        );
        assert_eq!(
            c.fstat(fd).unwrap().size(),
            4,
            "refused writes wrote nothing"
        );

        // A bogus path pointer (COPYINSTR).
        assert_eq!(
            c.syscall(
                Sysnum::OPEN,
                &[0x30, u64::from(oflag::O_RDONLY), 0],
                &mut []
            ),
            Err(Errno::EFAULT)
        );
        assert_eq!(c.refused_copies().refused_copyin, 3);

        // A COPYOUT to a bogus pointer is dropped and fails the call.
        c.lseek(fd, 0, misc::SEEK_SET).unwrap();
        assert_eq!(
            c.syscall(Sysnum::READ, &[fd as u64, 0x20, 4], &mut []),
            Err(Errno::EFAULT)
        );
        assert_eq!(c.refused_copies().refused_copyout, 1);

        // An output buffer handed as input only: the COPYOUT is refused.
        c.lseek(fd, 0, misc::SEEK_SET).unwrap();
        let ro = [0u8; 4];
        assert_eq!(
            c.syscall(
                Sysnum::READ,
                &[fd as u64, ro.as_ptr() as u64, 4],
                &mut [Buf::In(&ro)]
            ),
            Err(Errno::EFAULT)
        );
        assert_eq!(ro, [0; 4]);
        assert_eq!(c.refused_copies().refused_copyout, 2);

        assert!(c.is_connected());
        let mut buf = [0u8; 4];
        assert_eq!(c.pread(fd, &mut buf, 0), Ok(4));
        assert_eq!(buf, [7; 4]);
        assert!(k.wait_idle(WAIT));
        assert_eq!(k.process_count(), 1);
    }
}

#[test]
fn refused_copyin_closes_the_connection_by_default() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        // The default: the server is not trusted to take an ERROR answer.
        let o = Options::new().name("e2e-closing").on_signal(|_| {});
        assert!(!o.server_accepts_copy_errors);
        let c = Client::connect_with(&s.url(), o).unwrap();
        let fd = c
            .open("/tmp/c", oflag::O_CREAT | oflag::O_RDWR, 0o644)
            .unwrap();
        assert_eq!(
            c.syscall(Sysnum::WRITE, &[fd as u64, 0x10, 5], &mut []),
            Err(Errno::EFAULT),
            "{t:?}"
        );
        assert_eq!(c.refused_copies().refused_copyin, 1);
        assert!(!c.is_connected());
        assert!(
            matches!(
                c.disconnect_reason(),
                Some(DisconnectReason::CopyRefused(r)) if r.addr == 0x10 && r.len == 5
            ),
            "{:?}",
            c.disconnect_reason()
        );
        assert_eq!(c.getpid(), Err(Errno::ENOTCONN));
        // The kernel thread waiting for the copy fails and the process goes.
        eventually("the process is released", || k.process_count() == 0);
        assert!(k.wait_idle(WAIT));
    }
}
