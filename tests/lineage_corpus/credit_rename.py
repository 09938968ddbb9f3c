# expect model=lr features=LIMIT_BAL,AGE,PAY_0,PAY_2 label=default sources=data/credit.csv
import pandas as pd
from sklearn.linear_model import LogisticRegression

df = pd.read_csv("data/credit.csv")
df = df.rename(columns={"default": "target", "PAY_0": "PAY_1", "LIMIT_BAL": "limit"})
use = ["limit", "AGE", "PAY_1", "PAY_2"]
lr = LogisticRegression(max_iter=1000)
lr.fit(df[use], df.target)
