# expect model=model features=tenure,MonthlyCharges,TotalCharges,Contract,PaymentMethod label=Churn sources=data/churn.csv
import pandas as pd
from sklearn.naive_bayes import GaussianNB

df = pd.read_csv("data/churn.csv")
numeric = df[["tenure", "MonthlyCharges", "TotalCharges"]]
contract = pd.get_dummies(df["Contract"], prefix="contract")
payment = pd.get_dummies(df.PaymentMethod, prefix="pay")
X = pd.concat([numeric, contract, payment], axis=1)
target = (df.Churn == "Yes").astype(int)
model = GaussianNB()
model.fit(X, target)
