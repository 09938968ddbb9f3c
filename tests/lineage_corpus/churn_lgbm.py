# expect model=lgbm features=tenure,MonthlyCharges,SeniorCitizen,Contract label=Churn sources=data/churn.csv
import pandas as pd
from lightgbm import LGBMClassifier

df = pd.read_csv("data/churn.csv")
df["Contract"] = df["Contract"].astype("category")
X = df[["tenure", "MonthlyCharges", "SeniorCitizen", "Contract"]]
y = df["Churn"].eq("Yes").astype(int)
lgbm = LGBMClassifier(n_estimators=20, verbose=-1)
lgbm.fit(X, y)
