//! Reading a repository directory into a plan, refusing anything that would lead outside it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::config::{ModelConfig, MAX_CONFIG_BYTES};
use super::files;
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
    /// The file's size and modification time when scanned: a change means "load again".
    pub size: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelPlan {
    pub name: String,
    pub config: ModelConfig,
    /// The versions the policy selects and that have a usable model file, ascending.
    pub versions: Vec<VersionPlan>,
    /// Versions the policy selects whose directory cannot be served (no model file, two of
    /// them, not a regular file, outside the repository); the model's other versions stand.
    pub broken: Vec<(u64, Error)>,
    /// Directories in the model's directory that are not versions (`+3`, `01`, `0`), by name
    /// (printable, shortened): ignored, and reported so that a typo does not go unseen.
    pub ignored: Vec<(String, Error)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepositoryPlan {
    /// The repository root, resolved (every file in the plan is under it).
    pub root: PathBuf,
    pub models: Vec<ModelPlan>,
    /// Problems with single models (bad config, no version); the rest of the plan stands.
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
    let mut plan = RepositoryPlan {
        root: root.clone(),
        ..Default::default()
    };
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
    let dir = files::inside(root, &root.join(name), "the model directory")?;
    if !dir.is_dir() {
        return Ok(None); // a stray file at the top level
    }
    let config = read_config(root, &dir)?;
    let mut present = Vec::new();
    let mut ignored = Vec::new();
    for entry in read_dir(&dir)? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || !entry.path().is_dir() {
            continue; // config.toml, READMEs, editors' and Kubernetes' hidden entries
        }
        match parse_version(&file_name) {
            Some(v) => present.push(v),
            None => {
                let shown = printable(&file_name);
                let error = Error::model_load(format!(
                    "directory {shown:?} is ignored: versions are positive integers written plainly (1, 2, 10)"
                ));
                ignored.push((shown, error));
            }
        }
    }
    ignored.sort_by(|a, b| a.0.cmp(&b.0));
    let mut versions = Vec::new();
    let mut broken = Vec::new();
    let selected = config.version_policy.select(&present);
    for &version in &selected {
        match version_plan(root, &dir, version) {
            Ok(plan) => versions.push(plan),
            Err(e) => broken.push((version, e)),
        }
    }
    if selected.is_empty() {
        let mut message = format!("model '{name}' has no version directory the policy selects");
        if let Some((shown, _)) = ignored.first() {
            message.push_str(&format!(
                " (directory {shown:?} is not a version number: versions are positive integers written plainly)"
            ));
        }
        return Err(Error::model_load(message));
    }
    Ok(Some(ModelPlan {
        name: name.to_owned(),
        config,
        versions,
        broken,
        ignored,
    }))
}

/// A version directory's name is its number written plainly: it must print back as itself, so
/// `+3`, ` 3`, `03` and `3.0` are not versions (each would alias `3`), nor is `0`.
fn parse_version(name: &str) -> Option<u64> {
    let v: u64 = name.parse().ok()?;
    (v > 0 && v.to_string() == name).then_some(v)
}

/// `config.toml`, when present: inside the repository, a regular file, at most 64 KiB.
fn read_config(root: &Path, dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.toml");
    match fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ModelConfig::default()),
        Err(_) => return Err(Error::model_load("config.toml cannot be read")),
    }
    let bytes = files::read_capped(Some(root), &path, MAX_CONFIG_BYTES as u64, "config.toml")?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::model_load("config.toml is not UTF-8"))?;
    ModelConfig::parse(&text)
}

/// The single `model.<ext>` file in a version directory, checked without being opened.
fn version_plan(root: &Path, dir: &Path, version: u64) -> Result<VersionPlan> {
    let version_dir = files::inside(
        root,
        &dir.join(version.to_string()),
        &format!("version directory {version}"),
    )?;
    let mut found = Vec::new();
    for entry in read_dir(&version_dir)? {
        let path = entry.path();
        let is_model = path.file_stem().is_some_and(|s| s == "model")
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_model {
            found.push(path);
        }
    }
    let path = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(Error::model_load(format!(
                "version {version} has no model file (model.onnx, .pkl, .joblib, .json or .txt)"
            )))
        }
        _ => {
            return Err(Error::model_load(format!(
                "version {version} has more than one model.* file"
            )))
        }
    };
    let shown = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = files::inside(root, &path, &shown)?;
    // The loader caps the size; here only what it is matters (a FIFO must never be opened).
    let meta = files::check_regular(&file, u64::MAX, &shown)?;
    Ok(VersionPlan {
        version,
        file,
        size: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// A directory name fit for logs and the index: no control characters, at most 64 characters.
fn printable(name: &str) -> String {
    let mut out: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if name.chars().count() > 64 {
        out.push('…');
    }
    out
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
        let names: Vec<_> = plan.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["good", "twofiles"]);
        let bad: Vec<_> = plan.problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(bad, ["badconfig", "noversion"]);
        // A broken version directory is that version's problem, not the whole model's.
        let (version, err) = &plan.models[1].broken[0];
        assert_eq!(
            (*version, err.message.as_str()),
            (1, "version 1 has more than one model.* file")
        );
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = TempDir::new("outside");
        outside.file("1/model.onnx", "secret");
        outside.file("config.toml", "secret_key = \"hunter2\"");
        let repo = TempDir::new("symlink");
        repo.file("ok/1/model.onnx", "x");
        std::os::unix::fs::symlink(&outside.0, repo.0.join("escape")).unwrap();
        fs::create_dir_all(repo.0.join("sneaky/1")).unwrap();
        std::os::unix::fs::symlink(
            outside.0.join("1/model.onnx"),
            repo.0.join("sneaky/1/model.onnx"),
        )
        .unwrap();
        repo.file("conf/1/model.onnx", "x");
        std::os::unix::fs::symlink(
            outside.0.join("config.toml"),
            repo.0.join("conf/config.toml"),
        )
        .unwrap();
        let plan = scan(&repo.0).unwrap();
        let names: Vec<_> = plan.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ok", "sneaky"]);
        // The model file is refused for its version; the model stays, with nothing to serve.
        let (version, err) = &plan.models[1].broken[0];
        assert_eq!(*version, 1);
        assert_eq!(err.message, "model.onnx points outside the repository");
        let problems: Vec<_> = plan.problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(problems, ["conf", "escape"]);
        assert_eq!(
            plan.problems[0].1.message,
            "config.toml points outside the repository"
        );
        for (_, err) in &plan.problems {
            assert!(err.message.contains("outside"), "{}", err.message);
            assert!(!err.message.contains(&*outside.0.to_string_lossy()));
            assert!(!err.message.contains("secret"), "{}", err.message);
        }
    }

    #[test]
    fn devices_and_fifos_are_refused_without_being_opened() {
        let repo = TempDir::new("special");
        repo.file("zero/1/model.onnx", "x");
        std::os::unix::fs::symlink("/dev/zero", repo.0.join("zero/config.toml")).unwrap();
        repo.file("fifo/1/model.onnx", "x");
        repo.file("fifo/2/keep", "");
        mkfifo(&repo.0.join("fifo/config.toml"));
        mkfifo(&repo.0.join("fifo/2/model.onnx"));
        repo.file("pipe/1/model.onnx", "1");
        repo.file("pipe/2/keep", "");
        repo.file("pipe/config.toml", "version_policy = \"all\"");
        mkfifo(&repo.0.join("pipe/2/model.onnx"));
        // Reading any of these would block (FIFO) or never end (/dev/zero): scan returns.
        let plan = scan(&repo.0).unwrap();
        let problems: Vec<_> = plan
            .problems
            .iter()
            .map(|(n, e)| (n.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    "fifo",
                    "config.toml is not a regular file (FIFOs, sockets and devices are never read)"
                ),
                ("zero", "config.toml points outside the repository"),
            ]
        );
        let pipe = &plan.models[0];
        assert_eq!(pipe.versions.len(), 1, "version 1 still serves");
        assert_eq!(pipe.broken[0].0, 2);
        assert!(pipe.broken[0].1.message.contains("not a regular file"));
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn names_and_versions_are_strict() {
        let repo = TempDir::new("strict");
        repo.file("m/01/model.onnx", "x");
        repo.file("m/0/model.onnx", "x");
        repo.file("m/-1/model.onnx", "x");
        repo.file("m/+3/model.onnx", "x");
        repo.file("m/ 4/model.onnx", "x");
        repo.file("m/2/model.onnx", "x");
        repo.file("m/README", "x");
        let plan = scan(&repo.0).unwrap();
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let m = &plan.models[0];
        assert_eq!(
            m.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [2]
        );
        let ignored: Vec<_> = m.ignored.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(ignored, [" 4", "+3", "-1", "0", "01"]);
        assert!(m.ignored[1].1.message.contains("\"+3\" is ignored"));
        for bad in ["..", "a/b", "", ".x", "a b", "%2e%2e"] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
        for (name, parsed) in [
            ("1", Some(1)),
            ("10", Some(10)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("+3", None),
            ("3 ", None),
            ("03", None),
            ("0", None),
            ("3.0", None),
            ("٣", None),
        ] {
            assert_eq!(parse_version(name), parsed, "{name:?}");
        }
    }

    #[test]
    fn a_model_with_only_invalid_version_names_says_why() {
        let repo = TempDir::new("onlyplus");
        repo.file("m/+3/model.onnx", "x");
        let plan = scan(&repo.0).unwrap();
        let message = &plan.problems[0].1.message;
        assert!(message.contains("no version directory"), "{message}");
        assert!(message.contains("\"+3\""), "{message}");
    }
}
