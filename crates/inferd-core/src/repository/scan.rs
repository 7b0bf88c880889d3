//! Reading a repository directory into a plan, refusing anything that would lead outside it.

use std::fs;
use std::path::{Path, PathBuf};

use super::config::ModelConfig;
use crate::error::{Error, Result};

/// File extensions a version directory's `model.<ext>` may have.
pub const MODEL_EXTENSIONS: &[&str] = &["onnx", "pkl", "joblib", "json", "txt"];

/// Most models and versions one repository may hold: a guard against pointing at `/`.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct VersionPlan {
    pub version: u64,
    /// Canonical path of the model file, inside the repository.
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelPlan {
    pub name: String,
    pub config: ModelConfig,
    /// The versions the policy selects, ascending.
    pub versions: Vec<VersionPlan>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepositoryPlan {
    pub models: Vec<ModelPlan>,
    /// Problems with single models (bad config, no model file); the rest of the plan stands.
    pub problems: Vec<(String, Error)>,
}

/// Model names appear in URLs, logs and metric labels: a safe alphabet only.
pub fn check_model_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "invalid model name: use 1-128 characters from A-Z a-z 0-9 - _ . (not starting with .)",
        ))
    }
}

/// Reads the repository under `root`. Fails only if `root` itself is unusable; problems with
/// one model are collected in [`RepositoryPlan::problems`].
pub fn scan(root: &Path) -> Result<RepositoryPlan> {
    let root = fs::canonicalize(root)
        .map_err(|_| Error::model_load("the model repository directory cannot be read"))?;
    let mut plan = RepositoryPlan::default();
    let mut names = Vec::new();
    for entry in read_dir(&root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // editors' and Kubernetes' (..data) hidden entries
        }
        if check_model_name(&name).is_err() {
            plan.problems
                .push((name, Error::model_load("invalid model directory name")));
            continue;
        }
        names.push(name);
    }
    names.sort();
    for name in names {
        match scan_model(&root, &name) {
            Ok(Some(model)) => plan.models.push(model),
            Ok(None) => {}
            Err(e) => plan.problems.push((name, e)),
        }
    }
    Ok(plan)
}

fn scan_model(root: &Path, name: &str) -> Result<Option<ModelPlan>> {
    let dir = inside(root, &root.join(name))?;
    if !dir.is_dir() {
        return Ok(None); // a stray file at the top level
    }
    let config = match fs::read(dir.join("config.toml")) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::model_load("config.toml is not UTF-8"))?;
            ModelConfig::parse(&text)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ModelConfig::default(),
        Err(_) => return Err(Error::model_load("config.toml cannot be read")),
    };
    let mut present = Vec::new();
    for entry in read_dir(&dir)? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // Versions are positive integers written plainly: "01" would alias "1".
        if let Ok(v) = file_name.parse::<u64>() {
            if v > 0 && !file_name.starts_with('0') && entry.path().is_dir() {
                present.push(v);
            }
        }
    }
    let mut versions = Vec::new();
    for version in config.version_policy.select(&present) {
        versions.push(VersionPlan {
            version,
            file: model_file(root, &dir.join(version.to_string()))?,
        });
    }
    if versions.is_empty() {
        return Err(Error::model_load(format!(
            "model '{name}' has no version directory the policy selects"
        )));
    }
    Ok(Some(ModelPlan {
        name: name.to_owned(),
        config,
        versions,
    }))
}

/// The single `model.<ext>` file in a version directory.
fn model_file(root: &Path, version_dir: &Path) -> Result<PathBuf> {
    let version_dir = inside(root, version_dir)?;
    let mut found = Vec::new();
    for entry in read_dir(&version_dir)? {
        let path = entry.path();
        let is_model = path.file_stem().is_some_and(|s| s == "model")
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_model {
            found.push(inside(root, &path)?);
        }
    }
    let version = version_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::model_load(format!(
            "version {version} has no model file (model.onnx, .pkl, .joblib, .json or .txt)"
        ))),
        _ => Err(Error::model_load(format!(
            "version {version} has more than one model.* file"
        ))),
    }
}

/// Resolves `path` (following symlinks) and checks it is still under `root`; the check is on
/// the resolved path, so `..`, encoded names and symlinks out of the tree all fail the same way.
fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let resolved = fs::canonicalize(path)
        .map_err(|_| Error::model_load("a repository entry cannot be resolved"))?;
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(Error::model_load(
            "a repository entry points outside the repository",
        ))
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let entries = fs::read_dir(dir)
        .map_err(|_| Error::model_load("a repository directory cannot be read"))?;
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(|_| Error::model_load("a repository directory cannot be read"))?);
        if out.len() > MAX_ENTRIES {
            return Err(Error::model_load(
                "a repository directory has more than 10000 entries",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("inferd-repo-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn file(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn scans_layout_with_policies() {
        let repo = TempDir::new("layout");
        repo.file("iris/1/model.onnx", "x");
        repo.file("iris/2/model.onnx", "x");
        repo.file("iris/config.toml", "version_policy = \"all\"");
        repo.file("wine/1/model.pkl", "x");
        repo.file("wine/3/model.pkl", "x");
        repo.file("README.md", "not a model");
        let plan = scan(&repo.0).unwrap();
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let names: Vec<_> = plan.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["iris", "wine"]);
        let iris: Vec<_> = plan.models[0].versions.iter().map(|v| v.version).collect();
        assert_eq!(iris, [1, 2]);
        let wine: Vec<_> = plan.models[1].versions.iter().map(|v| v.version).collect();
        assert_eq!(wine, [3], "default policy: latest 1");
    }

    #[test]
    fn problems_are_per_model() {
        let repo = TempDir::new("problems");
        repo.file("good/1/model.onnx", "x");
        repo.file("noversion/readme", "x");
        repo.file("badconfig/1/model.onnx", "x");
        repo.file("badconfig/config.toml", "nonsense = [");
        repo.file("twofiles/1/model.onnx", "x");
        repo.file("twofiles/1/model.pkl", "x");
        let plan = scan(&repo.0).unwrap();
        assert_eq!(plan.models.len(), 1);
        let bad: Vec<_> = plan.problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(bad, ["badconfig", "noversion", "twofiles"]);
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = TempDir::new("outside");
        outside.file("1/model.onnx", "secret");
        let repo = TempDir::new("symlink");
        repo.file("ok/1/model.onnx", "x");
        std::os::unix::fs::symlink(&outside.0, repo.0.join("escape")).unwrap();
        fs::create_dir_all(repo.0.join("sneaky/1")).unwrap();
        std::os::unix::fs::symlink(
            outside.0.join("1/model.onnx"),
            repo.0.join("sneaky/1/model.onnx"),
        )
        .unwrap();
        let plan = scan(&repo.0).unwrap();
        assert_eq!(plan.models.len(), 1);
        for (name, err) in &plan.problems {
            assert!(err.message.contains("outside"), "{name}: {}", err.message);
            assert!(!err.message.contains(&*outside.0.to_string_lossy()));
        }
        assert_eq!(plan.problems.len(), 2);
    }

    #[test]
    fn names_and_versions_are_strict() {
        let repo = TempDir::new("strict");
        repo.file("m/01/model.onnx", "x");
        repo.file("m/0/model.onnx", "x");
        repo.file("m/-1/model.onnx", "x");
        repo.file("m/2/model.onnx", "x");
        let plan = scan(&repo.0).unwrap();
        assert_eq!(
            plan.models[0]
                .versions
                .iter()
                .map(|v| v.version)
                .collect::<Vec<_>>(),
            [2]
        );
        for bad in ["..", "a/b", "", ".x", "a b", "%2e%2e"] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
    }
}
