# expect model=pipe features=Age,Fare,SibSp,Sex,Embarked,Pclass label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

df = pd.read_csv("data/titanic.csv")
numeric = ["Age", "Fare", "SibSp"]
categorical = ["Sex", "Embarked", "Pclass"]
numeric_tf = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
pre = ColumnTransformer(
    transformers=[("num", numeric_tf, numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)],
    remainder="drop",
)
pipe = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))])
X = df.drop(columns=["Survived"])
y = df["Survived"]
pipe.fit(X, y)
