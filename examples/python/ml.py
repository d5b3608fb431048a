"""An sklearn pipeline whose fit is cached: the first run fits it, later runs load the fitted
pipeline.

    devstash run examples/python/ml.py

`fit` changes the pipeline in place and returns it; a cached call cannot change an object in
place on a later run, so the fitted pipeline is taken from what `fit` returns.
"""

import time

import devstash
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

devstash.activate()

start = time.time()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
pipe = make_pipeline(PCA(n_components=30), LogisticRegression(max_iter=2000))
pipe = pipe.fit(X_train, y_train)  # @devstash
acc = pipe.score(X_test, y_test)

print(f"Accuracy: {acc:.3f}")
print("Program execution time: %.2f s" % (time.time() - start))
