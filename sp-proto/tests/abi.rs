//! The NetBSD ABI pieces: syscall and signal numbers as open codes,
//! `struct iovec` arrays, and the argument block codec, round-tripped over
//! arbitrary values.

use proptest::collection::vec;
use proptest::prelude::*;
use sp_proto::abi::{Iovec, Signal, Sysnum};
use sp_proto::args::{self, Args};
use sp_proto::Errno;

#[test]
fn open_codes_hold_netbsds_numbers() {
    let pairs = [
        (Sysnum::READ, 3),
        (Sysnum::WRITE, 4),
        (Sysnum::OPEN, 5),
        (Sysnum::GETPID, 20),
        (Sysnum::KILL, 37),
        (Sysnum::READV, 120),
        (Sysnum::GETDENTS, 390),
        (Sysnum::STAT, 439),
        (Sysnum::PIPE2, 453),
        (Sysnum::DUP3, 454),
    ];
    for (code, n) in pairs {
        assert_eq!(code.0, n, "{code}");
        assert!(code.is_known());
    }
    let sigs = [
        (Signal::SIGHUP, 1),
        (Signal::SIGKILL, 9),
        (Signal::SIGPIPE, 13),
        (Signal::SIGCHLD, 20),
        (Signal::SIGUSR1, 30),
        (Signal::SIGUSR2, 31),
    ];
    for (code, n) in sigs {
        assert_eq!(code.0, n, "{code}");
    }
}

#[test]
fn codes_print_their_names_and_unknown_numbers_as_numbers() {
    assert_eq!(Sysnum::GETPID.to_string(), "getpid");
    assert_eq!(format!("{:?}", Sysnum::STAT), "stat");
    assert_eq!(Sysnum(1000).to_string(), "Sysnum(1000)");
    assert_eq!(Sysnum(1000).name(), None);
    assert_eq!(Sysnum::from(4), Sysnum::WRITE);
    assert_eq!(Signal::SIGUSR1.to_string(), "SIGUSR1");
    assert_eq!(format!("{:?}", Signal(64)), "Signal(64)");
    assert!(!Signal(0).is_known());
    assert_eq!(Signal::from(15), Signal::SIGTERM);
}

#[test]
fn iovec_arrays_are_checked_at_every_cut() {
    let iov: Vec<Iovec> = (0..4u64).map(|i| Iovec::new(0x1000 * i, i)).collect();
    let bytes = Iovec::array_bytes(&iov);
    assert_eq!(bytes.len(), 64);
    // {base, len}, each little endian.
    assert_eq!(
        &bytes[16..32],
        &[0, 0x10, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    for cut in 0..=bytes.len() {
        let got = Iovec::slice(&bytes[..cut]);
        if cut % Iovec::SIZE == 0 {
            assert_eq!(got, Some(&iov[..cut / Iovec::SIZE]));
        } else {
            assert_eq!(got, None, "cut {cut}");
        }
        for count in 0..=5 {
            let got = Iovec::prefix(&bytes[..cut], count);
            if count * Iovec::SIZE <= cut {
                assert_eq!(got, Some(&iov[..count]), "cut {cut} count {count}");
            } else {
                assert_eq!(got, None, "cut {cut} count {count}");
            }
        }
    }
    assert_eq!(Iovec::prefix(bytes, usize::MAX), None);
    assert_eq!(Iovec::prefix(bytes, usize::MAX / 16 + 1), None);
    let one = Iovec::slice(&bytes[16..32]).unwrap()[0];
    assert_eq!((one.base(), one.len(), one.is_empty()), (0x1000, 1, false));
    assert!(Iovec::default().is_empty());
}

proptest! {
    #[test]
    fn argument_blocks_round_trip(slots in vec(any::<u64>(), 0..12)) {
        let block = args::encode(&slots);
        prop_assert_eq!(block.len(), slots.len() * 8);
        let a = Args(&block);
        prop_assert_eq!(a.len(), slots.len());
        for (i, &s) in slots.iter().enumerate() {
            prop_assert_eq!(a.u64(i), Ok(s));
            prop_assert_eq!(a.u32(i), Ok(s as u32));
            prop_assert_eq!(a.i32(i), Ok(s as u32 as i32));
            prop_assert_eq!(a.i64(i), Ok(s as i64));
            prop_assert_eq!(a.usize(i), Ok(s as usize));
        }
        prop_assert_eq!(a.u64(slots.len()), Err(Errno::EFAULT));
        let mut appended = vec![0xaa];
        args::encode_into(&mut appended, &slots);
        prop_assert_eq!(&appended[1..], &block[..]);
        prop_assert_eq!(args::slot_bytes(&slots), &block[..]);
    }

    #[test]
    fn arbitrary_blocks_read_only_what_they_hold(
        bytes in vec(any::<u8>(), 0..70),
        i in 0usize..12,
    ) {
        let a = Args(&bytes);
        match bytes.get(i * 8..i * 8 + 8) {
            Some(slot) => {
                let want = u64::from_le_bytes(slot.try_into().unwrap());
                prop_assert_eq!(a.u64(i), Ok(want));
            }
            None => prop_assert_eq!(a.u64(i), Err(Errno::EFAULT)),
        }
        prop_assert_eq!(a.len(), bytes.len() / 8);
    }

    #[test]
    fn iovec_arrays_round_trip(recs in vec((any::<u64>(), any::<u64>()), 0..8)) {
        let iov: Vec<Iovec> = recs.iter().map(|&(b, l)| Iovec::new(b, l)).collect();
        let bytes = Iovec::array_bytes(&iov).to_vec();
        let back = Iovec::slice(&bytes).unwrap();
        let got: Vec<(u64, u64)> = back.iter().map(|v| (v.base(), v.len())).collect();
        prop_assert_eq!(got, recs);
    }
}
