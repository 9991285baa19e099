//! The banner line: the capture's banner, round trips, and every way a
//! banner can be malformed.

use sp_proto::{Banner, BannerError, MAX_BANNER, PROTO_MAJOR, PROTO_MINOR};

/// The banner of every capture in `shared/vectors`.
const CAPTURED: &[u8] = b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n";

#[test]
fn the_captured_banner() {
    let b = Banner::parse(CAPTURED).unwrap();
    assert_eq!(
        (
            b.major,
            b.minor,
            b.ostype.as_str(),
            b.osrelease.as_str(),
            b.machine.as_str()
        ),
        (0, 4, "NetBSD", "7.99.34", "amd64")
    );
    assert_eq!(b.check_supported(), Ok(()));
    assert_eq!(b.format().unwrap(), CAPTURED);
    assert_eq!(Banner::new("NetBSD", "7.99.34", "amd64"), b);
    assert_eq!((PROTO_MAJOR, PROTO_MINOR), (0, 4));
}

#[test]
fn format_parse_round_trip() {
    let cases = [
        Banner::new("NetBSD", "7.99.21", "amd64"),
        Banner::new("Linux", "6.1.0-rc3", "x86_64"),
        // osrelease may hold '-' and '/': the machine is after the last '/'.
        Banner::new("sysproxy", "0.1/a-b", "x"),
        Banner {
            major: 0,
            minor: 5,
            ..Banner::new("a", "b", "c")
        },
        Banner {
            major: 999_999_999,
            minor: 0,
            ..Banner::new("a", "b", "c")
        },
    ];
    for b in cases {
        let line = b.format().unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(line.len() <= MAX_BANNER);
        assert_eq!(
            Banner::parse(&line),
            Ok(b.clone()),
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(Banner::line_len(&line), Ok(Some(line.len())));
    }
}

#[test]
fn format_refuses_what_would_not_parse_back() {
    for b in [
        Banner::new("Net-BSD", "1", "m"),
        Banner::new("Net/BSD", "1", "m"),
        Banner::new("NetBSD", "1", "am/d64"),
        Banner::new("NetBSD", "7 99", "amd64"),
        Banner::new("", "1", "m"),
        Banner::new("a", "", "m"),
        Banner::new("a", "1", ""),
        Banner::new("a", "1", "ü"),
    ] {
        assert!(b.format().is_err(), "{b:?} formatted");
    }
    let long = Banner::new("NetBSD", &"9".repeat(80), "amd64");
    assert!(matches!(long.format(), Err(BannerError::TooLong(n)) if n > MAX_BANNER));
}

#[test]
fn malformed_banners() {
    let too_long = format!("RUMPSP-0.4-NetBSD-{}/amd64\n", "7".repeat(MAX_BANNER - 24));
    assert_eq!(too_long.len(), MAX_BANNER + 1);
    let longest = format!("RUMPSP-0.4-NetBSD-{}/amd64\n", "7".repeat(MAX_BANNER - 25));
    assert_eq!(longest.len(), MAX_BANNER);
    assert!(Banner::parse(longest.as_bytes()).is_ok());

    let cases: &[(&[u8], BannerError)] = &[
        (b"", BannerError::NoNewline),
        (b"RUMPSP-0.4-NetBSD-7.99.34/amd64", BannerError::NoNewline),
        (
            b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n\n",
            BannerError::BadField("machine"),
        ),
        (too_long.as_bytes(), BannerError::TooLong(MAX_BANNER + 1)),
        (&[b'x'; 200], BannerError::TooLong(200)),
        (b"RUMPXX-0.4-NetBSD-7.99.34/amd64\n", BannerError::BadMagic),
        (b"rumpsp-0.4-NetBSD-7.99.34/amd64\n", BannerError::BadMagic),
        (b"\n", BannerError::BadMagic),
        (
            b"RUMPSP-x.4-NetBSD-7.99.34/amd64\n",
            BannerError::BadVersion,
        ),
        (
            b"RUMPSP-0.x-NetBSD-7.99.34/amd64\n",
            BannerError::BadVersion,
        ),
        (b"RUMPSP-0-NetBSD-7.99.34/amd64\n", BannerError::BadVersion),
        (b"RUMPSP-.4-NetBSD-7.99.34/amd64\n", BannerError::BadVersion),
        (b"RUMPSP-0.-NetBSD-7.99.34/amd64\n", BannerError::BadVersion),
        (
            b"RUMPSP--0.4-NetBSD-7.99.34/amd64\n",
            BannerError::BadVersion,
        ),
        (
            b"RUMPSP-+0.4-NetBSD-7.99.34/amd64\n",
            BannerError::BadVersion,
        ),
        (b"RUMPSP-0.4\n", BannerError::BadVersion),
        (
            b"RUMPSP-99999999999.4-NetBSD-7.99.34/amd64\n",
            BannerError::BadVersion,
        ),
        (
            b"RUMPSP-0.4-NetBSD-7.99.34\n",
            BannerError::BadField("machine"),
        ),
        (b"RUMPSP-0.4-NetBSD\n", BannerError::BadField("ostype")),
        (
            b"RUMPSP-0.4--7.99.34/amd64\n",
            BannerError::BadField("ostype"),
        ),
        (
            b"RUMPSP-0.4-NetBSD-/amd64\n",
            BannerError::BadField("osrelease"),
        ),
        (
            b"RUMPSP-0.4-NetBSD-7.99.34/\n",
            BannerError::BadField("machine"),
        ),
        (
            b"RUMPSP-0.4-NetBSD-7.99 34/amd64\n",
            BannerError::BadField("osrelease"),
        ),
        (
            b"RUMPSP-0.4-NetBSD-7.99.34/amd64\r\n",
            BannerError::BadField("machine"),
        ),
        (
            b"RUMPSP-0.4-NetBSD-7.99.34/amd\xff\n",
            BannerError::BadField("banner"),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            Banner::parse(line).as_ref(),
            Err(want),
            "{}",
            String::from_utf8_lossy(line)
        );
        // Every error has a message.
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn supported_versions() {
    let v = |major, minor| Banner {
        major,
        minor,
        ..Banner::new("NetBSD", "7.99.34", "amd64")
    };
    assert_eq!(
        v(1, 0).check_supported(),
        Err(BannerError::Unsupported { major: 1, minor: 0 })
    );
    assert_eq!(
        v(0, 3).check_supported(),
        Err(BannerError::Unsupported { major: 0, minor: 3 })
    );
    assert_eq!(
        v(0, 0).check_supported(),
        Err(BannerError::Unsupported { major: 0, minor: 0 })
    );
    assert_eq!(v(0, 4).check_supported(), Ok(()));
    assert_eq!(v(0, 5).check_supported(), Ok(()));
    // Parsing does not judge the version; checking does.
    let b = Banner::parse(b"RUMPSP-1.0-NetBSD-7.99.34/amd64\n").unwrap();
    assert_eq!(
        b.check_supported(),
        Err(BannerError::Unsupported { major: 1, minor: 0 })
    );
    assert!(b.check_supported().unwrap_err().to_string().contains("1.0"));
}

#[test]
fn line_len_finds_the_banner_in_a_stream() {
    // Nothing yet, then part of it.
    assert_eq!(Banner::line_len(b""), Ok(None));
    assert_eq!(Banner::line_len(&CAPTURED[..10]), Ok(None));
    // The banner followed by the start of a frame.
    let mut buf = CAPTURED.to_vec();
    buf.extend_from_slice(&[0x1c, 0, 0, 0]);
    assert_eq!(Banner::line_len(&buf), Ok(Some(CAPTURED.len())));
    // 94 bytes without a newline: could still come.
    assert_eq!(Banner::line_len(&[b'a'; MAX_BANNER - 1]), Ok(None));
    // 95 without one: never will.
    assert_eq!(
        Banner::line_len(&[b'a'; MAX_BANNER]),
        Err(BannerError::TooLong(MAX_BANNER))
    );
    let mut late = vec![b'a'; MAX_BANNER];
    late.push(b'\n');
    assert!(Banner::line_len(&late).is_err());
    // A newline as the 95th byte still counts.
    let mut edge = vec![b'a'; MAX_BANNER - 1];
    edge.push(b'\n');
    assert_eq!(Banner::line_len(&edge), Ok(Some(MAX_BANNER)));
}
