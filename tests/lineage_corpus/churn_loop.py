# expect model=forest features=Partner,PhoneService,tenure,MonthlyCharges,gender label=Churn sources=data/churn.csv
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import LabelEncoder

df = pd.read_csv("data/churn.csv")
binary = ["Partner", "PhoneService", "Churn"]
for col in binary:
    df[col] = df[col].map({"Yes": 1, "No": 0})
df["gender"] = LabelEncoder().fit_transform(df["gender"])
features = binary[:2] + ["tenure", "MonthlyCharges", "gender"]
forest = RandomForestClassifier(n_estimators=15)
forest.fit(df[features], df["Churn"])
