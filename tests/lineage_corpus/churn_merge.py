# expect model=clf features=tenure,MonthlyCharges,calls,data_gb,support_tickets label=Churn sources=data/churn.csv,data/usage.csv
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

customers = pd.read_csv("data/churn.csv")
usage = pd.read_csv("data/usage.csv")
df = customers.merge(usage, on="customerID", how="left")
df["Churn"] = df["Churn"].map({"Yes": 1, "No": 0})
features = ["tenure", "MonthlyCharges", "calls", "data_gb", "support_tickets"]
clf = RandomForestClassifier(n_estimators=25, random_state=0)
clf.fit(df[features], df["Churn"])
