//! Where the installed data files live: the model bundle, dlib's landmark model, silero-vad,
//! all-MiniLM-L6-v2 and the sample session (`scripts/install_*.sh` put them in `assets/`).
//!
//! A binary looks, in order, in `$MIMML_ASSETS`; in `assets/` beside the executable; in
//! `../share/mimml/assets` from the executable's folder (an installed `bin/`); and last in the
//! source tree it was built from. A moved or installed binary therefore never depends on the
//! build tree still being there, and an explicit path on the command line always wins.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the assets folder.
pub const ENV: &str = "MIMML_ASSETS";

/// The assets folder this process uses.
pub fn dir() -> PathBuf {
    resolve(std::env::var_os(ENV), std::env::current_exe().ok().as_deref())
}

/// The assets folder for the environment value `env` and the executable at `exe`: the rule of
/// [`dir`], without touching the process's environment.
pub fn resolve(env: Option<OsString>, exe: Option<&Path>) -> PathBuf {
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside =
        exe.and_then(Path::parent).into_iter().flat_map(|bin| [bin.join("assets"), bin.join("../share/mimml/assets")]);
    beside.into_iter().find(|p| p.is_dir()).unwrap_or_else(source_tree)
}

/// `assets/` of the source tree this build came from.
pub fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_then_beside_the_binary_then_the_source_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let exe = bin.join("mimml");
        assert_eq!(resolve(Some("/opt/x".into()), Some(&exe)), PathBuf::from("/opt/x"));
        assert_eq!(resolve(None, Some(&exe)), source_tree(), "nothing installed beside it");
        let share = dir.path().join("share/mimml/assets");
        std::fs::create_dir_all(&share).expect("mkdir");
        assert_eq!(resolve(Some("".into()), Some(&exe)), bin.join("../share/mimml/assets"));
        std::fs::create_dir_all(bin.join("assets")).expect("mkdir");
        assert_eq!(resolve(None, Some(&exe)), bin.join("assets"));
        assert_eq!(resolve(None, None), source_tree());
    }
}
