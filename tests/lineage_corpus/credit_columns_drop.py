# expect model=model features=LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,BILL_AMT1,BILL_AMT2,PAY_AMT1,PAY_AMT2 label=default sources=data/credit.csv
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

df = pd.read_csv("data/credit.csv")
feature_cols = df.columns.drop(["ID", "default"])
X = df[feature_cols]
y = df["default"]
model = HistGradientBoostingClassifier(max_iter=20)
model.fit(X, y)
