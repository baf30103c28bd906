//! componentize-py, pinned, in a virtual environment of its own that wasmhost creates on
//! first use from a `python3` (3.10 or newer) on the PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{BuildError, publish_dir};

/// The componentize-py release Python guests are built with.
pub(super) const COMPONENTIZE_PY: &str = "0.25.1";
/// The CPython inside that componentize-py, which dependencies must be built for.
pub(super) const GUEST_PYTHON: &str = "3.14";

const CANDIDATES: [&str; 7] = [
    "python3",
    "python3.14",
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python",
];

/// The virtual environment holding componentize-py and pip.
pub(super) struct Toolchain {
    venv: PathBuf,
}

impl Toolchain {
    /// The venv under `root`, created (saying so) when absent.
    pub(super) fn ensure(root: &Path) -> Result<Self, BuildError> {
        let venv = root.join(format!("venv-componentize-py-{COMPONENTIZE_PY}"));
        let this = Self { venv };
        if this.componentize_py().is_file() {
            return Ok(this);
        }
        let python = find_python()?;
        eprintln!(
            "installing componentize-py {COMPONENTIZE_PY} into {} (first use; needs PyPI) ...",
            this.venv.display()
        );
        publish_dir(&this.venv, |tmp| {
            let status = Command::new(&python)
                .args(["-m", "venv"])
                .arg(tmp)
                .stdout(Stdio::null())
                .status()
                .map_err(|e| BuildError::tool("python3 -m venv", e))?;
            if !status.success() {
                return Err(BuildError::Venv {
                    python: python.clone(),
                });
            }
            let pip = tmp.join("bin").join("pip");
            let status = Command::new(&pip)
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}"))
                .status()
                .map_err(|e| BuildError::tool("pip", e))?;
            if !status.success() {
                return Err(BuildError::Install(format!(
                    "`pip install componentize-py=={COMPONENTIZE_PY}` failed ({status})"
                )));
            }
            Ok(())
        })?;
        // A venv records its own path in its scripts: moving it into place keeps them
        // pointing at the temporary folder, so its interpreter is always called directly.
        Ok(this)
    }

    /// The venv's interpreter.
    pub(super) fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// Where componentize-py's entry point lives (its presence marks a finished venv).
    fn componentize_py(&self) -> PathBuf {
        self.venv.join("bin").join("componentize-py")
    }

    /// componentize-py's command line, through the venv's interpreter.
    pub(super) fn componentize(&self) -> Command {
        let mut command = Command::new(self.python());
        command.args([
            "-c",
            "import sys; from componentize_py import script; \
             sys.argv[0] = 'componentize-py'; sys.exit(script())",
        ]);
        command
    }

    /// `python -m pip` of the venv, quiet about its own version.
    pub(super) fn pip(&self) -> Command {
        let mut command = Command::new(self.python());
        command.args(["-m", "pip", "--disable-pip-version-check"]);
        command
    }
}

/// The first `python3` on the PATH that is 3.10 or newer.
fn find_python() -> Result<PathBuf, BuildError> {
    let mut seen = Vec::new();
    for name in CANDIDATES {
        let Ok(out) = Command::new(name)
            .args(["-c", "import sys; print('%d %d' % sys.version_info[:2])"])
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            if major == 3 && minor >= 10 {
                return Ok(PathBuf::from(name));
            }
            seen.push(format!("{name} is {major}.{minor}"));
        }
    }
    Err(BuildError::NoPython { seen })
}
