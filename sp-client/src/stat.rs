//! File status and directory entries as a program wants them, decoded from
//! NetBSD's wire structures ([`abi::Stat`], [`abi::Dirent`]).

use crate::abi;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

/// NetBSD's `S_IF*` file type bits of `st_mode` (those `abi::mode` lacks
/// too).
mod ifmt {
    pub const FIFO: u32 = 0o010000;
    pub const CHR: u32 = 0o020000;
    pub const DIR: u32 = 0o040000;
    pub const BLK: u32 = 0o060000;
    pub const REG: u32 = 0o100000;
    pub const LNK: u32 = 0o120000;
    pub const SOCK: u32 = 0o140000;
    pub const WHT: u32 = 0o160000;
}

/// NetBSD's `DT_*` values of `d_type`.
mod dtype {
    pub const FIFO: u8 = 1;
    pub const CHR: u8 = 2;
    pub const DIR: u8 = 4;
    pub const BLK: u8 = 6;
    pub const REG: u8 = 8;
    pub const LNK: u8 = 10;
    pub const SOCK: u8 = 12;
    pub const WHT: u8 = 14;
}

/// The type of a file, from `st_mode` or a directory entry's `d_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe (or a pipe's descriptor).
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A socket.
    Socket,
    /// A whiteout (union file systems).
    Whiteout,
    /// A type the server did not say (`DT_UNKNOWN`) or one NetBSD does not
    /// define; the raw value is in [`Stat::mode`] or [`DirEntry::raw_type`].
    Unknown,
}

impl FileType {
    /// The type in NetBSD `st_mode` bits.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & abi::mode::S_IFMT {
            ifmt::REG => FileType::File,
            ifmt::DIR => FileType::Dir,
            ifmt::LNK => FileType::Symlink,
            ifmt::FIFO => FileType::Fifo,
            ifmt::CHR => FileType::CharDevice,
            ifmt::BLK => FileType::BlockDevice,
            ifmt::SOCK => FileType::Socket,
            ifmt::WHT => FileType::Whiteout,
            _ => FileType::Unknown,
        }
    }

    /// The type in a NetBSD `d_type`.
    pub fn from_dirent_type(d_type: u8) -> FileType {
        match d_type {
            dtype::REG => FileType::File,
            dtype::DIR => FileType::Dir,
            dtype::LNK => FileType::Symlink,
            dtype::FIFO => FileType::Fifo,
            dtype::CHR => FileType::CharDevice,
            dtype::BLK => FileType::BlockDevice,
            dtype::SOCK => FileType::Socket,
            dtype::WHT => FileType::Whiteout,
            _ => FileType::Unknown,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(self) -> bool {
        self == FileType::Dir
    }

    /// Whether it is a regular file.
    pub fn is_file(self) -> bool {
        self == FileType::File
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(self) -> bool {
        self == FileType::Symlink
    }
}

impl fmt::Display for FileType {
    /// Words as `stat(1)` prints them: "regular file", "directory", ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileType::File => "regular file",
            FileType::Dir => "directory",
            FileType::Symlink => "symbolic link",
            FileType::Fifo => "fifo",
            FileType::CharDevice => "character special file",
            FileType::BlockDevice => "block special file",
            FileType::Socket => "socket",
            FileType::Whiteout => "whiteout",
            FileType::Unknown => "unknown file type",
        })
    }
}

/// A time stamp of a file: seconds and nanoseconds since the Unix epoch, as
/// the server sent them (a `struct timespec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileTime {
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    pub sec: i64,
    /// Nanoseconds, 0 to 999 999 999 from a sane server.
    pub nsec: i64,
}

impl FileTime {
    /// The time as a [`SystemTime`]; `None` if the nanoseconds are out of
    /// range or the host cannot represent the time.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nsec = u32::try_from(self.nsec)
            .ok()
            .filter(|&n| n < 1_000_000_000)?;
        if self.sec >= 0 {
            let d = Duration::new(self.sec.unsigned_abs(), nsec);
            SystemTime::UNIX_EPOCH.checked_add(d)
        } else {
            // sec + nsec/1e9 with sec < 0: subtract (-sec) s, add nsec ns.
            let back = Duration::from_secs(self.sec.unsigned_abs());
            SystemTime::UNIX_EPOCH
                .checked_sub(back)?
                .checked_add(Duration::from_nanos(u64::from(nsec)))
        }
    }
}

impl From<abi::Timespec> for FileTime {
    fn from(t: abi::Timespec) -> FileTime {
        FileTime {
            sec: t.sec.get(),
            nsec: t.nsec.get(),
        }
    }
}

/// The status of a file in the remote kernel (`struct stat`), decoded:
/// what [`Client::stat`](crate::Client::stat),
/// [`Client::lstat`](crate::Client::lstat) and
/// [`Client::fstat`](crate::Client::fstat) return.
///
/// ```
/// use sp_client::{abi, FileType, Stat};
///
/// let mut raw = abi::Stat::default();
/// raw.st_mode.set(abi::mode::S_IFDIR | 0o755);
/// raw.st_size.set(512);
/// let st = Stat::from(raw);
/// assert!(st.is_dir());
/// assert_eq!(st.file_type(), FileType::Dir);
/// assert_eq!((st.permissions(), st.size()), (0o755, 512));
/// assert_eq!(st.raw(), &raw);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    raw: abi::Stat,
}

impl Stat {
    /// Decodes NetBSD's `struct stat`.
    pub fn from_raw(raw: abi::Stat) -> Stat {
        Stat { raw }
    }

    /// The wire structure it was decoded from.
    pub fn raw(&self) -> &abi::Stat {
        &self.raw
    }

    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode())
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether it is a symbolic link (only [`Client::lstat`](crate::Client::lstat)
    /// sees links; `stat` follows them).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The whole `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.raw.st_mode.get()
    }

    /// The permission bits (`st_mode & 07777`: rwx for owner, group and
    /// others, setuid, setgid, sticky).
    pub fn permissions(&self) -> u32 {
        self.mode() & 0o7777
    }

    /// Size in bytes (a negative `st_size` from a broken server reads as 0;
    /// [`Stat::raw`] has the value sent).
    pub fn size(&self) -> u64 {
        u64::try_from(self.raw.st_size.get()).unwrap_or(0)
    }

    /// Number of hard links.
    pub fn nlink(&self) -> u32 {
        self.raw.st_nlink.get()
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.raw.st_uid.get()
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.raw.st_gid.get()
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.raw.st_ino.get()
    }

    /// Device holding the file.
    pub fn dev(&self) -> u64 {
        self.raw.st_dev.get()
    }

    /// Device number, for a device special file.
    pub fn rdev(&self) -> u64 {
        self.raw.st_rdev.get()
    }

    /// Blocks allocated, in 512-byte units (negative reads as 0).
    pub fn blocks(&self) -> u64 {
        u64::try_from(self.raw.st_blocks.get()).unwrap_or(0)
    }

    /// Preferred I/O block size.
    pub fn blksize(&self) -> u32 {
        self.raw.st_blksize.get()
    }

    /// User-defined flags (`st_flags`, see chflags(2)).
    pub fn flags(&self) -> u32 {
        self.raw.st_flags.get()
    }

    /// File generation number.
    pub fn gen(&self) -> u32 {
        self.raw.st_gen.get()
    }

    /// Last access.
    pub fn atime(&self) -> FileTime {
        self.raw.st_atim.into()
    }

    /// Last modification of the contents.
    pub fn mtime(&self) -> FileTime {
        self.raw.st_mtim.into()
    }

    /// Last status change.
    pub fn ctime(&self) -> FileTime {
        self.raw.st_ctim.into()
    }

    /// Creation.
    pub fn birthtime(&self) -> FileTime {
        self.raw.st_birthtim.into()
    }

    /// Last access as a [`SystemTime`] (see [`FileTime::to_system_time`]).
    pub fn accessed(&self) -> Option<SystemTime> {
        self.atime().to_system_time()
    }

    /// Last modification as a [`SystemTime`].
    pub fn modified(&self) -> Option<SystemTime> {
        self.mtime().to_system_time()
    }

    /// Creation as a [`SystemTime`].
    pub fn created(&self) -> Option<SystemTime> {
        self.birthtime().to_system_time()
    }
}

impl From<abi::Stat> for Stat {
    fn from(raw: abi::Stat) -> Stat {
        Stat::from_raw(raw)
    }
}

impl From<Stat> for abi::Stat {
    fn from(st: Stat) -> abi::Stat {
        st.raw
    }
}

impl fmt::Debug for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stat")
            .field("file_type", &self.file_type())
            .field("permissions", &format_args!("{:04o}", self.permissions()))
            .field("size", &self.size())
            .field("nlink", &self.nlink())
            .field("uid", &self.uid())
            .field("gid", &self.gid())
            .field("ino", &self.ino())
            .field("dev", &self.dev())
            .field("rdev", &self.rdev())
            .field("blocks", &self.blocks())
            .field("blksize", &self.blksize())
            .field("atime", &self.atime())
            .field("mtime", &self.mtime())
            .field("ctime", &self.ctime())
            .field("birthtime", &self.birthtime())
            .finish_non_exhaustive()
    }
}

/// One entry of a remote directory, decoded: what
/// [`Client::read_dir`](crate::Client::read_dir) returns.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DirEntry {
    ino: u64,
    d_type: u8,
    name: Vec<u8>,
}

impl DirEntry {
    /// Decodes a NetBSD directory record.
    pub fn from_raw(raw: abi::Dirent) -> DirEntry {
        DirEntry {
            ino: raw.fileno,
            d_type: raw.kind,
            name: raw.name,
        }
    }

    /// The name, as bytes (NetBSD names need not be UTF-8).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The name as text, invalid UTF-8 replaced.
    pub fn name_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The name, taken out.
    pub fn into_name(self) -> Vec<u8> {
        self.name
    }

    /// The inode number (`d_fileno`).
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The entry's type, as the directory records it (file systems may say
    /// [`FileType::Unknown`]: then `lstat` the entry).
    pub fn file_type(&self) -> FileType {
        FileType::from_dirent_type(self.d_type)
    }

    /// The `d_type` byte as sent.
    pub fn raw_type(&self) -> u8 {
        self.d_type
    }

    /// Whether the entry is a directory (`.` and `..` included).
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether the entry is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether the entry is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }
}

impl From<abi::Dirent> for DirEntry {
    fn from(raw: abi::Dirent) -> DirEntry {
        DirEntry::from_raw(raw)
    }
}

impl From<DirEntry> for abi::Dirent {
    fn from(e: DirEntry) -> abi::Dirent {
        abi::Dirent {
            fileno: e.ino,
            kind: e.d_type,
            name: e.name,
        }
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirEntry")
            .field("name", &self.name_lossy())
            .field("ino", &self.ino)
            .field("file_type", &self.file_type())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::Timespec;

    fn ts(sec: i64, nsec: i64) -> Timespec {
        let mut t = Timespec::default();
        t.sec.set(sec);
        t.nsec.set(nsec);
        t
    }

    #[test]
    fn stat_from_raw_bytes() {
        // A struct stat built field by field, sent as bytes, decoded.
        let mut raw = abi::Stat::default();
        raw.st_dev.set(0x0102);
        raw.st_mode.set(ifmt::REG | 0o4755);
        raw.st_ino.set(77);
        raw.st_nlink.set(3);
        raw.st_uid.set(1000);
        raw.st_gid.set(100);
        raw.st_rdev.set(0x0506);
        raw.st_atim = ts(1_700_000_000, 5);
        raw.st_mtim = ts(1_700_000_001, 999_999_999);
        raw.st_ctim = ts(-1, 500_000_000);
        raw.st_birthtim = ts(0, 0);
        raw.st_size.set(12345);
        raw.st_blocks.set(32);
        raw.st_blksize.set(4096);
        raw.st_flags.set(0x8);
        raw.st_gen.set(9);
        let bytes = raw.to_bytes();
        let st = Stat::from(abi::Stat::from_bytes(&bytes).unwrap());
        assert_eq!(st.file_type(), FileType::File);
        assert!(st.is_file() && !st.is_dir() && !st.is_symlink());
        assert_eq!(st.mode(), 0o104755);
        assert_eq!(st.permissions(), 0o4755);
        assert_eq!(st.size(), 12345);
        assert_eq!((st.nlink(), st.uid(), st.gid()), (3, 1000, 100));
        assert_eq!((st.ino(), st.dev(), st.rdev()), (77, 0x0102, 0x0506));
        assert_eq!((st.blocks(), st.blksize()), (32, 4096));
        assert_eq!((st.flags(), st.gen()), (0x8, 9));
        assert_eq!(
            st.atime(),
            FileTime {
                sec: 1_700_000_000,
                nsec: 5
            }
        );
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(st.accessed(), Some(epoch + Duration::new(1_700_000_000, 5)));
        assert_eq!(
            st.modified(),
            Some(epoch + Duration::new(1_700_000_001, 999_999_999))
        );
        assert_eq!(
            st.ctime().to_system_time(),
            Some(epoch - Duration::from_millis(500)),
            "-1 s + 0.5 s"
        );
        assert_eq!(st.created(), Some(epoch));
        assert_eq!(st.raw(), &raw);
        assert_eq!(abi::Stat::from(st), raw);
        let dbg = format!("{st:?}");
        assert!(dbg.contains("File") && dbg.contains("4755"), "{dbg}");
    }

    #[test]
    fn stat_values_a_broken_server_may_send() {
        let mut raw = abi::Stat::default();
        raw.st_size.set(-1);
        raw.st_blocks.set(-7);
        raw.st_mode.set(0o170000 | 0o644);
        raw.st_mtim = ts(5, 1_000_000_000);
        raw.st_atim = ts(5, -1);
        raw.st_ctim = ts(i64::MIN, 0);
        let st = Stat::from(raw);
        assert_eq!((st.size(), st.blocks()), (0, 0));
        assert_eq!(st.file_type(), FileType::Unknown);
        assert_eq!(st.permissions(), 0o644);
        assert_eq!(st.modified(), None, "nsec out of range");
        assert_eq!(st.accessed(), None, "negative nsec");
        // Whether i64::MIN seconds fits is the host's business; it must not
        // panic.
        let _ = st.ctime().to_system_time();
    }

    #[test]
    fn file_types_from_mode_and_dirent() {
        let cases = [
            (ifmt::REG, dtype::REG, FileType::File),
            (ifmt::DIR, dtype::DIR, FileType::Dir),
            (ifmt::LNK, dtype::LNK, FileType::Symlink),
            (ifmt::FIFO, dtype::FIFO, FileType::Fifo),
            (ifmt::CHR, dtype::CHR, FileType::CharDevice),
            (ifmt::BLK, dtype::BLK, FileType::BlockDevice),
            (ifmt::SOCK, dtype::SOCK, FileType::Socket),
            (ifmt::WHT, dtype::WHT, FileType::Whiteout),
        ];
        for (m, d, t) in cases {
            assert_eq!(FileType::from_mode(m | 0o777), t);
            assert_eq!(FileType::from_dirent_type(d), t);
        }
        // sp-proto's constants agree.
        assert_eq!(FileType::from_mode(abi::mode::S_IFDIR), FileType::Dir);
        assert_eq!(FileType::from_mode(abi::mode::S_IFREG), FileType::File);
        assert_eq!(FileType::from_mode(abi::mode::S_IFIFO), FileType::Fifo);
        assert_eq!(FileType::from_dirent_type(abi::dt::DT_DIR), FileType::Dir);
        assert_eq!(FileType::from_dirent_type(abi::dt::DT_REG), FileType::File);
        assert_eq!(
            FileType::from_dirent_type(abi::dt::DT_UNKNOWN),
            FileType::Unknown
        );
        assert_eq!(FileType::from_dirent_type(3), FileType::Unknown);
        assert_eq!(FileType::from_mode(0o644), FileType::Unknown);
        assert_eq!(FileType::Dir.to_string(), "directory");
    }

    #[test]
    fn dir_entry_from_raw_records() {
        let mut recs = Vec::new();
        for (ino, kind, name) in [
            (2, abi::dt::DT_DIR, &b"."[..]),
            (9, abi::dt::DT_REG, b"caf\xe9"),
            (10, dtype::LNK, b"link"),
            (11, 99, b"odd"),
        ] {
            abi::Dirent {
                fileno: ino,
                kind,
                name: name.to_vec(),
            }
            .encode(&mut recs);
        }
        let ents: Vec<DirEntry> = abi::Dirent::decode_all(&recs)
            .unwrap()
            .into_iter()
            .map(DirEntry::from)
            .collect();
        assert_eq!(ents.len(), 4);
        assert_eq!((ents[0].name(), ents[0].ino()), (&b"."[..], 2));
        assert!(ents[0].is_dir());
        assert!(ents[1].is_file());
        assert_eq!(ents[1].name_lossy(), "caf\u{fffd}");
        assert!(ents[2].is_symlink());
        assert_eq!(ents[3].file_type(), FileType::Unknown);
        assert_eq!(ents[3].raw_type(), 99, "the unknown value is kept");
        let back = abi::Dirent::from(ents[3].clone());
        assert_eq!(
            (back.fileno, back.kind, &back.name[..]),
            (11, 99, &b"odd"[..])
        );
        assert_eq!(ents[2].clone().into_name(), b"link");
        assert!(format!("{:?}", ents[1]).contains("File"));
    }
}
