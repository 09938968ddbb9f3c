# expect model=logreg features=gender,SeniorCitizen,Partner,tenure,PhoneService,Contract,PaymentMethod,MonthlyCharges,TotalCharges,calls,data_gb,support_tickets label=Churn sources=data/churn.csv,data/usage.csv
import pandas as pd
from sklearn.linear_model import LogisticRegression

churn = pd.read_csv("data/churn.csv")
usage = pd.read_csv("data/usage.csv")
full = pd.merge(churn, usage, on="customerID")
y = (full["Churn"] == "Yes").astype(int)
X = full.drop(columns=["customerID", "Churn"])
X = pd.get_dummies(X, drop_first=True)
logreg = LogisticRegression(max_iter=2000)
logreg.fit(X, y)
