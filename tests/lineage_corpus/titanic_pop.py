# expect model=knn features=Pclass,Age,SibSp,Parch,Fare label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier

df = pd.read_csv("data/titanic.csv")
df = df.fillna({"Age": 28})
labels = df.pop("Survived")
X = df.select_dtypes(include="number").drop(columns=["PassengerId"])
knn = KNeighborsClassifier(n_neighbors=5)
knn.fit(X, labels)
