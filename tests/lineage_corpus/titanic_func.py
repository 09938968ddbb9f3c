# expect model=gb features=Sex,Age,Pclass,Fare,Name label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier


def preprocess(frame):
    frame = frame.copy()
    frame["Title"] = frame["Name"].str.extract(r",\s*([^\.]+)\.", expand=False)
    frame["Title"] = frame["Title"].astype("category").cat.codes
    frame["IsFemale"] = (frame["Sex"] == "female").astype(int)
    frame["Age"] = frame["Age"].fillna(frame["Age"].mean())
    return frame


train = preprocess(pd.read_csv("data/titanic.csv"))
cols = ["IsFemale", "Age", "Pclass", "Fare", "Title"]
gb = GradientBoostingClassifier(n_estimators=20)
gb.fit(train[cols], train["Survived"])
