# expect model=clf features=tenure,MonthlyCharges,TotalCharges,SeniorCitizen label=Churn sources=data/churn.csv
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.model_selection import cross_val_score

df = pd.read_csv("data/churn.csv")
num_cols = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]
X = df[num_cols].to_numpy()
y = (df["Churn"] == "Yes").to_numpy()
clf = ExtraTreesClassifier(n_estimators=10)
scores = cross_val_score(clf, X, y, cv=3)
print(scores.mean())
