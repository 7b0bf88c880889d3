//! The allowlist: the only (module, name) pairs a GLOBAL or STACK_GLOBAL may name. Everything
//! else is refused at the opcode that names it, before anything could use it.
//!
//! Being listed gives a name no power: the reader never imports or calls anything. A few
//! numpy and codec functions are *interpreted* (their effect on plain data is reimplemented
//! here: building an array from bytes, decoding a scalar); every other listed name only labels
//! an inert [`crate::pickle::value::Value::Object`] that an estimator builder may recognise.
//! Estimator internals that scikit-learn pickles but inferd ignores (random states, loss
//! objects, the HistGradientBoosting bin mapper) are listed so that real files load.

/// What the reader does when a listed name is called (REDUCE) or instantiated (NEWOBJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `numpy.core.multiarray._reconstruct(ndarray, shape, b'b')`: an empty array, filled by BUILD.
    Reconstruct,
    /// `numpy.ndarray`: only ever an argument of `_reconstruct` or a wrapper's subclass.
    Ndarray,
    /// `numpy.dtype(code, align, copy)`, completed by BUILD.
    Dtype,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`: one number.
    Scalar,
    /// `numpy.core.numeric._frombuffer(bytes, dtype, shape, order)` (pickle protocol 5).
    FromBuffer,
    /// `_codecs.encode(text, 'latin1')`: how protocol 2 writes `bytes`.
    CodecsEncode,
    /// joblib's `NumpyArrayWrapper`: its BUILD reads the array bytes that follow in the stream.
    ArrayWrapper,
    /// A scikit-learn class or internal: recorded, never run.
    Inert,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Global {
    pub module: &'static str,
    pub name: &'static str,
    pub role: Role,
}

impl Global {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

macro_rules! allowlist {
    ($(allow!($role:ident, $module:literal, [$($name:literal),* $(,)?]),)*) => {
        &[$($(Global { module: $module, name: $name, role: Role::$role },)*)*]
    };
}

static ALLOWED: &[Global] = allowlist![
    // numpy data: interpreted.
    allow!(Reconstruct, "numpy.core.multiarray", ["_reconstruct"]),
    allow!(Reconstruct, "numpy._core.multiarray", ["_reconstruct"]),
    allow!(Scalar, "numpy.core.multiarray", ["scalar"]),
    allow!(Scalar, "numpy._core.multiarray", ["scalar"]),
    allow!(FromBuffer, "numpy.core.numeric", ["_frombuffer"]),
    allow!(FromBuffer, "numpy._core.numeric", ["_frombuffer"]),
    allow!(Ndarray, "numpy", ["ndarray"]),
    allow!(Dtype, "numpy", ["dtype"]),
    allow!(CodecsEncode, "_codecs", ["encode"]),
    allow!(ArrayWrapper, "joblib.numpy_pickle", ["NumpyArrayWrapper"]),
    // Estimators inferd builds.
    allow!(
        Inert,
        "sklearn.tree._classes",
        [
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "ExtraTreeClassifier",
            "ExtraTreeRegressor",
        ]
    ),
    allow!(Inert, "sklearn.tree._tree", ["Tree"]),
    allow!(
        Inert,
        "sklearn.ensemble._forest",
        [
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
        ]
    ),
    allow!(
        Inert,
        "sklearn.ensemble._gb",
        ["GradientBoostingClassifier", "GradientBoostingRegressor"]
    ),
    allow!(
        Inert,
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        [
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
        ]
    ),
    allow!(
        Inert,
        "sklearn.ensemble._hist_gradient_boosting.predictor",
        ["TreePredictor"]
    ),
    allow!(
        Inert,
        "sklearn.ensemble._hist_gradient_boosting.binning",
        ["_BinMapper"]
    ),
    allow!(
        Inert,
        "sklearn.linear_model._logistic",
        ["LogisticRegression"]
    ),
    allow!(Inert, "sklearn.linear_model._base", ["LinearRegression"]),
    allow!(Inert, "sklearn.linear_model._ridge", ["Ridge"]),
    allow!(
        Inert,
        "sklearn.linear_model._coordinate_descent",
        ["Lasso", "ElasticNet"]
    ),
    allow!(
        Inert,
        "sklearn.preprocessing._data",
        ["StandardScaler", "MinMaxScaler"]
    ),
    allow!(Inert, "sklearn.preprocessing._label", ["LabelEncoder"]),
    allow!(Inert, "sklearn.pipeline", ["Pipeline"]),
    allow!(
        Inert,
        "sklearn.dummy",
        ["DummyClassifier", "DummyRegressor"]
    ),
    // Internals the estimators above carry; recorded and ignored.
    allow!(
        Inert,
        "sklearn._loss.loss",
        [
            "HalfSquaredError",
            "AbsoluteError",
            "PinballLoss",
            "HuberLoss",
            "HalfPoissonLoss",
            "HalfGammaLoss",
            "HalfTweedieLoss",
            "HalfBinomialLoss",
            "HalfMultinomialLoss",
            "ExponentialLoss",
        ]
    ),
    allow!(
        Inert,
        "sklearn._loss.link",
        [
            "Interval",
            "IdentityLink",
            "LogLink",
            "LogitLink",
            "HalfLogitLink",
            "MultinomialLogit",
        ]
    ),
    allow!(
        Inert,
        "sklearn._loss._loss",
        [
            "CyHalfSquaredError",
            "CyAbsoluteError",
            "CyPinballLoss",
            "CyHuberLoss",
            "CyHalfPoissonLoss",
            "CyHalfGammaLoss",
            "CyHalfTweedieLoss",
            "CyHalfBinomialLoss",
            "CyHalfMultinomialLoss",
            "CyExponentialLoss",
            "__pyx_unpickle_CyHalfSquaredError",
            "__pyx_unpickle_CyAbsoluteError",
            "__pyx_unpickle_CyPinballLoss",
            "__pyx_unpickle_CyHuberLoss",
            "__pyx_unpickle_CyHalfPoissonLoss",
            "__pyx_unpickle_CyHalfGammaLoss",
            "__pyx_unpickle_CyHalfTweedieLoss",
            "__pyx_unpickle_CyHalfBinomialLoss",
            "__pyx_unpickle_CyHalfMultinomialLoss",
            "__pyx_unpickle_CyExponentialLoss",
        ]
    ),
    allow!(
        Inert,
        "sklearn.ensemble._gb_losses",
        [
            "LeastSquaresError",
            "LeastAbsoluteError",
            "HuberLossFunction",
            "QuantileLossFunction",
            "BinomialDeviance",
            "MultinomialDeviance",
            "ExponentialLoss",
        ]
    ),
    allow!(
        Inert,
        "numpy.random._pickle",
        [
            "__randomstate_ctor",
            "__bit_generator_ctor",
            "__generator_ctor",
        ]
    ),
    allow!(Inert, "numpy.random._mt19937", ["MT19937"]),
    allow!(Inert, "numpy.random._pcg64", ["PCG64"]),
    allow!(Inert, "numpy.random.mtrand", ["RandomState"]),
    allow!(
        Inert,
        "numpy.random.bit_generator",
        ["SeedSequence", "__pyx_unpickle_SeedSequence"]
    ),
];

/// The allowlist entry for `module.name`, if there is one.
pub fn lookup(module: &str, name: &str) -> Option<&'static Global> {
    ALLOWED
        .iter()
        .find(|g| g.module == module && g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_names_are_not_listed() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("builtins", "getattr"),
            ("builtins", "__import__"),
            ("subprocess", "Popen"),
            ("numpy", "load"),
            ("copyreg", "_reconstructor"),
        ] {
            assert!(lookup(m, n).is_none(), "{m}.{n}");
        }
        assert_eq!(lookup("numpy", "dtype").unwrap().role, Role::Dtype);
    }
}
