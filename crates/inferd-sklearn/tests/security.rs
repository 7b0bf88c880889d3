//! Files that run code when Python unpickles them (written by `fixtures/sklearn/malicious.py`,
//! most proven there to create the canary under `joblib.load`) must be refused, naming what
//! was refused, and the canary file they would create must never appear.

use std::path::PathBuf;

const CANARY: &str = "/tmp/inferd-sklearn-canary";

fn malicious_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sklearn/malicious")
}

/// What each refusal must mention: the forbidden name, or the opcode / check that stopped it.
const EXPECTED: &[(&str, &str)] = &[
    ("global_os_system", "'os.system'"),
    ("global_posix_system", "'posix.system'"),
    ("global_eval", "'builtins.eval'"),
    ("global_exec", "'builtins.exec'"),
    ("stack_global_eval", "'builtins.eval'"),
    ("stack_global_exec", "'builtins.exec'"),
    ("stack_global_import", "'builtins.getattr'"),
    ("global_getattr_import", "'builtins.getattr'"),
    ("inst_os_system", "'os.system'"),
    ("obj_os_system", "'os.system'"),
    ("copyreg_reconstructor", "'copyreg._reconstructor'"),
    (
        "numpy_runstring",
        "'numpy.testing._private.utils.runstring'",
    ),
    ("allowed_reduce_with_eval_arg", "'builtins.eval'"),
    ("nested_reduce_in_state", "'posix.system'"),
    ("persistent_id", "opcode"),
    ("extension_registry", "opcode"),
    ("out_of_band_buffer", "opcode"),
    ("reduce_os_system_p2", "'posix.system'"),
    ("reduce_os_system_p3", "'posix.system'"),
    ("reduce_os_system_p4", "'posix.system'"),
    ("reduce_os_system_p5", "'posix.system'"),
    ("reduce_popen_p4", "'subprocess.Popen'"),
    ("estimator_state_reduce", "'posix.system'"),
    ("estimator_object_array_reduce", "'posix.system'"),
    ("estimator_state_allowed_class", "classes_"),
];

#[test]
fn code_running_pickles_are_refused_and_run_nothing() {
    let _ = std::fs::remove_file(CANARY);
    let mut seen = 0;
    for entry in std::fs::read_dir(malicious_dir()).expect("fixtures/sklearn/malicious exists") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "clean_tree_control" {
            continue;
        }
        let (_, expect) = EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let bytes = std::fs::read(&path).unwrap();
        let err = match inferd_sklearn::load(&bytes) {
            Ok(_) => panic!("{name} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expect),
            "{name}: error {err:?} should mention {expect}"
        );
        assert!(
            !err.contains("/tmp") && !err.contains("fixtures"),
            "{name}: {err} shows a path"
        );
        let core: inferd_core::Error = inferd_sklearn::load(&bytes).err().unwrap().into();
        assert_eq!(core.kind, inferd_core::ErrorKind::ModelLoad);
        seen += 1;
    }
    assert_eq!(seen, EXPECTED.len(), "every expectation has its file");
    assert!(
        !std::path::Path::new(CANARY).exists(),
        "a payload ran: {CANARY} exists"
    );
}

#[test]
fn the_control_file_loads() {
    // The same generator's harmless tree loads, so the refusals above are about the payloads.
    let bytes = std::fs::read(malicious_dir().join("clean_tree_control.pkl")).unwrap();
    let model = inferd_sklearn::load(&bytes).expect("clean tree loads");
    assert_eq!(model.metadata().row_features(), Some(4));
}

#[test]
fn truncated_and_corrupt_files_fail_cleanly() {
    let bytes = std::fs::read(malicious_dir().join("clean_tree_control.pkl")).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        assert!(
            inferd_sklearn::load(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes loaded"
        );
    }
    let mut flipped = bytes.clone();
    for i in (0..flipped.len()).step_by(13) {
        flipped[i] ^= 0x5a;
        let _ = inferd_sklearn::load(&flipped);
        flipped[i] ^= 0x5a;
    }
    assert!(inferd_sklearn::load(b"").is_err());
    assert!(inferd_sklearn::load(b"not a pickle").is_err());
}
