# expect model=sgd features=LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,BILL_AMT1,BILL_AMT2,PAY_AMT1,PAY_AMT2,account_age label=default sources=data/credit.csv,data/accounts.csv
import pandas as pd
from sklearn.linear_model import SGDClassifier

credit = pd.read_csv("data/credit.csv")
accounts = pd.read_csv("data/accounts.csv")
df = credit.join(accounts.set_index("ID"), on="ID")
X = df.select_dtypes(include=["number"]).drop(columns=["ID", "default"])
y = df["default"]
sgd = SGDClassifier(max_iter=50)
sgd.fit(X, y)
