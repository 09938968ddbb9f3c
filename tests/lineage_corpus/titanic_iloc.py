# expect model=tree features=Pclass,Age,SibSp,Fare label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

raw = pd.read_csv("data/titanic.csv")
data = raw[["Survived", "Pclass", "Age", "SibSp", "Fare"]].dropna()
X = data.iloc[:, 1:]
y = data.iloc[:, 0]
tree = DecisionTreeClassifier(max_depth=4)
tree.fit(X, y)
