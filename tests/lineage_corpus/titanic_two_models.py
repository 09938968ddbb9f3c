# expect model=simple features=Sex,Pclass label=Survived sources=data/titanic.csv
# expect model=rich features=Sex,Pclass,Age,Fare,Embarked label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

df = pd.read_csv("data/titanic.csv")
df["Sex"] = (df.Sex == "male").astype(int)
df["Age"] = df.Age.fillna(-1)
target = df["Survived"]
base_cols = ["Sex", "Pclass"]
simple = LogisticRegression().fit(df[base_cols], target)
rich_cols = base_cols + ["Age", "Fare"]
X_rich = pd.concat([df[rich_cols], pd.get_dummies(df["Embarked"], prefix="emb")], axis=1)
rich = RandomForestClassifier(n_estimators=20).fit(X_rich, target)
