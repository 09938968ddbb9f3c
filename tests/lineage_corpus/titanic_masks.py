# expect model=gbc features=Pclass,Age,Fare label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

df = pd.read_csv("data/titanic.csv")
df = df[df["Fare"] > 0]
df.loc[df.Age.isna(), "Age"] = df.Age.median()
adults = df[(df.Age >= 18) & (df.Embarked != "Q")]
X = adults.loc[:, ["Pclass", "Age", "Fare"]]
y = adults.loc[:, "Survived"]
gbc = GradientBoostingClassifier(n_estimators=10)
gbc.fit(X, y)
