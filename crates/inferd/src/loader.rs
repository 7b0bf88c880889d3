//! Turning model files into served models: picks the runtime from the file's extension, and
//! warms each model up with one real inference before it may report ready.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inferd_core::repository::files;
use inferd_core::tensor::{DataType, NamedTensor, Tensor, TensorData};
use inferd_core::{Error, ErrorKind, Model, Result};
use inferd_manager::offload::{self, Outcome};

/// The seed's iris RandomForest (100 trees, random_state=0) converted by skl2onnx, built into
/// the binary so that `inferd serve` answers with no set-up. Made by `fixtures/generate.py`.
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../assets/iris.onnx");
pub const BUILTIN_MODEL_NAME: &str = "iris";

/// Largest model file read into memory (1 GiB): a guard against a mistaken path to a data set.
const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// Loads the built-in model.
pub fn load_builtin() -> Result<Arc<dyn Model>> {
    Ok(Arc::new(inferd_onnx::OnnxModel::load(BUILTIN_MODEL)?))
}

/// Loads a model file named on the command line, choosing the runtime by extension. Error
/// messages name the file by its name only, never its directory.
pub fn load_file(path: &Path) -> Result<Arc<dyn Model>> {
    load(None, path)
}

/// Loads a model file of the repository under `root` (resolved): it must still resolve to a
/// file inside it when it is opened.
pub fn load_repository_file(root: &Path, path: &Path) -> Result<Arc<dyn Model>> {
    load(Some(root), path)
}

fn load(root: Option<&Path>, path: &Path) -> Result<Arc<dyn Model>> {
    let shown = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    // Regular files only (a FIFO or device is refused before it is opened), and the read is
    // bounded even if the file grows while it is read.
    let bytes = files::read_capped(root, path, MAX_MODEL_FILE_BYTES, &shown)?;
    let model: Arc<dyn Model> = match ext.as_str() {
        "onnx" => load_onnx(&bytes)?,
        // Read as data by an allowlisting parser: nothing in the file is ever executed.
        "pkl" | "joblib" => inferd_sklearn::load(&bytes)?,
        "json" => Arc::new(inferd_native::load_xgboost_json(&bytes)?),
        "txt" => Arc::new(inferd_native::load_lightgbm_text(&bytes)?),
        _ => {
            return Err(Error::model_load(format!(
                "model file {shown}: unsupported extension (expected .onnx, .pkl, .joblib, .json or .txt)"
            )))
        }
    };
    Ok(model)
}

/// ONNX files go to inferd-onnx, the runtime for ONNX-ML graphs. Only when it lacks a standard
/// (or third-party domain) operator is the graph handed to tract, which runs general neural
/// networks; a graph inferd-onnx refuses for an ONNX-ML operator, or for anything else, is not.
/// If tract cannot run it either, the client sees inferd-onnx's reason first.
fn load_onnx(bytes: &[u8]) -> Result<Arc<dyn Model>> {
    let refused = match inferd_onnx::OnnxModel::load_onnx(bytes) {
        Ok(model) => return Ok(Arc::new(model)),
        Err(e) => e,
    };
    if !lacks_standard_operator(&refused) {
        return Err(refused.into());
    }
    match inferd_tract::TractModel::load_tract(bytes) {
        Ok(model) => {
            tracing::info!(reason = %refused, "ONNX model runs in tract");
            Ok(Arc::new(model))
        }
        Err(tract) => Err(Error::model_load(format!(
            "{refused} (tract, the runtime for general neural networks, was tried too: {tract})"
        ))),
    }
}

/// Whether inferd-onnx refused the graph only for an operator outside ONNX-ML that it does
/// not implement (Conv, MaxPool, ...), which is what tract is there for.
fn lacks_standard_operator(e: &inferd_onnx::OnnxError) -> bool {
    match e {
        inferd_onnx::OnnxError::Node { message, .. } => {
            (message.starts_with("unsupported operator ") && !message.contains("ai.onnx.ml"))
                || message.starts_with("operator domain '")
        }
        _ => false,
    }
}

/// Runs `work` (a load at start-up) on a thread of its own and waits at most `timeout` for
/// it, as the manager does for repository loads. Past it the thread is left behind (a blocked
/// read cannot be interrupted): start-up then fails, and the process exits with it.
pub fn within<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (_, pending) = offload::start("inferd-load", work)?;
    match pending.wait_blocking(timeout)? {
        Outcome::Finished(result) => result,
        Outcome::TimedOut => Err(Error::new(
            ErrorKind::DeadlineExceeded,
            format!(
                "loading timed out after {} (--model-load-timeout)",
                offload::seconds(timeout)
            ),
        )),
        Outcome::Panicked => Err(Error::internal("the model loader failed unexpectedly")),
    }
}

/// Runs one real inference on a zero-filled row so that first-request costs (page faults,
/// lazy set-up) are paid before readiness turns true.
pub fn warm_up(model: &dyn Model) -> Result<()> {
    let inputs = model
        .metadata()
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|&d| if d < 0 { 1 } else { d as usize })
                .collect();
            let n: usize = shape.iter().product();
            let data = match spec.datatype {
                DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
                DataType::Bool => TensorData::Bool(vec![false; n]),
                DataType::F64 => TensorData::F64(vec![0.0; n]),
                DataType::I64 | DataType::U64 | DataType::U32 => TensorData::I64(vec![0; n]),
                DataType::I32 | DataType::I16 | DataType::I8 | DataType::U16 | DataType::U8 => {
                    TensorData::I32(vec![0; n])
                }
                DataType::F32 | DataType::F16 | DataType::BF16 => TensorData::F32(vec![0.0; n]),
            };
            Ok(NamedTensor::new(
                spec.name.clone(),
                Tensor::new(shape, data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    model.infer(inputs).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_loads_and_warms_up() {
        let model = load_builtin().unwrap();
        warm_up(model.as_ref()).unwrap();
        assert_eq!(model.metadata().row_features(), Some(4));
    }

    fn nn_fixture(case: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/nn")
            .join(case)
            .join("model.onnx")
    }

    #[test]
    fn a_network_inferd_onnx_lacks_operators_for_runs_in_tract() {
        let path = nn_fixture("digits_cnn");
        let bytes = std::fs::read(&path).unwrap();
        let refused = inferd_onnx::OnnxModel::load_onnx(&bytes).unwrap_err();
        assert!(lacks_standard_operator(&refused), "{refused}");
        let model = load_file(&path).unwrap();
        warm_up(model.as_ref()).unwrap();
        assert_eq!(model.metadata().inputs[0].shape, vec![-1, 1, 8, 8]);
    }

    #[test]
    fn onnx_ml_graphs_stay_with_inferd_onnx() {
        // Scaler (ai.onnx.ml) feeding an MLP: inferd-onnx runs it, so tract is never tried.
        let model = load_file(&nn_fixture("digits_scaler_mlp")).unwrap();
        warm_up(model.as_ref()).unwrap();
        let unknown_ml = inferd_onnx::OnnxError::Node {
            node: "n".into(),
            op_type: "SVMClassifier".into(),
            message: "unsupported operator SVMClassifier in domain ai.onnx.ml".into(),
        };
        assert!(!lacks_standard_operator(&unknown_ml));
    }

    #[test]
    fn special_files_are_refused_and_slow_loads_time_out() {
        let err = load_file(Path::new("/dev/zero")).unwrap_err();
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );
        let root = std::env::temp_dir().join(format!("inferd-loader-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("model.onnx")).unwrap();
        let err = load_repository_file(&root, &root.join("model.onnx")).unwrap_err();
        assert_eq!(err.message, "model.onnx points outside the repository");
        std::fs::remove_dir_all(&root).unwrap();
        let err = within(Duration::from_millis(10), || {
            std::thread::sleep(Duration::from_secs(1));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded);
        assert_eq!(within(Duration::from_secs(5), || Ok(7)).unwrap(), 7);
    }

    #[test]
    fn load_errors_do_not_show_directories() {
        let err = load_file(Path::new("/secret/dir/model.onnx")).unwrap_err();
        assert!(!err.message.contains("/secret"), "{}", err.message);
        assert!(err.message.contains("model.onnx"));
    }
}
