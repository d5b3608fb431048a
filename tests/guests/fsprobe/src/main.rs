//! A guest for the filesystem tape tests: `fsprobe DIR [stdin]` works in `DIR/probe` (DIR is a
//! granted directory, e.g. `/work`, holding `data.txt`) through `std::fs` and a few raw WASI
//! calls, and prints every result it observes, one line each: contents, positions, sizes,
//! inode numbers, link counts, times, error kinds and raw error numbers. With `stdin` it also
//! reads its standard input. It ends by writing `DIR/probe/summary.txt`.
//!
//! Inode numbers and times vary from machine to machine and run to run; everything else
//! depends only on the starting files. A replay must reproduce all of it, bit for bit.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines printed so far (the summary counts them).
static LINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

macro_rules! out {
    ($($arg:tt)*) => {{
        println!($($arg)*);
        LINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }};
}

/// `ok VALUE` or `err KIND raw=N` (the WASI errno): errors are results too.
fn show<T: std::fmt::Debug>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => err(e),
    }
}

fn err(e: &io::Error) -> String {
    format!("err {:?} raw={:?}", e.kind(), e.raw_os_error())
}

/// A time as nanoseconds since 1970 (negative before), or the error.
fn nanos(t: io::Result<SystemTime>) -> String {
    match t {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().to_string(),
            Err(e) => format!("-{}", e.duration().as_nanos()),
        },
        Err(e) => err(&e),
    }
}

/// WASI's `filestat`, as `fd_filestat_get` and `path_filestat_get` fill it.
#[repr(C)]
#[derive(Default, Debug)]
struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

impl std::fmt::Display for Filestat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dev={} ino={} filetype={} nlink={} size={} atim={} mtim={} ctim={}",
            self.dev,
            self.ino,
            self.filetype,
            self.nlink,
            self.size,
            self.atim,
            self.mtim,
            self.ctim
        )
    }
}

/// The raw calls std does not expose: stats with inode numbers, and the preopened directories.
#[cfg(target_arch = "wasm32")]
mod raw {
    use super::Filestat;

    #[repr(C)]
    #[derive(Default)]
    struct Prestat {
        tag: u8,
        name_len: u32,
    }

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn fd_filestat_get(fd: u32, buf: *mut Filestat) -> i32;
        fn path_filestat_get(
            fd: u32,
            flags: u32,
            path: *const u8,
            path_len: usize,
            buf: *mut Filestat,
        ) -> i32;
        fn fd_prestat_get(fd: u32, buf: *mut Prestat) -> i32;
        fn fd_prestat_dir_name(fd: u32, path: *mut u8, path_len: usize) -> i32;
    }

    /// `fd_filestat_get`: the stat, or the errno.
    pub fn fstat(fd: u32) -> Result<Filestat, i32> {
        let mut st = Filestat::default();
        // SAFETY: `st` is a live, aligned `filestat`.
        match unsafe { fd_filestat_get(fd, &mut st) } {
            0 => Ok(st),
            errno => Err(errno),
        }
    }

    /// `path_filestat_get` of `path` under the directory `fd`, following a last symbolic link
    /// or not.
    pub fn stat_at(fd: u32, path: &str, follow: bool) -> Result<Filestat, i32> {
        let mut st = Filestat::default();
        // SAFETY: the path is a live buffer of its length; `st` a live, aligned `filestat`.
        match unsafe {
            path_filestat_get(fd, u32::from(follow), path.as_ptr(), path.len(), &mut st)
        } {
            0 => Ok(st),
            errno => Err(errno),
        }
    }

    /// The preopened directories: fd and name, from fd 3 up to the first that is not one.
    pub fn preopens() -> Vec<(u32, Result<String, i32>)> {
        let mut v = Vec::new();
        for fd in 3.. {
            let mut p = Prestat::default();
            // SAFETY: `p` is a live, aligned `prestat`.
            if unsafe { fd_prestat_get(fd, &mut p) } != 0 {
                break;
            }
            let mut name = vec![0u8; p.name_len as usize];
            // SAFETY: `name` is a live buffer of the length passed.
            let errno = unsafe { fd_prestat_dir_name(fd, name.as_mut_ptr(), name.len()) };
            let name = if errno == 0 {
                Ok(String::from_utf8_lossy(&name).into_owned())
            } else {
                Err(errno)
            };
            v.push((fd, name));
        }
        v
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod raw {
    use super::Filestat;
    pub fn fstat(_fd: u32) -> Result<Filestat, i32> {
        unimplemented!("a wasm32-wasip1 guest")
    }
    pub fn stat_at(_fd: u32, _path: &str, _follow: bool) -> Result<Filestat, i32> {
        unimplemented!("a wasm32-wasip1 guest")
    }
    pub fn preopens() -> Vec<(u32, Result<String, i32>)> {
        unimplemented!("a wasm32-wasip1 guest")
    }
}

fn raw_fd(f: &File) -> u32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd() as u32
}

fn raw_show(r: Result<Filestat, i32>) -> String {
    match r {
        Ok(st) => format!("ok {st}"),
        Err(errno) => format!("errno {errno}"),
    }
}

/// What std's metadata says of `path` (following links or not), and WASI's raw stat of it.
fn describe(label: &str, path: &Path, dir_fd: u32, rel: &str) {
    for (follow, md) in [
        (true, fs::metadata(path)),
        (false, fs::symlink_metadata(path)),
    ] {
        match md {
            Ok(md) => {
                let ft = md.file_type();
                out!(
                    "{label} metadata follow={follow}: len={} file={} dir={} symlink={} \
                     readonly={} modified={} accessed={} created={}",
                    md.len(),
                    ft.is_file(),
                    ft.is_dir(),
                    ft.is_symlink(),
                    md.permissions().readonly(),
                    nanos(md.modified()),
                    nanos(md.accessed()),
                    nanos(md.created()),
                );
            }
            Err(e) => out!("{label} metadata follow={follow}: {}", err(&e)),
        }
        out!(
            "{label} path_filestat_get follow={follow}: {}",
            raw_show(raw::stat_at(dir_fd, rel, follow))
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("/work");
    let read_stdin = args.get(2).is_some_and(|a| a == "stdin");
    out!("args {:?}", &args[1..]);

    // The granted directories; DIR must be one of them (its fd is used for raw stats).
    let preopens = raw::preopens();
    for (fd, name) in &preopens {
        out!("preopen fd={fd} name={name:?}");
    }
    let Some(dir_fd) = preopens
        .iter()
        .find(|(_, n)| n.as_deref().is_ok_and(|n| n == dir))
        .map(|(fd, _)| *fd)
    else {
        out!("{dir} is not a granted directory");
        std::process::exit(2);
    };

    let root = Path::new(dir);
    let probe = root.join("probe");
    let p = |name: &str| probe.join(name);

    // Directories.
    out!("create_dir probe: {}", show(&fs::create_dir(&probe)));
    out!("create_dir probe again: {}", show(&fs::create_dir(&probe)));
    out!(
        "create_dir_all probe/deep/er: {}",
        show(&fs::create_dir_all(p("deep/er")))
    );

    // Reading a file that was there before, twice, then through one handle twice.
    let data = root.join("data.txt");
    out!("read data.txt: {}", show(&fs::read_to_string(&data)));
    out!("read data.txt again: {}", show(&fs::read_to_string(&data)));
    match File::open(&data) {
        Ok(mut f) => {
            let mut a = String::new();
            out!("read through a handle: {}", show(&f.read_to_string(&mut a)));
            out!("  text {a:?}");
            out!("  read at the end: {}", show(&f.read(&mut [0u8; 8])));
            out!("  seek start 0: {}", show(&f.seek(SeekFrom::Start(0))));
            let mut head = [0u8; 3];
            out!("  read 3: {} {:?}", show(&f.read(&mut head)), head);
            out!("  stream_position: {}", show(&f.stream_position()));
            out!("  fd_filestat_get: {}", raw_show(raw::fstat(raw_fd(&f))));
        }
        Err(e) => out!("open data.txt: {}", err(&e)),
    }

    // A new file: write, seek every way, read at positions, truncate, extend.
    let a = p("a.txt");
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&a)
    {
        Ok(mut f) => {
            out!("create a.txt: ok");
            out!("  write: {}", show(&f.write(b"hello world\n")));
            out!("  write: {}", show(&f.write(b"second line\n")));
            out!("  flush: {}", show(&f.flush()));
            out!("  stream_position: {}", show(&f.stream_position()));
            out!("  seek start 6: {}", show(&f.seek(SeekFrom::Start(6))));
            let mut buf = [0u8; 5];
            out!(
                "  read 5: {} {:?}",
                show(&f.read(&mut buf)),
                String::from_utf8_lossy(&buf)
            );
            out!(
                "  seek current -5: {}",
                show(&f.seek(SeekFrom::Current(-5)))
            );
            out!("  seek current 2: {}", show(&f.seek(SeekFrom::Current(2))));
            out!("  seek end -5: {}", show(&f.seek(SeekFrom::End(-5))));
            let mut rest = Vec::new();
            out!(
                "  read to end: {} {:?}",
                show(&f.read_to_end(&mut rest)),
                String::from_utf8_lossy(&rest)
            );
            out!("  seek end 4: {}", show(&f.seek(SeekFrom::End(4))));
            out!("  write past the end: {}", show(&f.write(b"!")));
            out!(
                "  seek before the start: {}",
                show(&f.seek(SeekFrom::Current(-1000)))
            );
            out!("  stream_position: {}", show(&f.stream_position()));
            out!("  metadata len: {}", show(&f.metadata().map(|m| m.len())));
            out!("  set_len 5: {}", show(&f.set_len(5)));
            out!("  metadata len: {}", show(&f.metadata().map(|m| m.len())));
            out!("  stream_position: {}", show(&f.stream_position()));
            out!("  set_len 8: {}", show(&f.set_len(8)));
            out!("  seek start 0: {}", show(&f.seek(SeekFrom::Start(0))));
            let mut all = Vec::new();
            out!(
                "  read to end: {} {:?}",
                show(&f.read_to_end(&mut all)),
                all
            );
            out!("  sync_all: {}", show(&f.sync_all()));
            out!("  sync_data: {}", show(&f.sync_data()));
            out!("  fd_filestat_get: {}", raw_show(raw::fstat(raw_fd(&f))));
            // Times: set both, then only the modification time.
            let times = FileTimes::new()
                .set_accessed(UNIX_EPOCH + Duration::new(1_000_000_000, 7))
                .set_modified(UNIX_EPOCH + Duration::new(1_100_000_000, 9));
            out!("  set_times: {}", show(&f.set_times(times)));
            out!("  fd_filestat_get: {}", raw_show(raw::fstat(raw_fd(&f))));
            out!(
                "  set_modified: {}",
                show(&f.set_modified(UNIX_EPOCH + Duration::new(1_200_000_000, 11)))
            );
            match f.metadata() {
                Ok(md) => out!(
                    "  modified={} accessed={}",
                    nanos(md.modified()),
                    nanos(md.accessed())
                ),
                Err(e) => out!("  metadata: {}", err(&e)),
            }
        }
        Err(e) => out!("create a.txt: {}", err(&e)),
    }

    // A read-only handle cannot write or resize.
    match File::open(&a) {
        Ok(mut f) => {
            out!("read-only write: {}", show(&f.write(b"x")));
            out!("read-only set_len: {}", show(&f.set_len(0)));
        }
        Err(e) => out!("open a.txt: {}", err(&e)),
    }
    out!(
        "create_new a.txt: {}",
        show(
            &OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&a)
                .map(|_| ())
        )
    );
    out!(
        "append to a.txt: {}",
        show(&OpenOptions::new().append(true).open(&a).and_then(|mut f| {
            f.write_all(b"+appended")?;
            f.stream_position()
        }))
    );
    out!("read a.txt: {}", show(&fs::read(&a)));

    // More files, for listings.
    for name in ["b.txt", "c.txt", "zz.txt", "deep/inner.txt"] {
        out!(
            "write {name}: {}",
            show(&fs::write(p(name), name.as_bytes()))
        );
    }

    // Hard and symbolic links.
    out!(
        "hard_link a.txt a-hard.txt: {}",
        show(&fs::hard_link(&a, p("a-hard.txt")))
    );
    out!(
        "hard_link again: {}",
        show(&fs::hard_link(&a, p("a-hard.txt")))
    );
    #[allow(deprecated)]
    let symlink = |target: &str, link: &str| fs::soft_link(target, p(link));
    out!("symlink a.txt a-sym: {}", show(&symlink("a.txt", "a-sym")));
    out!(
        "symlink deep deep-sym: {}",
        show(&symlink("deep", "deep-sym"))
    );
    out!(
        "symlink missing dangling: {}",
        show(&symlink("missing", "dangling"))
    );
    out!("symlink loop1 loop2: {}", show(&symlink("loop2", "loop1")));
    out!("symlink loop2 loop1: {}", show(&symlink("loop1", "loop2")));
    out!("read_link a-sym: {}", show(&fs::read_link(p("a-sym"))));
    out!("read_link a.txt: {}", show(&fs::read_link(&a)));
    out!(
        "read through a-sym: {}",
        show(&fs::read_to_string(p("a-sym")))
    );
    out!(
        "read deep-sym/inner.txt: {}",
        show(&fs::read_to_string(p("deep-sym/inner.txt")))
    );
    out!(
        "open dangling: {}",
        show(&File::open(p("dangling")).map(|_| ()))
    );
    out!("open loop1: {}", show(&File::open(p("loop1")).map(|_| ())));
    out!(
        "metadata loop1: {}",
        show(&fs::metadata(p("loop1")).map(|m| m.len()))
    );
    for name in ["a.txt", "a-hard.txt", "a-sym", "deep", "dangling"] {
        describe(name, &p(name), dir_fd, &format!("probe/{name}"));
    }

    // Listings: the order the host gives, then sorted, with each entry's type.
    match fs::read_dir(&probe) {
        Ok(rd) => {
            let entries: Vec<_> = rd.collect();
            let names: Vec<String> = entries
                .iter()
                .map(|e| match e {
                    Ok(e) => e.file_name().to_string_lossy().into_owned(),
                    Err(e) => err(e),
                })
                .collect();
            out!("read_dir probe raw order: {names:?}");
            let mut sorted = names.clone();
            sorted.sort();
            out!("read_dir probe sorted: {sorted:?}");
            let mut typed: Vec<String> = entries
                .iter()
                .flatten()
                .map(|e| {
                    let t = match e.file_type() {
                        Ok(t) if t.is_symlink() => "symlink".to_string(),
                        Ok(t) if t.is_dir() => "dir".to_string(),
                        Ok(t) if t.is_file() => "file".to_string(),
                        Ok(_) => "other".to_string(),
                        Err(e) => err(&e),
                    };
                    format!("{}={t}", e.file_name().to_string_lossy())
                })
                .collect();
            typed.sort();
            out!("read_dir probe types: {typed:?}");
        }
        Err(e) => out!("read_dir probe: {}", err(&e)),
    }
    out!("read_dir a.txt: {}", show(&fs::read_dir(&a).map(|_| ())));
    out!(
        "read_dir missing: {}",
        show(&fs::read_dir(p("missing")).map(|_| ()))
    );

    // Renames and removals, and the errors they meet.
    out!(
        "rename b.txt renamed.txt: {}",
        show(&fs::rename(p("b.txt"), p("renamed.txt")))
    );
    out!(
        "rename b.txt again: {}",
        show(&fs::rename(p("b.txt"), p("renamed.txt")))
    );
    out!(
        "rename c.txt over zz.txt: {}",
        show(&fs::rename(p("c.txt"), p("zz.txt")))
    );
    out!("read zz.txt: {}", show(&fs::read_to_string(p("zz.txt"))));
    out!(
        "rename zz.txt onto deep: {}",
        show(&fs::rename(p("zz.txt"), p("deep")))
    );
    out!(
        "remove_file renamed.txt: {}",
        show(&fs::remove_file(p("renamed.txt")))
    );
    out!(
        "remove_file renamed.txt again: {}",
        show(&fs::remove_file(p("renamed.txt")))
    );
    out!("remove_file deep: {}", show(&fs::remove_file(p("deep"))));
    out!("remove_file loop1: {}", show(&fs::remove_file(p("loop1"))));
    out!("remove_dir deep: {}", show(&fs::remove_dir(p("deep"))));
    out!("remove_dir a.txt: {}", show(&fs::remove_dir(&a)));
    out!(
        "remove_dir deep/er: {}",
        show(&fs::remove_dir(p("deep/er")))
    );
    out!(
        "open missing: {}",
        show(&File::open(p("missing")).map(|_| ()))
    );
    out!(
        "open outside: {}",
        show(&File::open("/etc/passwd").map(|_| ()))
    );
    out!("exists loop2: {}", show(&fs::exists(p("loop2"))));
    out!(
        "exists renamed.txt: {}",
        show(&fs::exists(p("renamed.txt")))
    );
    describe("a.txt after", &a, dir_fd, "probe/a.txt");

    // Standard input, when asked.
    if read_stdin {
        let mut input = Vec::new();
        out!("stdin: {}", show(&io::stdin().read_to_end(&mut input)));
        out!("stdin bytes: {:?}", String::from_utf8_lossy(&input));
        out!(
            "stdin again: {}",
            show(&io::stdin().read_to_end(&mut input))
        );
    }
    eprintln!(
        "fsprobe: {} lines so far",
        LINES.load(std::sync::atomic::Ordering::Relaxed)
    );

    // The summary.
    let lines = LINES.load(std::sync::atomic::Ordering::Relaxed) + 1;
    let summary = format!("fsprobe: {lines} lines\n");
    out!(
        "write summary.txt: {}",
        show(&fs::write(p("summary.txt"), &summary))
    );
    out!(
        "read summary.txt: {}",
        show(&fs::read_to_string(p("summary.txt")))
    );
}
