//! End-to-end tests of tapes that hold every result a guest receives through
//! `wasi_snapshot_preview1`, filesystem included: a run recorded with `--dir HOST::/work` replays
//! with no `--dir` at all, bit for bit (inode numbers and times included), reading and writing
//! no host file. The guests: `fsprobe` (Rust, std::fs and a few raw calls) and the hand-written
//! WAT modules of `tests/guests/wat/`, which between them reach every preview 1 function.
//!
//! Every guest is run (`devstash run`), recorded on a fresh copy of the same starting files,
//! then replayed twenty times with `--verify` and compared byte for byte with the recording.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use common::{Run, Sandbox, assert_same, guest};

/// Replays of each recording, each compared byte for byte with it.
const REPLAYS: usize = 20;

/// What replays get on stdin: never what was recorded, so that a replay that read its real
/// stdin would print something else.
const OTHER_STDIN: &[u8] = b"not the recorded input\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A hand-written module of `tests/guests/wat/`.
fn wat(name: &str) -> PathBuf {
    let path = common::workspace()
        .join("tests/guests/wat")
        .join(format!("{name}.wat"));
    assert!(path.exists(), "no module at {}", path.display());
    path
}

/// The `fsprobe` guest, built with the other guests of the workspace.
fn fsprobe() -> PathBuf {
    guest("fsprobe")
}

/// `devstash ARGS`, with `input` on stdin (or an empty stdin).
fn devstash(sb: &Sandbox, args: &[&str], input: Option<&[u8]>) -> Run {
    let Some(input) = input else {
        return sb.devstash(args);
    };
    let mut child = sb
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devstash starts");
    // A guest that never reads its stdin may be gone before this is written: no matter.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().expect("devstash runs").into()
}

/// The starting files of every guest: `data.txt`, and `sub/` holding `a.txt` and `b.txt`.
fn seed(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("data.txt"), "0123456789abcdef\n").unwrap();
    std::fs::write(dir.join("sub/a.txt"), "a\n").unwrap();
    std::fs::write(dir.join("sub/b.txt"), "bb\n").unwrap();
}

/// One entry of a [`snapshot`]: what it is, its contents (a file's bytes, a link's target) and
/// its modification time.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    contents: Vec<u8>,
    modified: SystemTime,
}

/// Every entry under `dir` (symbolic links not followed), by path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let (kind, contents) = if md.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ("symlink", target.into_os_string().into_encoded_bytes())
            } else if md.is_dir() {
                walk(root, &path, out);
                ("dir", Vec::new())
            } else {
                ("file", std::fs::read(&path).unwrap())
            };
            let node = Node {
                kind,
                contents,
                modified: md.modified().unwrap(),
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), node);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A run for a failure message: its exit code, and the start of its stdout and stderr.
fn brief(r: &Run) -> String {
    let cut = |text: &str| -> String {
        const MAX: usize = 4000;
        match text.char_indices().nth(MAX) {
            Some((at, _)) => format!("{}\n[... {} more bytes]", &text[..at], text.len() - at),
            None => text.to_string(),
        }
    };
    format!(
        "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
        r.code,
        cut(&r.stdout),
        cut(&r.stderr)
    )
}

/// Asserts that some line of `text` contains each of `needles`.
fn assert_lines(what: &str, text: &str, needles: &[&str], run: &Run) {
    for needle in needles {
        assert!(
            text.lines().any(|l| l.contains(needle)),
            "{what}: no line with {needle:?}\n{}",
            brief(run)
        );
    }
}

/// A guest, how to run it, and what its run must show.
struct Guest<'a> {
    module: PathBuf,
    args: &'a [&'a str],
    /// `--env` options.
    env: &'a [&'a str],
    stdin: Option<&'a [u8]>,
    code: i32,
    /// Each must be in some line of stdout (whole lines, or their stable parts).
    stdout: &'a [&'a str],
    /// Likewise for stderr.
    stderr: &'a [&'a str],
    /// Must not appear anywhere in stdout.
    absent: &'a [&'a str],
    /// Files the run leaves in the granted directory, with their contents.
    leaves: &'a [(&'a str, &'a [u8])],
    /// Whether every run prints the same (no inode numbers, times or races in the output):
    /// then the recording must print exactly what a plain run does, trap messages included.
    deterministic: bool,
}

/// A recording made by [`round_trip`].
struct Recorded {
    sb: Sandbox,
    tape: PathBuf,
    run: Run,
}

impl Guest<'_> {
    /// `devstash COMMAND -q [-o TAPE] [--env E]... --dir DIR::/work MODULE ARGS...`.
    fn invoke(&self, sb: &Sandbox, command: &str, tape: Option<&Path>, dir: &Path) -> Run {
        let grant = format!("{}::/work", s(dir));
        let mut args = vec![command, "-q"];
        if let Some(tape) = tape {
            args.extend(["-o", s(tape)]);
        }
        for e in self.env {
            args.extend(["--env", e]);
        }
        args.extend(["--dir", &grant, s(&self.module)]);
        args.extend_from_slice(self.args);
        devstash(sb, &args, self.stdin)
    }

    fn check(&self, what: &str, r: &Run, dir: &Path) {
        assert_eq!(r.code, self.code, "{what}: exit code\n{}", brief(r));
        assert_lines(what, &r.stdout, self.stdout, r);
        assert_lines(what, &r.stderr, self.stderr, r);
        for a in self.absent {
            assert!(
                !r.stdout.contains(a),
                "{what}: {a:?} in stdout\n{}",
                brief(r)
            );
        }
        for (path, contents) in self.leaves {
            let got = std::fs::read(dir.join(path))
                .unwrap_or_else(|e| panic!("{what}: cannot read {path}: {e}\n{}", brief(r)));
            assert_eq!(
                got,
                *contents,
                "{what}: contents of {path}: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
}

/// Runs `g`, then records it on a fresh copy of the same starting files, and checks both.
fn record(g: &Guest) -> Recorded {
    let sb = Sandbox::new();
    let run_dir = sb.path().join("run");
    seed(&run_dir);
    let ran = g.invoke(&sb, "run", None, &run_dir);
    g.check("run", &ran, &run_dir);

    let rec_dir = sb.path().join("rec");
    seed(&rec_dir);
    let tape = sb.path().join("guest.tape");
    let recorded = g.invoke(&sb, "record", Some(&tape), &rec_dir);
    g.check("record", &recorded, &rec_dir);
    assert!(tape.exists(), "no tape written\n{}", brief(&recorded));
    if g.deterministic {
        assert_same("a recording and a plain run", &ran, &recorded);
    }
    Recorded {
        sb,
        tape,
        run: recorded,
    }
}

/// [`record`]s `g`, then replays the tape [`REPLAYS`] times with `--verify` and no `--dir` (and
/// other stdin): each replay passes and prints exactly what the recording printed, and no file
/// under the sandbox (the granted directories, the tape) changes.
fn round_trip(g: &Guest) -> Recorded {
    let r = record(g);
    replay_sealed(&r.sb, &g.module, &r.tape, &r.run);
    r
}

/// [`REPLAYS`] replays of `tape` with `--verify`, no `--dir` and other stdin, each identical to
/// `recorded`; no file under the sandbox changes.
fn replay_sealed(sb: &Sandbox, module: &Path, tape: &Path, recorded: &Run) {
    let before = snapshot(sb.path());
    for i in 0..REPLAYS {
        let replayed = devstash(
            sb,
            &["replay", "-q", "--verify", s(module), s(tape)],
            Some(OTHER_STDIN),
        );
        assert_eq!(
            replayed.code,
            0,
            "replay {i} did not verify\n{}",
            brief(&replayed)
        );
        assert!(
            replayed.stdout == recorded.stdout && replayed.stderr == recorded.stderr,
            "replay {i} printed something else\n{}\nrecorded: {}",
            brief(&replayed),
            brief(recorded)
        );
    }
    let after = snapshot(sb.path());
    assert_eq!(before, after, "the replays changed files on the host");
}

#[test]
fn fsprobe_replays_without_its_directory() {
    let module = fsprobe();
    let r = round_trip(&Guest {
        module,
        args: &["/work"],
        env: &[],
        stdin: None,
        code: 0,
        stdout: &[
            r#"args ["/work"]"#,
            r#"preopen fd=3 name=Ok("/work")"#,
            "create_dir probe: ok ()",
            "create_dir probe again: err AlreadyExists raw=Some(20)",
            r#"read data.txt: ok "0123456789abcdef\n""#,
            r#"read data.txt again: ok "0123456789abcdef\n""#,
            "  read 3: ok 3 [48, 49, 50]",
            "  stream_position: ok 3",
            "  fd_filestat_get: ok dev=1 ino=",
            r#"  read 5: ok 5 "world""#,
            "  seek current -5: ok 6",
            "  seek end -5: ok 19",
            r#"  read to end: ok 5 "line\n""#,
            "  seek before the start: err InvalidInput raw=Some(28)",
            "  read to end: ok 8 [104, 101, 108, 108, 111, 0, 0, 0]",
            " atim=1000000000000000007 mtim=1100000000000000009 ",
            "  modified=1200000000000000011 accessed=1000000000000000007",
            "read-only write: err Uncategorized raw=Some(8)",
            "create_new a.txt: err AlreadyExists raw=Some(20)",
            "append to a.txt: ok 17",
            "hard_link again: err AlreadyExists raw=Some(20)",
            r#"read_link a-sym: ok "a.txt""#,
            "read_link a.txt: err InvalidInput raw=Some(28)",
            "open dangling: err NotFound raw=Some(44)",
            "open loop1: err FilesystemLoop raw=Some(32)",
            "a-hard.txt path_filestat_get follow=true: ok dev=1 ino=",
            "a-sym path_filestat_get follow=false: ok dev=1 ino=",
            "read_dir probe raw order: [",
            r#"read_dir probe sorted: ["a-hard.txt", "a-sym", "a.txt", "b.txt", "c.txt", "dangling", "deep", "deep-sym", "loop1", "loop2", "zz.txt"]"#,
            r#""a-sym=symlink", "a.txt=file""#,
            "read_dir a.txt: err NotADirectory raw=Some(54)",
            "rename b.txt again: err NotFound raw=Some(44)",
            r#"read zz.txt: ok "c.txt""#,
            "rename zz.txt onto deep: err IsADirectory raw=Some(31)",
            "remove_dir deep: err Uncategorized raw=Some(55)",
            "remove_dir deep/er: ok ()",
            "open outside: err NotFound raw=Some(44)",
            "write summary.txt: ok ()",
            r#"read summary.txt: ok "fsprobe: "#,
        ],
        stderr: &["fsprobe: "],
        absent: &["stdin"],
        leaves: &[
            ("probe/a-hard.txt", b"hello\0\0\0+appended"),
            ("probe/zz.txt", b"c.txt"),
        ],
        deterministic: false,
    });
    // Inode numbers: the hard link's is the file's; the symbolic link's is its own.
    let ino = |prefix: &str| -> String {
        let line = r
            .run
            .stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap();
        line.split(' ')
            .find_map(|w| w.strip_prefix("ino="))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        ino("a.txt path_filestat_get follow=true:"),
        ino("a-hard.txt path_filestat_get follow=true:")
    );
    assert_ne!(
        ino("a.txt path_filestat_get follow=true:"),
        ino("a-sym path_filestat_get follow=false:")
    );
}

#[test]
fn fd_calls_replay_without_their_directory() {
    round_trip(&Guest {
        module: wat("fd_calls"),
        args: &[],
        env: &[],
        stdin: None,
        code: 0,
        stdout: &[
            "fd_prestat_get errno=0 fd=3 tag=0 size=5",
            r#"fd_prestat_dir_name errno=0 text="/work""#,
            "fd_prestat_dir_name errno=37 buf_len=2",
            "fd_prestat_get errno=8 fd=4",
            "fd_fdstat_get errno=0 fd=3 filetype=3 flags=0 rights_base=",
            "fd_filestat_get errno=0 fd=3 dev=1 ino=",
            "path_open path=data.txt errno=0 fd=4",
            "fd_filestat_get errno=0 fd=4 dev=1 ino=",
            " filetype=4 nlink=1 size=17 atim=",
            "fd_seek errno=0 fd=4 whence=0 offset=4",
            "fd_read errno=0 fd=4 n=4 bytes=34353637",
            "fd_tell errno=0 fd=4 offset=8",
            "fd_seek errno=0 fd=4 whence=2 offset=14",
            "fd_seek errno=0 fd=4 whence=1 offset=15",
            "fd_read errno=0 fd=4 n=2 bytes=660a",
            "fd_read errno=0 fd=4 n=0 bytes=",
            "fd_seek errno=28 fd=4 whence=0 offset=57005",
            "fd_pread errno=0 fd=4 offset=10 n=5 bytes=6162636465",
            "fd_pread errno=0 fd=4 offset=100 n=0 bytes=",
            "fd_tell errno=0 fd=4 offset=17",
            "fd_advise errno=0 fd=4",
            "fd_advise errno=8 fd=3",
            "fd_allocate errno=58 fd=4",
            "fd_datasync errno=0 fd=4",
            "fd_sync errno=0 fd=4",
            "fd_fdstat_get errno=0 fd=4 filetype=4 flags=1 ",
            "fd_fdstat_set_flags errno=28 fd=4",
            "fd_fdstat_set_rights errno=58 fd=4",
            "fd_filestat_set_size errno=28 fd=4",
            "fd_pwrite errno=8 fd=4",
            "path_open path=new.bin errno=0 fd=5",
            "fd_pwrite errno=0 fd=5 n=7",
            "fd_tell errno=0 fd=5 offset=0",
            "fd_pread errno=0 fd=5 offset=0 n=5 bytes=0000007077",
            "fd_pread errno=0 fd=5 offset=0 n=8 bytes=0000007077000000",
            " size=8 atim=1000000000123 mtim=2000000000456 ",
            "fd_filestat_set_times errno=28 fd=5",
            "fd_filestat_set_times errno=8 fd=3",
            "fd_readdir errno=0 fd=3 buf_len=4096 cookie=0 bufused=141 bytes=01000000",
            "  dirent next=1 ino=",
            " namlen=2 type=3 name=..",
            " namlen=8 type=4 name=data.txt",
            " namlen=7 type=4 name=new.bin",
            " namlen=3 type=3 name=sub",
            "fd_readdir errno=0 fd=3 buf_len=30 cookie=0 bufused=30 bytes=",
            "fd_readdir errno=0 fd=3 buf_len=4096 cookie=2 bufused=90 bytes=",
            "fd_readdir errno=0 fd=3 buf_len=4096 cookie=1000 bufused=0 bytes=",
            "path_open path=sub errno=0 fd=6",
            "fd_readdir errno=0 fd=6 buf_len=4096 cookie=0 bufused=109 bytes=",
            " namlen=5 type=4 name=a.txt",
            "fd_readdir errno=8 fd=4 ",
            "fd_seek errno=8 fd=6 whence=1",
            "fd_renumber errno=0 fd=5 to=4",
            "fd_filestat_get errno=0 fd=4 dev=1 ino=",
            "fd_filestat_get errno=8 fd=5",
            "fd_renumber errno=8 fd=99",
            "fd_close errno=0 fd=4",
            "fd_close errno=8 fd=4",
            "fd_read errno=8 fd=4 n=0 bytes=",
            "done",
        ],
        stderr: &[],
        absent: &[],
        leaves: &[
            ("new.bin", b"\0\0\0pw\0\0\0"),
            ("data.txt", b"0123456789abcdef\n"),
        ],
        deterministic: false,
    });
}

#[test]
fn path_calls_replay_without_their_directory() {
    let r = round_trip(&Guest {
        module: wat("path_calls"),
        args: &[],
        env: &[],
        stdin: None,
        code: 0,
        stdout: &[
            "path_create_directory path=made errno=0",
            "path_create_directory path=made errno=20",
            "path_create_directory path=data.txt errno=20",
            "path_open path=made/f.txt follow=1 oflags=9 errno=0 fd=4",
            "fd_write errno=0 n=23",
            // O_CREAT|O_EXCL on a file that exists; O_DIRECTORY on a file.
            "path_open path=data.txt follow=1 oflags=5 errno=20",
            "path_open path=data.txt follow=1 oflags=2 errno=54",
            "path_open path=missing.txt follow=1 oflags=0 errno=44",
            "path_open path=made/f.txt/x follow=1 oflags=0 errno=54",
            "path_open path=../outside follow=1 oflags=0 errno=63",
            "path_open path=/etc/passwd follow=1 oflags=0 errno=63",
            "path_open path=sub/.. follow=1 oflags=2 errno=0 fd=4",
            "path_filestat_get path=made/f.txt follow=1 errno=0 dev=1 ino=",
            "path_filestat_get path=missing.txt follow=1 errno=44",
            "path_filestat_set_times path=made/f.txt fst_flags=5 errno=0",
            " size=23 atim=1500000000000000001 mtim=1600000000000000002 ",
            "path_filestat_set_times path=made/f.txt fst_flags=12 errno=28",
            "path_filestat_set_times path=made/f.txt fst_flags=10 errno=0",
            "path_filestat_set_times path=missing.txt fst_flags=10 errno=44",
            "path_link path=made/f.txt to=made/g.txt errno=0",
            "path_link path=made/f.txt to=made/g.txt errno=20",
            "path_link path=missing.txt to=made/h.txt errno=44",
            "path_link path=made to=made/h.txt errno=63",
            "path_filestat_get path=made/g.txt follow=1 errno=0 dev=1 ino=",
            "path_symlink path=f.txt to=made/s.lnk errno=0",
            "path_symlink path=f.txt to=made/s.lnk errno=20",
            r#"path_readlink path=made/s.lnk buf_len=64 errno=0 bufused=5 text="f.txt""#,
            r#"path_readlink path=made/s.lnk buf_len=3 errno=0 bufused=3 text="f.t""#,
            r#"path_readlink path=made/f.txt buf_len=64 errno=28 bufused=0 text="""#,
            "path_filestat_get path=made/s.lnk follow=0 errno=0 dev=1 ino=",
            " filetype=7 nlink=1 size=5 atim=1700000000000000003 mtim=1700000000000000004 ",
            r#"fd_read errno=0 n=23 text="written through a path"#,
            "path_open path=made/s.lnk follow=0 oflags=0 errno=32",
            "path_open path=loop1 follow=1 oflags=0 errno=32",
            "path_filestat_get path=loop1 follow=1 errno=32",
            "path_symlink path=/etc/passwd to=abs.lnk errno=63",
            "path_open path=dangling.lnk follow=1 oflags=0 errno=44",
            "path_open path=made/dir.lnk follow=1 oflags=2 errno=0",
            "path_rename path=made/g.txt to=renamed.txt errno=0",
            "path_rename path=made/g.txt to=renamed.txt errno=44",
            "path_rename path=renamed.txt to=sub errno=31",
            "path_rename path=sub to=sub/a.txt errno=28",
            "path_unlink_file path=renamed.txt errno=0",
            "path_unlink_file path=renamed.txt errno=44",
            "path_unlink_file path=made errno=31",
            "path_remove_directory path=made errno=55",
            "path_remove_directory path=data.txt errno=54",
            "path_remove_directory path=missing.txt errno=44",
            "path_remove_directory path=missing.txt errno=0",
            "path_rename path=made/h.txt to=renamed.txt errno=0",
            "done",
        ],
        stderr: &[],
        absent: &[],
        leaves: &[
            ("renamed.txt", b"written through a path\n"),
            ("made/f.txt", b"written through a path\n"),
            ("made/s.lnk", b"written through a path\n"),
        ],
        deterministic: false,
    });
    let link = std::fs::read_link(r.sb.path().join("rec/made/s.lnk")).unwrap();
    assert_eq!(link, Path::new("f.txt"));
}

#[test]
fn misc_calls_replay_without_their_directory() {
    let input: &[u8] = b"some input\n";
    round_trip(&Guest {
        module: wat("misc_calls"),
        args: &["x", "y z"],
        env: &["GREETING=hi"],
        stdin: Some(input),
        code: 0,
        stdout: &[
            "args_sizes_get errno=0 count=3 ",
            r#"  value len=1 text="x""#,
            r#"  value len=3 text="y z""#,
            "environ_sizes_get errno=0 count=1 buf_size=12",
            r#"  value len=11 text="GREETING=hi""#,
            "clock_res_get errno=0 id=0 res=",
            "clock_time_get errno=0 id=0 time=",
            "clock_time_get errno=0 id=1 time=",
            "clock_res_get errno=8 id=2 res=0",
            "clock_time_get errno=8 id=3 time=0",
            "random_get errno=0",
            "sched_yield errno=0",
            "proc_raise errno=58 sig=6",
            "path_open errno=0 fd=4",
            "sock_accept errno=57 fd=4",
            "sock_recv errno=57 fd=4",
            "sock_send errno=57 fd=4",
            "sock_shutdown errno=57 fd=4",
            "sock_shutdown errno=57 fd=1",
            "sock_accept errno=8 fd=99",
            "sock_recv errno=8 fd=99",
            "sock_send errno=8 fd=99",
            "sock_shutdown errno=8 fd=99",
            // The file and stdin: either or both (a race in wasmtime-wasi).
            "poll_oneoff errno=0 nsubscriptions=3 nevents=",
            "  event userdata=1",
            // The file (nbytes is always 1), then at its end (hangup), then stdin.
            "  event userdata=41 error=0 type=1 nbytes=1 flags=0",
            "  event userdata=51 error=0 type=1 nbytes=1 flags=1",
            "  event userdata=61 error=0 type=1 nbytes=1 flags=0",
            "poll_oneoff errno=0 nsubscriptions=2 nevents=1",
            "  event userdata=21 error=0 type=2 nbytes=1 flags=0",
            "poll_oneoff errno=0 nsubscriptions=1 nevents=1",
            // A lone relative clock is slept on the guest's thread, and WASI then says
            // `nbytes` 1 (for clocks the field means nothing); the replay answers the same.
            "  event userdata=31 error=0 type=0 nbytes=1 flags=0",
            "poll_oneoff errno=8 nsubscriptions=1 nevents=0",
            "poll_oneoff errno=28 nsubscriptions=0 nevents=0",
            "fd_read errno=0 fd=0 n=11 bytes=736f6d6520696e7075740a",
            "fd_write errno=0 fd=2 n=21",
            "done",
        ],
        stderr: &["misc_calls on stderr"],
        absent: &[],
        leaves: &[],
        deterministic: false,
    });
}

#[test]
fn an_out_of_bounds_pointer_traps_the_same_way_in_a_replay() {
    round_trip(&Guest {
        module: wat("trap_out_of_bounds"),
        args: &[],
        env: &[],
        stdin: None,
        code: 134,
        stdout: &["fd_filestat_get fd=3 in bounds errno=0 filetype=3"],
        stderr: &["Pointer out of bounds"],
        absent: &["out of bounds errno", "not reached"],
        leaves: &[],
        deterministic: true,
    });
}

#[test]
fn an_invalid_enum_traps_the_same_way_in_a_replay() {
    round_trip(&Guest {
        module: wat("trap_bad_enum"),
        args: &[],
        env: &[],
        stdin: None,
        code: 134,
        stdout: &[
            "path_open path=data.txt errno=0 fd=4",
            "fd_seek whence=2 errno=0 offset=17",
        ],
        stderr: &["Invalid enum value Whence"],
        absent: &["whence=7", "not reached"],
        leaves: &[],
        deterministic: true,
    });
}

/// `write_hello.wat`: writes "hello\n" to /work/out.txt.
fn write_hello() -> Guest<'static> {
    Guest {
        module: wat("write_hello"),
        args: &[],
        env: &[],
        stdin: None,
        code: 0,
        stdout: &["wrote and read back 6 bytes"],
        stderr: &[],
        absent: &["failed"],
        leaves: &[("out.txt", b"hello\n")],
        deterministic: true,
    }
}

#[test]
fn a_file_write_replays_without_its_directory() {
    let r = round_trip(&write_hello());
    assert_eq!(r.run.stdout, "wrote and read back 6 bytes\n");
    assert!(
        !r.sb.path().join("out.txt").exists(),
        "a replay wrote the guest's file in its working directory"
    );
}

#[test]
fn a_tape_replays_in_another_directory_once_the_recorded_one_is_gone() {
    for (name, module, args) in [
        ("fsprobe.wasm", fsprobe(), &["/work"][..]),
        ("path_calls.wat", wat("path_calls"), &[][..]),
    ] {
        let first = Sandbox::new();
        let dir = first.path().join("work");
        seed(&dir);
        let grant = format!("{}::/work", s(&dir));
        let mut record = vec!["record", "-q", "-o", "t.tape", "--dir", &grant, s(&module)];
        record.extend_from_slice(args);
        let recorded = first.devstash(&record);
        assert_eq!(recorded.code, 0, "{name}: {}", brief(&recorded));

        let second = Sandbox::new();
        std::fs::copy(&module, second.path().join(name)).unwrap();
        std::fs::copy(first.path().join("t.tape"), second.path().join("t.tape")).unwrap();
        let Sandbox { dir: gone, home } = first;
        gone.close().unwrap();
        drop(home);
        assert!(!dir.exists());

        let before = snapshot(second.path());
        let replayed = devstash(
            &second,
            &["replay", "-q", "--verify", name, "t.tape"],
            Some(OTHER_STDIN),
        );
        assert_eq!(replayed.code, 0, "{name}: {}", brief(&replayed));
        assert!(
            replayed.stdout == recorded.stdout && replayed.stderr == recorded.stderr,
            "{name}: the replay printed something else\n{}\nrecorded: {}",
            brief(&replayed),
            brief(&recorded)
        );
        assert_eq!(before, snapshot(second.path()), "{name}: files changed");
    }
}

#[test]
fn a_changed_file_write_fails_verify_with_a_diff_of_the_file() {
    let r = record(&write_hello());
    let upper = wat("write_hello_upper");
    let before = snapshot(r.sb.path());
    let verified =
        r.sb.devstash(&["replay", "--verify", s(&upper), s(&r.tape)]);
    assert_eq!(verified.code, 122, "{verified:?}");
    assert!(
        verified.stderr.contains("/work/out.txt"),
        "names the file: {verified:?}"
    );
    assert!(
        verified
            .stderr
            .lines()
            .any(|l| l.starts_with('-') && l.contains("hello")),
        "the recorded contents: {verified:?}"
    );
    assert!(
        verified
            .stderr
            .lines()
            .any(|l| l.starts_with('+') && l.contains("HELLO")),
        "the replayed contents: {verified:?}"
    );
    assert_eq!(before, snapshot(r.sb.path()), "the replay changed files");
}

#[test]
fn stdin_comes_from_the_tape_even_past_its_end() {
    let r = round_trip(&Guest {
        module: fsprobe(),
        args: &["/work", "stdin"],
        env: &[],
        stdin: Some(b"abc"),
        code: 0,
        stdout: &[
            r#"args ["/work", "stdin"]"#,
            "stdin: ok 3",
            r#"stdin bytes: "abc""#,
            "stdin again: ok 0",
            "write summary.txt: ok ()",
        ],
        stderr: &[],
        absent: &["not the recorded input"],
        leaves: &[],
        deterministic: false,
    });
    // With no stdin at all, the same.
    let m = fsprobe();
    let replayed = devstash(
        &r.sb,
        &["replay", "-q", "--verify", s(&m), s(&r.tape)],
        None,
    );
    assert_eq!(replayed.code, 0, "{}", brief(&replayed));
    assert!(
        replayed.stdout == r.run.stdout,
        "the replay printed something else\n{}",
        brief(&replayed)
    );
}

#[test]
fn a_different_filesystem_call_is_a_divergence() {
    let r = record(&write_hello());
    let elsewhere = wat("write_hello_elsewhere");
    let before = snapshot(r.sb.path());
    let diverged = r.sb.devstash(&["replay", s(&elsewhere), s(&r.tape)]);
    assert_eq!(diverged.code, 123, "{diverged:?}");
    for needle in ["path_open", "new.txt", "out.txt"] {
        assert!(
            diverged.stderr.contains(needle),
            "{needle:?} in {diverged:?}"
        );
    }
    assert!(
        !diverged.stdout.contains("wrote"),
        "stopped at the call: {diverged:?}"
    );
    assert_eq!(before, snapshot(r.sb.path()), "the replay changed files");
}

/// Every WASI function on descriptors that devstash records: the guests above must reach each.
const DESCRIPTOR_FUNCTIONS: &[&str] = &[
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

#[test]
fn the_guests_reach_every_function_a_tape_answers() {
    let sb = Sandbox::new();
    let fs = fsprobe();
    let guests: Vec<(PathBuf, Vec<&str>)> = vec![
        (wat("fd_calls"), vec![]),
        (wat("path_calls"), vec![]),
        (wat("misc_calls"), vec![]),
        (fs, vec!["/work", "stdin"]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (i, (module, args)) in guests.iter().enumerate() {
        let dir = sb.path().join(format!("w{i}"));
        seed(&dir);
        let tape = sb.path().join(format!("{i}.tape"));
        let grant = format!("{}::/work", s(&dir));
        let mut cmd = vec!["record", "-q", "-o", s(&tape), "--dir", &grant, s(module)];
        cmd.extend(args);
        let r = devstash(&sb, &cmd, Some(b"input"));
        assert_eq!(r.code, 0, "{}", brief(&r));
        let json = sb.devstash(&["inspect", "--json", s(&tape)]);
        let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("inspect --json");
        for f in v["wasi"].as_array().unwrap() {
            seen.insert(f["function"].as_str().unwrap().to_string());
        }
    }
    let missing: Vec<&&str> = DESCRIPTOR_FUNCTIONS
        .iter()
        .filter(|f| !seen.contains(**f))
        .collect();
    assert!(missing.is_empty(), "no guest calls {missing:?}");
    assert_eq!(seen.len(), DESCRIPTOR_FUNCTIONS.len(), "{seen:?}");
}
