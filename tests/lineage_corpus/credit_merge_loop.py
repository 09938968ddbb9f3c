# expect model=rf features=PAY_0,PAY_2,LIMIT_BAL,AGE,account_age,branch label=default sources=data/credit.csv,data/accounts.csv
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

credit = pd.read_csv("data/credit.csv")
accounts = pd.read_csv("data/accounts.csv")
df = credit.merge(accounts, on="ID")
features = []
for col in ["PAY_0", "PAY_2"]:
    df[col] = df[col].clip(lower=0)
    features.append(col)
features.extend(["LIMIT_BAL", "AGE", "account_age"])
df["branch_code"] = df["branch"].astype("category").cat.codes
features += ["branch_code"]
rf = RandomForestClassifier(n_estimators=10)
rf.fit(df[features], df["default"])
