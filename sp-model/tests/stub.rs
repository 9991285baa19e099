//! The stub kernel driven through an in-memory port (no sockets): the pid
//! sequence the captures need, its read, write and open, the test-only calls.

use sp_model::stub::{StubKernel, MAX_IO, SYS_TEST_ANONMMAP, SYS_TEST_RAISE};
use sp_proto::abi::{Errno, Sysnum};
use sp_proto::args;
use sp_server::Kernel;
use sp_testkit::memport::MemPort;

#[test]
fn pid_sequence_guest_prefork_attach() {
    let k = StubKernel::new();
    let port = MemPort::shared();
    let g = k.spawn_guest(b"guest\0junk", port.clone()).unwrap();
    assert_eq!(k.pid(g), 2);
    assert_eq!(k.syscall(g, Sysnum::GETPID.0, &[], &*port), Ok([2, 0]));
    let pf = k.prefork(g).unwrap();
    assert_eq!(k.pid(pf), 3);
    assert!(!k.is_attached(pf));
    let child_port = MemPort::shared();
    let c = k.attach_prefork(pf, child_port.clone()).unwrap();
    assert_eq!(k.pid(c), 4);
    assert!(k.is_attached(c));
    assert_eq!(
        k.syscall(c, Sysnum::GETPID.0, &[], &*child_port),
        Ok([4, 0])
    );
    // The prefork was released.
    assert_eq!(k.pid(pf), -1);
    assert_eq!(k.process_count(), 2);
    assert_eq!(k.comm(4).unwrap(), b"guest");
    k.execnotify(c, b"newname\0");
    assert_eq!(k.comm(4).unwrap(), b"newname");
    k.release(c);
    k.release(g);
    assert_eq!(k.process_count(), 0);
    assert_eq!(
        k.syscall(g, Sysnum::GETPID.0, &[], &*port),
        Err(Errno::ESRCH)
    );
    // Unknown prefork.
    assert_eq!(k.attach_prefork(pf, port.clone()), Err(Errno::ESRCH));
    assert_eq!(k.prefork(g), Err(Errno::ESRCH));
    // Pids are never reused.
    assert_eq!(k.pid(k.spawn_guest(b"x", port).unwrap()), 5);
}

#[test]
fn read_write_open() {
    let k = StubKernel::new();
    let port = MemPort::shared();
    let p = k.spawn_guest(b"t", port.clone()).unwrap();
    let buf = port.alloc_zeroed(300);
    assert_eq!(
        k.syscall(p, Sysnum::READ.0, &args::encode(&[0, buf, 300]), &*port),
        Ok([300, 0])
    );
    let got = port.read(buf, 300);
    assert!(got.iter().enumerate().all(|(i, &b)| b == i as u8));
    assert_eq!(
        k.syscall(p, Sysnum::WRITE.0, &args::encode(&[1, buf, 300]), &*port),
        Ok([300, 0])
    );
    assert_eq!(
        k.syscall(p, Sysnum::WRITE.0, &args::encode(&[1, buf, 301]), &*port),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        k.syscall(p, Sysnum::READ.0, &args::encode(&[1, buf, 301]), &*port),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        k.syscall(
            p,
            Sysnum::READ.0,
            &args::encode(&[1, buf, MAX_IO + 1]),
            &*port
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.syscall(p, Sysnum::READ.0, &args::encode(&[1, buf]), &*port),
        Err(Errno::EFAULT)
    );

    let ok = port.alloc_cstr(b"/ok");
    let other = port.alloc_cstr(b"/ok2");
    assert_eq!(
        k.syscall(p, Sysnum::OPEN.0, &args::encode(&[ok, 0, 0]), &*port),
        Ok([3, 0])
    );
    assert_eq!(
        k.syscall(p, Sysnum::OPEN.0, &args::encode(&[other, 0, 0]), &*port),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        k.syscall(p, Sysnum::OPEN.0, &args::encode(&[0x10, 0, 0]), &*port),
        Err(Errno::EFAULT)
    );
    let long = port.alloc(vec![b'a'; 2000]);
    assert_eq!(
        k.syscall(p, Sysnum::OPEN.0, &args::encode(&[long, 0, 0]), &*port),
        Err(Errno::ENAMETOOLONG)
    );
}

#[test]
fn test_calls_and_enosys() {
    let k = StubKernel::new();
    let port = MemPort::shared();
    let p = k.spawn_guest(b"t", port.clone()).unwrap();
    let [addr, _] = k
        .syscall(p, SYS_TEST_ANONMMAP.0, &args::encode(&[8192]), &*port)
        .unwrap();
    assert_eq!(port.read(addr as u64, 8192), vec![0; 8192]);
    assert_eq!(
        k.syscall(p, SYS_TEST_RAISE.0, &args::encode(&[30]), &*port),
        Ok([0, 0])
    );
    assert_eq!(port.raised(), vec![30]);
    assert_eq!(
        k.syscall(p, 6, &args::encode(&[3]), &*port),
        Err(Errno::ENOSYS)
    );
    assert_eq!(k.syscall(p, 999, &[], &*port), Err(Errno::ENOSYS));
    assert_eq!(
        k.syscall(p, SYS_TEST_RAISE.0, &[], &*port),
        Err(Errno::EFAULT)
    );
}
