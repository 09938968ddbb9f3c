# expect model=svc features=Pclass,Fare,SibSp,Parch,Sex label=Survived sources=data/titanic.csv
import numpy as np
import pandas as pd
from sklearn.svm import SVC

df = pd.read_csv("data/titanic.csv")
base = df[["Pclass", "Fare", "SibSp", "Parch"]].values
is_male = (df["Sex"] == "male").astype(int).to_numpy()
X = np.column_stack([base, is_male])
y = df["Survived"].values
svc = SVC(kernel="rbf")
svc.fit(X, y)
