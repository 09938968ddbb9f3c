# expect model=model features=Pclass,Sex,Age,SibSp,Parch,Fare label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

df = pd.read_csv("data/titanic.csv")
df["Age"] = df["Age"].fillna(df["Age"].median())
df["FamilySize"] = df["SibSp"] + df["Parch"] + 1
df["Sex"] = df["Sex"].map({"male": 0, "female": 1})
features = ["Pclass", "Sex", "Age", "FamilySize", "Fare"]
X = df[features]
y = df["Survived"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = RandomForestClassifier(n_estimators=30, random_state=0)
model.fit(X_train, y_train)
print(model.score(X_test, y_test))
