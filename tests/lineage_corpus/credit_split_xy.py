# expect model=mlp features=LIMIT_BAL,AGE,PAY_0,BILL_AMT1 label=default sources=data/credit.csv
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler

df = pd.read_csv("data/credit.csv")
X, y = df[["LIMIT_BAL", "AGE", "PAY_0", "BILL_AMT1"]], df["default"]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=3)
scaler = MinMaxScaler().fit(X_train)
mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50)
mlp.fit(scaler.transform(X_train), y_train)
