# The seed tutorial's train_model.py, unchanged in what it trains and saves (model.pkl),
# extended to also write model.onnx for inferd's ONNX runtime.
from sklearn.ensemble import RandomForestClassifier
from sklearn.datasets import load_iris
import joblib

X, y = load_iris(return_X_y=True)
clf = RandomForestClassifier()
clf.fit(X, y)

joblib.dump(clf, 'model.pkl')

# inferd also serves ONNX. zipmap=False gives the class probabilities as a plain tensor.
from skl2onnx import to_onnx

onnx_model = to_onnx(clf, X[:1].astype("float32"), options={"zipmap": False})
with open("model.onnx", "wb") as f:
    f.write(onnx_model.SerializeToString())
