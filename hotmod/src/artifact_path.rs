//! Where a hot module's library is expected: one rule for both the reloading and the static
//! `Module`.

use std::path::{Path, PathBuf};

/// The crate part of a module path: `greeter` for `greeter::hello`.
pub(crate) fn crate_name(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// `HOTMOD_<CRATE>_PATH`: the environment variable that overrides the path.
pub(crate) fn env_var(module: &str) -> String {
    format!("HOTMOD_{}_PATH", crate_name(module).to_ascii_uppercase())
}

/// The path given to `set_path`, else the environment variable, else the attribute's
/// `path = "…"`, else the standard cargo location of the crate's cdylib next to the running
/// executable (`target/<profile>/lib<crate>.so`).
pub(crate) fn resolve(module: &str, set: Option<PathBuf>, attribute: Option<&str>) -> PathBuf {
    if let Some(path) = set {
        return path;
    }
    if let Some(path) = std::env::var_os(env_var(module)) {
        return PathBuf::from(path);
    }
    if let Some(path) = attribute {
        return PathBuf::from(path);
    }
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name(module),
        std::env::consts::DLL_SUFFIX
    );
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    match exe_dir {
        // Tests run from target/<profile>/deps, examples from target/<profile>/examples.
        Some(dir) if dir.ends_with("deps") || dir.ends_with("examples") => {
            dir.parent().unwrap_or(&dir).join(file)
        }
        Some(dir) => dir.join(file),
        None => PathBuf::from(file),
    }
}
