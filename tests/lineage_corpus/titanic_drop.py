# expect model=clf features=Pclass,Sex,Age,SibSp,Parch,Fare,Embarked label=Survived sources=data/titanic.csv
import pandas as pd
from sklearn.linear_model import LogisticRegression

train = pd.read_csv("data/titanic.csv")
train["Age"] = train["Age"].fillna(30)
train = pd.get_dummies(train, columns=["Sex", "Embarked"], drop_first=True)
X = train.drop(["PassengerId", "Survived", "Name", "Ticket", "Cabin"], axis=1)
y = train.Survived
clf = LogisticRegression(max_iter=1000)
clf.fit(X, y)
